// LoRA as PEFT defines it: huggingface/peft src/peft/tuners/lora/{config.py, layer.py}
// (FORMATS.md §8). Only the parts a Llama decoder uses: linear targets, no DoRA, no bias training.

import QDistIO

/// One linear layer of a Llama block that can carry a LoRA adapter, named as PEFT's
/// `target_modules` names it (`rawValue`), in PEFT's parameter order (q, k, v, o, gate, up, down).
public enum LoRATarget: String, Sendable, CaseIterable, Codable, Comparable {
    case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj"
    case gate = "gate_proj", up = "up_proj", down = "down_proj"

    /// The module path inside a decoder layer, as in `model.layers.N.<path>` (HF checkpoints)
    /// and in `LlamaBlockWeights.linears`.
    public var modulePath: String {
        switch self {
        case .q, .k, .v, .o: return "self_attn." + rawValue
        case .gate, .up, .down: return "mlp." + rawValue
        }
    }

    /// Position in PEFT's (and the flat layout's) order.
    public var order: Int { Self.allCases.firstIndex(of: self)! }

    public static func < (a: LoRATarget, b: LoRATarget) -> Bool { a.order < b.order }

    /// The frozen base linear this adapter sits on.
    public func linear(in weights: LlamaBlockWeights) -> LinearLayer {
        switch self {
        case .q: return weights.q
        case .k: return weights.k
        case .v: return weights.v
        case .o: return weights.o
        case .gate: return weights.gate
        case .up: return weights.up
        case .down: return weights.down
        }
    }

    /// (in, out) features of this linear for `config`, without loading any weight.
    public func features(_ config: ModelConfiguration) -> (inFeatures: Int, outFeatures: Int) {
        let h = config.hiddenSize, q = config.numAttentionHeads * config.headDim
        let kv = config.numKeyValueHeads * config.headDim, i = config.intermediateSize
        switch self {
        case .q: return (h, q)
        case .k, .v: return (h, kv)
        case .o: return (q, h)
        case .gate, .up: return (h, i)
        case .down: return (i, h)
        }
    }
}

/// Why a LoRA configuration was rejected; the message names the offending key as PEFT spells it.
public struct LoRAConfigError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// PEFT's `LoraConfig` for a Llama causal LM: rank, alpha, dropout on the adapter path, and the
/// targeted linears. Keys not modelled here (DoRA, per-module rank patterns, bias training)
/// are refused where a file would carry them, not silently ignored.
public struct LoRAConfig: Sendable, Equatable {
    /// `r`: the adapter rank (rows of A, columns of B).
    public var rank: Int
    /// `lora_alpha`: the scaling numerator.
    public var alpha: Double
    /// `lora_dropout`: probability of zeroing an input of the adapter path (training only).
    public var dropout: Double
    /// `target_modules`, in PEFT order, without repeats.
    public var targets: [LoRATarget]
    /// `use_rslora`: scaling α/√r instead of α/r.
    public var useRSLoRA: Bool

    public init(rank: Int = 8, alpha: Double = 8, dropout: Double = 0, targets: [LoRATarget] = [.q, .v],
                useRSLoRA: Bool = false) {
        precondition(rank > 0, "LoRA rank must be positive, got \(rank)")
        precondition(dropout >= 0 && dropout < 1, "LoRA dropout must be in [0, 1), got \(dropout)")
        precondition(!targets.isEmpty, "LoRA needs at least one target module")
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.targets = Array(Set(targets)).sorted()
        self.useRSLoRA = useRSLoRA
    }

    /// From PEFT's `target_modules` strings: short names (`q_proj`), dotted suffixes
    /// (`self_attn.q_proj`), or the single string `all-linear` (every linear but the head).
    public init(rank: Int, alpha: Double, dropout: Double = 0, targetModules: [String], useRSLoRA: Bool = false) throws {
        guard rank > 0 else { throw LoRAConfigError("r must be a positive integer, got \(rank)") }
        guard dropout >= 0 && dropout < 1 else { throw LoRAConfigError("lora_dropout must be in [0, 1), got \(dropout)") }
        var targets: [LoRATarget] = []
        for name in targetModules {
            if name == "all-linear" { targets += LoRATarget.allCases; continue }
            let short = name.split(separator: ".").last.map(String.init) ?? name
            guard let t = LoRATarget(rawValue: short), name == short || name.hasSuffix(t.modulePath) else {
                let known = LoRATarget.allCases.map(\.rawValue).joined(separator: ", ")
                throw LoRAConfigError("target_modules: \(name) is not a Llama linear (\(known), or all-linear)")
            }
            targets.append(t)
        }
        guard !targets.isEmpty else { throw LoRAConfigError("target_modules is empty") }
        self.init(rank: rank, alpha: alpha, dropout: dropout, targets: targets, useRSLoRA: useRSLoRA)
    }

    /// The factor on the adapter path: α/r (α/√r with rsLoRA), as PEFT's `scaling`.
    public var scaling: Float {
        Float(useRSLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank))
    }

    /// PEFT's `target_modules` list for adapter_config.json.
    public var targetModules: [String] { targets.map(\.rawValue) }
}
