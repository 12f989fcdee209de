import QDistQuant

/// How weights are quantized, spelled as compressed-tensors' `QuantizationArgs` in YAML:
/// `{num_bits: 4, type: int, symmetric: false, strategy: group, group_size: 64, observer: mse,
/// actorder: group}`. qdist adds `type: nf4` / `fp4` (bitsandbytes' 4-bit code books, groups
/// of 64 by default) with `double_quant` (default true, QLoRA's), written as a bitsandbytes folder.
public struct WeightArgsConfig: Decodable, Sendable, Equatable {
    /// Integer grids (int-N) or fp8: the quantizer's own type (one enum, no translation).
    public typealias NumberType = QuantizationArgs.ValueType
    /// Which weights share one scale.
    public typealias Strategy = QuantizationArgs.Strategy
    /// How the clipping range is chosen.
    ///
    /// For static input activations the min/max observers differ as in llm-compressor:
    /// `minmax` is a moving average of each calibration window's range (averaging constant
    /// 0.01, the first window taken as is), `static_minmax` the extremes over every window,
    /// `memoryless_minmax` the last window's. A weight is observed once, so for weights the
    /// three are the same.
    public enum Observer: String, Decodable, Sendable, CaseIterable {
        case minmax, mse, percentile, kl, absmean, absmax
        case staticMinmax = "static_minmax", memorylessMinmax = "memoryless_minmax"

        /// The quantizer's observer (the three min/max kinds are one for a single observation).
        public var kind: QuantizationArgs.ObserverKind {
            switch self {
            case .minmax, .staticMinmax, .memorylessMinmax: return .minmax
            case .mse: return .mse
            case .percentile: return .percentile
            case .kl: return .kl
            case .absmean: return .absmean
            case .absmax: return .absmax
            }
        }
    }
    /// GPTQ's column order: by descending Hessian diagonal, with groups kept in original order
    /// (`static`) or formed along the permuted order (`group`); compressed-tensors' aliases
    /// `weight` ≡ `static`, `dynamic` ≡ `group` decode too.
    public typealias ActOrder = QuantizationArgs.ActivationOrdering

    public var numBits: Int
    public var type: NumberType
    public var symmetric: Bool
    public var strategy: Strategy
    public var groupSize: Int?
    public var observer: Observer
    public var actorder: ActOrder?
    /// NF4/FP4: double-quantize the group absmaxes (`bnb_4bit_use_double_quant`).
    public var doubleQuant: Bool

    public init(numBits: Int, type: NumberType = .int, symmetric: Bool, strategy: Strategy, groupSize: Int? = nil,
                observer: Observer = .minmax, actorder: ActOrder? = nil, doubleQuant: Bool = false) {
        (self.numBits, self.type, self.symmetric, self.strategy) = (numBits, type, symmetric, strategy)
        (self.groupSize, self.observer, self.actorder, self.doubleQuant) = (groupSize, observer, actorder, doubleQuant)
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case numBits = "num_bits", type, symmetric, strategy, groupSize = "group_size", observer, actorder, dynamic
        case doubleQuant = "double_quant"
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decodeIfPresent(NumberType.self, forKey: .type) ?? .int
        let fourBit = type.fourBitType != nil
        // NF4/FP4 have one shape (4-bit, symmetric, blocks of 64 unless said): defaults to match.
        numBits = try fourBit ? c.decodeIfPresent(Int.self, forKey: .numBits) ?? 4 : c.decode(Int.self, forKey: .numBits)
        symmetric = try c.decodeIfPresent(Bool.self, forKey: .symmetric) ?? true
        strategy = try c.decodeIfPresent(Strategy.self, forKey: .strategy) ?? (fourBit ? .group : .channel)
        groupSize = try c.decodeIfPresent(Int.self, forKey: .groupSize) ?? (fourBit && strategy == .group ? 64 : nil)
        doubleQuant = try c.decodeIfPresent(Bool.self, forKey: .doubleQuant) ?? fourBit
        observer = try c.decodeIfPresent(Observer.self, forKey: .observer) ?? .minmax
        actorder = try c.decodeIfPresent(ActOrder.self, forKey: .actorder)
        if try c.decodeIfPresent(Bool.self, forKey: .dynamic) == true {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.dynamic],
                debugDescription: "weights cannot be dynamic (that is for activations)"))
        }
        func fail(_ key: CodingKeys, _ message: String) -> DecodingError {
            .dataCorrupted(.init(codingPath: c.codingPath + [key], debugDescription: message))
        }
        if type == .int && !(2...8).contains(numBits) { throw fail(.numBits, "int weights take 2 to 8 bits") }
        if type == .float && numBits != 8 { throw fail(.numBits, "float weights are fp8 (8 bits)") }
        if type == .float && !symmetric { throw fail(.symmetric, "FP8 weights are symmetric (E4M3 has no zero point)") }
        if type == .float && strategy == .group { throw fail(.strategy, "FP8 weights take strategy tensor or channel") }
        if fourBit {
            if numBits != 4 { throw fail(.numBits, "\(type.rawValue) codes are 4-bit") }
            if !symmetric { throw fail(.symmetric, "\(type.rawValue) is symmetric (a code book scaled by each group's absmax)") }
            if strategy != .group { throw fail(.strategy, "\(type.rawValue) scales groups (bitsandbytes blocks): strategy group") }
            if !BlockwiseFourBit.validBlockSizes.contains(groupSize ?? 0) {
                throw fail(.groupSize, "\(type.rawValue) group_size must be a bitsandbytes block size: 32, 64 (QLoRA's), 128, …, 4096")
            }
            if actorder == .group { throw fail(.actorder, "\(type.rawValue) folders have no g_idx: use actorder static") }
        } else if c.contains(.doubleQuant) {
            throw fail(.doubleQuant, "double_quant is for nf4/fp4 weights (their group absmaxes)")
        }
        if observer == .absmax && (type != .int || numBits != 8 || !symmetric) {
            throw fail(.observer, "absmax is LLM.int8's weight scale (max|w| / 127): it needs num_bits 8, symmetric int weights")
        }
        if observer == .absmean && (type != .int || numBits != 2 || !symmetric) {
            throw fail(.observer, "absmean is BitNet's ternary scale: it needs num_bits 2, symmetric int weights (codes −1, 0, 1)")
        }
        if strategy == .group {
            guard let g = groupSize, g > 0 else { throw fail(.groupSize, "strategy group needs a positive group_size") }
        } else if groupSize != nil {
            throw fail(.groupSize, "group_size needs strategy: group")
        }
    }
}

/// compressed-tensors' preset schemes (`preset_name_to_scheme`): weights, and input activations
/// for the W8A8 ones. `W8A8` (alias `INT8`) is `INT8_W8A8` of compressed-tensors 0.15
/// `quant_scheme.py`: int8 symmetric per-channel weights, int8 symmetric *dynamic per-token*
/// activations. compressed-tensors has no static int8 preset (its static ones are FP8), so a
/// static W8A8 recipe spells `input_activations` out in `config_groups`. `FP8` is FP8 E4M3
/// per-tensor weights with static per-tensor activations (minmax); `FP8_DYNAMIC` is per-channel
/// FP8 weights with dynamic per-token FP8 activations (compressed-tensors' presets, FORMATS §10.3).
/// `LLM_INT8` is bitsandbytes' LLM.int8(): absmax int8 weights per row (codes −127…127) and, at
/// run time, int8 per-token inputs with input columns holding any |x| ≥ 6 kept in float
/// (`--format bitsandbytes`). `TERNARY` is BitNet b1.58 PTQ (FORMATS §7.5): absmean ternary weights per tensor (2-bit codes
/// −1, 0, 1; `strategy: channel` or `group` in config_groups for finer scales) with int8 dynamic
/// per-token activations. `NF4` / `FP4` are bitsandbytes' 4-bit code books on blocks of 64 with
/// double-quantized absmaxes, as QLoRA loads a model (`--format bitsandbytes`; `double_quant:
/// false` in config_groups keeps float32 absmaxes).
public enum SchemePresets {
    static let table: [(String, WeightArgsConfig, ActivationArgsConfig?)] = [
        ("W8A16", WeightArgsConfig(numBits: 8, symmetric: true, strategy: .channel), nil),
        ("W4A16", WeightArgsConfig(numBits: 4, symmetric: true, strategy: .group, groupSize: 128), nil),
        ("W4A16_ASYM", WeightArgsConfig(numBits: 4, symmetric: false, strategy: .group, groupSize: 128), nil),
        ("W3A16", WeightArgsConfig(numBits: 3, symmetric: true, strategy: .group, groupSize: 128), nil),
        ("W3A16_ASYM", WeightArgsConfig(numBits: 3, symmetric: false, strategy: .group, groupSize: 128), nil),
        ("W2A16", WeightArgsConfig(numBits: 2, symmetric: false, strategy: .group, groupSize: 64), nil),
        ("W8A8", WeightArgsConfig(numBits: 8, symmetric: true, strategy: .channel), .int8DynamicPerToken),
        ("INT8", WeightArgsConfig(numBits: 8, symmetric: true, strategy: .channel), .int8DynamicPerToken),
        ("LLM_INT8", WeightArgsConfig(numBits: 8, symmetric: true, strategy: .channel, observer: .absmax), .llmInt8),
        ("TERNARY", WeightArgsConfig(numBits: 2, symmetric: true, strategy: .tensor, observer: .absmean), .int8DynamicPerToken),
        ("FP8", WeightArgsConfig(numBits: 8, type: .float, symmetric: true, strategy: .tensor), .fp8StaticPerTensor),
        ("FP8_DYNAMIC", WeightArgsConfig(numBits: 8, type: .float, symmetric: true, strategy: .channel), .fp8DynamicPerToken),
        ("NF4", WeightArgsConfig(numBits: 4, type: .nf4, symmetric: true, strategy: .group, groupSize: 64, doubleQuant: true), nil),
        ("FP4", WeightArgsConfig(numBits: 4, type: .fp4, symmetric: true, strategy: .group, groupSize: 64, doubleQuant: true), nil),
        // Placeholder arguments: with `format: gguf` each linear takes the block type its mix
        // gives it (`gguf.type`), and `QuantizationPlan` replaces these.
        (ggufScheme, WeightArgsConfig(numBits: 4, symmetric: true, strategy: .group, groupSize: 32), nil),
    ]

    /// The scheme that means "the GGUF mix's block type for each linear" (only with format gguf).
    public static let ggufScheme = "GGUF"

    /// Preset names, for `--help` and error messages.
    public static var names: [String] { table.map(\.0) }

    /// The weight arguments of preset `name` (case-insensitive).
    public static func weights(named name: String) -> WeightArgsConfig? {
        table.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }

    /// The input activation arguments of preset `name`; nil for weight-only presets.
    public static func inputActivations(named name: String) -> ActivationArgsConfig? {
        table.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.2
    }
}

extension QuantizationArgs.ValueType: Decodable {}
extension QuantizationArgs.Strategy: Decodable {}

extension QuantizationArgs.ActivationOrdering: Decodable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        switch text {
        case "static", "weight": self = .static
        case "group", "dynamic": self = .group
        default:
            throw DecodingError.dataCorruptedError(in: c, debugDescription:
                "unknown actorder '\(text)' (static or its alias weight: groups in column order, loads everywhere; group or its alias dynamic: groups in activation order with g_idx, GPTQ format only)")
        }
    }
}
