/// The `recipe:` section: exactly one modifier, named as llm-compressor names it.
public struct RecipeConfig: Decodable, Sendable, Equatable {
    /// Which algorithm the modifier asks for.
    public enum Algorithm: String, Sendable {
        /// GPTQ (error-compensating, needs calibration Hessians).
        case gptq = "GPTQModifier"
        /// Round-to-nearest with the configured observers.
        case roundToNearest = "QuantizationModifier"
    }

    public var algorithm: Algorithm
    public var modifier: ModifierConfig

    enum CodingKeys: String, CodingKey, CaseIterable {
        case gptq = "GPTQModifier", quantization = "QuantizationModifier"
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let gptq = try c.decodeIfPresent(ModifierConfig.self, forKey: .gptq)
        let rtn = try c.decodeIfPresent(ModifierConfig.self, forKey: .quantization)
        switch (gptq, rtn) {
        case (let m?, nil): (algorithm, modifier) = (.gptq, m)
        case (nil, let m?): (algorithm, modifier) = (.roundToNearest, m)
        default:
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath,
                debugDescription: "give exactly one modifier: GPTQModifier or QuantizationModifier"))
        }
        if algorithm == .roundToNearest, modifier.blockSize != nil || modifier.dampeningFrac != nil {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.quantization],
                debugDescription: "block_size and dampening_frac are GPTQModifier settings"))
        }
    }
}

/// One modifier: which layers (`targets` minus `ignore`), and how to quantize them — a named
/// `scheme` preset or explicit `config_groups` — plus GPTQ's own settings.
public struct ModifierConfig: Decodable, Sendable, Equatable {
    public var targets: [String]
    public var ignore: [String]
    public var scheme: String?
    public var configGroups: [String: ConfigGroup]?
    public var blockSize: Int?
    public var dampeningFrac: Double?
    public var actorder: WeightArgsConfig.ActOrder?
    /// Whether the recipe set `actorder` at the modifier level (an explicit `null` turns
    /// act-order off); when it did not, GPTQ uses llm-compressor's default, `static`, for the
    /// grouped config groups that set none themselves.
    public var actorderGiven: Bool

    enum CodingKeys: String, CodingKey, CaseIterable {
        case targets, ignore, scheme, configGroups = "config_groups", blockSize = "block_size"
        case dampeningFrac = "dampening_frac", actorder
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        targets = try c.decodeIfPresent([String].self, forKey: .targets) ?? ["Linear"]
        ignore = try c.decodeIfPresent([String].self, forKey: .ignore) ?? ["lm_head"]
        scheme = try c.decodeIfPresent(String.self, forKey: .scheme)
        configGroups = try c.decodeIfPresent([String: ConfigGroup].self, forKey: .configGroups)
        blockSize = try c.decodeIfPresent(Int.self, forKey: .blockSize)
        dampeningFrac = try c.decodeIfPresent(Double.self, forKey: .dampeningFrac)
        actorder = try c.decodeIfPresent(WeightArgsConfig.ActOrder.self, forKey: .actorder)
        actorderGiven = c.contains(.actorder)
        if (scheme == nil) == (configGroups == nil) {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "give exactly one of scheme or config_groups"))
        }
        if let s = scheme, SchemePresets.weights(named: s) == nil {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.scheme],
                debugDescription: "unknown scheme '\(s)' (known: \(SchemePresets.names.joined(separator: ", ")))"))
        }
        if let b = blockSize, b < 1 {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.blockSize], debugDescription: "must be positive"))
        }
        if let d = dampeningFrac, !(d > 0 && d < 1) {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.dampeningFrac], debugDescription: "must be in (0, 1)"))
        }
    }

    /// The weight (and input activation) arguments of every config group (the scheme's, for a
    /// preset), with the modifier's `actorder` applied over the groups' own (as given: GPTQ's
    /// default is applied by `QuantizationPlan`, which knows the algorithm).
    public var weightGroups: [(name: String, targets: [String], weights: WeightArgsConfig, inputActivations: ActivationArgsConfig?)] {
        var groups: [(name: String, targets: [String], weights: WeightArgsConfig, inputActivations: ActivationArgsConfig?)]
        if let s = scheme, let w = SchemePresets.weights(named: s) {
            groups = [(name: "group_0", targets: targets, weights: w, inputActivations: SchemePresets.inputActivations(named: s))]
        } else {
            groups = (configGroups ?? [:]).sorted { $0.key < $1.key }.map {
                (name: $0.key, targets: $0.value.targets, weights: $0.value.weights, inputActivations: $0.value.inputActivations)
            }
        }
        if actorderGiven { for i in groups.indices { groups[i].weights.actorder = actorder } }
        return groups
    }

    /// True when some group quantizes input activations (W8A8): such recipes need a format that
    /// can carry activation scales (compressed-tensors int-quantized, not GPTQ).
    public var quantizesActivations: Bool { weightGroups.contains { $0.inputActivations != nil } }
}

/// `config_groups.<name>`: layers it targets, the weights' quantization and, for W8A8, the
/// input activations' (`input_activations`, which need 8-bit int weights: compressed-tensors
/// int-quantized stores the weight codes as int8).
public struct ConfigGroup: Decodable, Sendable, Equatable {
    public var targets: [String]
    public var weights: WeightArgsConfig
    public var inputActivations: ActivationArgsConfig?

    enum CodingKeys: String, CodingKey, CaseIterable { case targets, weights, inputActivations = "input_activations" }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        targets = try c.decodeIfPresent([String].self, forKey: .targets) ?? ["Linear"]
        weights = try c.decode(WeightArgsConfig.self, forKey: .weights)
        inputActivations = try c.decodeIfPresent(ActivationArgsConfig.self, forKey: .inputActivations)
        if inputActivations != nil, weights.numBits != 8 || weights.type != .int {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.inputActivations],
                debugDescription: "quantized activations need 8-bit int weights (W8A8, compressed-tensors int-quantized); the weights here are \(weights.type.rawValue)\(weights.numBits)"))
        }
    }
}
