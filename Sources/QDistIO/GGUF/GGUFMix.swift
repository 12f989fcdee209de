/// The quantization mixes `llama-quantize` offers by name (Q4_K_M, Q5_K_S, …), each a llama.cpp
/// `llama_ftype`: the number stored as `general.file_type` plus the per-tensor rules in
/// `GGUFMixRules.swift` that decide which ggml type every tensor gets.
///
/// A mix is not a type: `Q4_K_M` stores most matrices as Q4_K but the output as Q6_K, some
/// `attn_v`/`ffn_down` layers as Q6_K, norms as F32, and rows that are not a multiple of 256
/// fall back to Q5_0/Q8_0. A converter that wrote "Q4_K everywhere" would make files whose
/// `general.file_type` claims a mix they do not follow, and whose quality differs from what
/// users compare against. `tensorTypes(for:model:options:)` reproduces llama.cpp's choice
/// tensor for tensor (checked against `llama-quantize --dry-run` in `GGUFMixTests`).
///
/// Only the mixes whose types qdist can encode are offered: the IQ* mixes (importance-matrix
/// codebook types), `MXFP4_MOE`, `Q1_0`, `Q2_0` and `COPY` are refused by name with an error
/// saying so, rather than approximated.
public enum GGUFMix: String, CaseIterable, Sendable {
    case q4_0 = "Q4_0", q4_1 = "Q4_1", q5_0 = "Q5_0", q5_1 = "Q5_1", q8_0 = "Q8_0"
    case q2_K = "Q2_K", q2_K_S = "Q2_K_S"
    case q3_K_S = "Q3_K_S", q3_K_M = "Q3_K_M", q3_K_L = "Q3_K_L"
    case q4_K_S = "Q4_K_S", q4_K_M = "Q4_K_M"
    case q5_K_S = "Q5_K_S", q5_K_M = "Q5_K_M"
    case q6_K = "Q6_K"
    case tq1_0 = "TQ1_0", tq2_0 = "TQ2_0"
    case f16 = "F16", bf16 = "BF16", f32 = "F32"

    /// The name as llama-quantize prints it ("Q4_K_M").
    public var name: String { rawValue }

    /// llama.cpp's `llama_ftype` number, written as `general.file_type` (include/llama.h).
    public var fileType: UInt32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q5_0: return 8
        case .q5_1: return 9
        case .q2_K: return 10
        case .q3_K_S: return 11
        case .q3_K_M: return 12
        case .q3_K_L: return 13
        case .q4_K_S: return 14
        case .q4_K_M: return 15
        case .q5_K_S: return 16
        case .q5_K_M: return 17
        case .q6_K: return 18
        case .q2_K_S: return 21
        case .bf16: return 32
        case .tq1_0: return 36
        case .tq2_0: return 37
        }
    }

    /// The type a tensor gets when no rule of the mix says otherwise
    /// (`llama_ftype_get_default_type`); the `_S/_M/_L` variants share their base type.
    public var defaultType: GGMLType {
        switch self {
        case .q4_0: return .q4_0
        case .q4_1: return .q4_1
        case .q5_0: return .q5_0
        case .q5_1: return .q5_1
        case .q8_0: return .q8_0
        case .q2_K, .q2_K_S: return .q2_K
        case .q3_K_S, .q3_K_M, .q3_K_L: return .q3_K
        case .q4_K_S, .q4_K_M: return .q4_K
        case .q5_K_S, .q5_K_M: return .q5_K
        case .q6_K: return .q6_K
        case .tq1_0: return .tq1_0
        case .tq2_0: return .tq2_0
        case .f16: return .f16
        case .bf16: return .bf16
        case .f32: return .f32
        }
    }

    /// The short names llama-quantize also accepts, each meaning its `_M` mix.
    public static let aliases: [String: GGUFMix] = ["Q3_K": .q3_K_M, "Q4_K": .q4_K_M, "Q5_K": .q5_K_M]

    /// llama-quantize mixes qdist knowingly does not offer, with the reason given to a user who
    /// asks for one (the error must not read like a typo).
    static let notOffered: [String: String] = {
        var out: [String: String] = [:]
        for iq in ["IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "IQ4_NL", "IQ4_XS"] {
            out[iq] = "qdist has no encoder for the IQ* codebook types"
        }
        out["MXFP4_MOE"] = "it targets mixture-of-experts models, which qdist does not quantize"
        out["Q1_0"] = "qdist has no Q1_0 encoder"
        out["Q2_0"] = "qdist has no Q2_0 encoder"
        out["COPY"] = "it copies tensors without quantizing; no mix is needed for that"
        return out
    }()

    /// Every name `init(name:)` accepts, mixes first then aliases, for help text and errors.
    public static var validNames: [String] { allCases.map(\.name) + aliases.keys.sorted() }

    /// The mix called `name`, case-insensitively, as llama-quantize spells it ("q4_k_m",
    /// "Q4_K" = Q4_K_M), or given by its `llama_ftype` number ("15"). Throws `.unknownMix`
    /// listing the valid names, or `.unsupportedMix` for a llama.cpp mix qdist does not offer.
    public init(name: String) throws(GGUFMixError) {
        let key = name.uppercased()
        if let mix = GGUFMix(rawValue: key) ?? Self.aliases[key] {
            self = mix
            return
        }
        if let number = UInt32(name), let mix = GGUFMix.allCases.first(where: { $0.fileType == number }) {
            self = mix
            return
        }
        if let reason = Self.notOffered[key] {
            throw GGUFMixError(.unsupportedMix, "llama.cpp mix \(key) is not offered: \(reason) (qdist offers: \(Self.validNames.joined(separator: ", ")))")
        }
        throw GGUFMixError(.unknownMix, "unknown quantization mix \(JSONSerializer.quoted(name)) (valid: \(Self.validNames.joined(separator: ", ")))")
    }

    /// The mix whose `general.file_type` is `fileType`, or nil (also for llama.cpp file types
    /// qdist does not offer, such as the IQ* ones).
    public init?(fileType: UInt32) {
        guard let mix = GGUFMix.allCases.first(where: { $0.fileType == fileType }) else { return nil }
        self = mix
    }

    /// True when llama-quantize refuses to write a tensor of `type` called `name` in this mix
    /// without an importance matrix (`tensor_requires_imatrix`): among the offered mixes only
    /// the Q2_K tensors of Q2_K_S, which are too coarse to quantize blind. A caller writing a
    /// Q2_K_S file without one should stop rather than produce what llama.cpp would not.
    public func requiresImportanceMatrix(tensorName name: String, type: GGMLType) -> Bool {
        if name == "token_embd.weight" || name == "per_layer_token_embd.weight" || name == "output.weight" { return false }
        return self == .q2_K_S && type == .q2_K
    }
}

/// Why a mix could not be named or applied, in one line: an unknown or refused mix name (with
/// the valid names listed), or a tensor list the llama rules cannot be trusted on.
public struct GGUFMixError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, for callers and tests that react without parsing the message.
    public enum Kind: String, Sendable {
        /// The name is no mix llama-quantize knows.
        case unknownMix
        /// A llama-quantize mix qdist deliberately does not offer (IQ*, MXFP4_MOE, …).
        case unsupportedMix
        /// The tensor list or model facts are outside what the rules cover (duplicate names,
        /// mixture-of-experts tensors, a type with no fallback for its row length).
        case unsupportedTensors
    }

    /// What went wrong, broadly.
    public var kind: Kind
    /// The problem, one line.
    public var message: String

    /// An error of `kind`; newlines in `message` become "; " so it prints as one line.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message.replacingOccurrences(of: "\n", with: "; ")
    }

    /// The message, one line.
    public var description: String { message }
}
