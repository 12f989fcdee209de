/// The weight quantization a quantizing modifier applies (`GPTQModifier`, `QuantizationModifier`):
/// which layers (`targets` minus `ignore`), and how — a named `scheme` preset or explicit
/// `config_groups` — plus a modifier-level `actorder` where the modifier allows one (GPTQ).
/// The modifier's own settings (GPTQ's `block_size`, …) are read by the modifier itself.
public struct ModifierConfig: Sendable, Equatable {
    public var targets: [String]
    public var ignore: [String]
    public var scheme: String?
    public var configGroups: [String: ConfigGroup]?
    public var actorder: WeightArgsConfig.ActOrder?
    /// Whether the recipe set `actorder` at the modifier level (an explicit `null` turns
    /// act-order off); when it did not, GPTQ uses llm-compressor's default, `static`, for the
    /// grouped config groups that set none themselves.
    public var actorderGiven: Bool

    /// The keys this config reads; a modifier adds its own and rejects the rest.
    public static let keys = ["targets", "ignore", "scheme", "config_groups"]

    public init(targets: [String] = ["Linear"], ignore: [String] = ["lm_head"], scheme: String? = nil,
                configGroups: [String: ConfigGroup]? = nil) {
        (self.targets, self.ignore, self.scheme, self.configGroups) = (targets, ignore, scheme, configGroups)
        (actorder, actorderGiven) = (nil, false)
    }

    /// Reads the shared keys of a modifier's mapping (`allowsActOrder`: also `actorder`).
    public init(from decoder: Decoder, allowsActOrder: Bool) throws {
        let c = try decoder.container(keyedBy: AnyCodingKey.self)
        func key(_ k: String) -> AnyCodingKey { AnyCodingKey(stringValue: k) }
        func fail(_ k: String, _ message: String) -> DecodingError {
            .dataCorrupted(.init(codingPath: c.codingPath + [key(k)], debugDescription: message))
        }
        targets = try c.decodeIfPresent([String].self, forKey: key("targets")) ?? ["Linear"]
        ignore = try c.decodeIfPresent([String].self, forKey: key("ignore")) ?? ["lm_head"]
        scheme = try c.decodeIfPresent(String.self, forKey: key("scheme"))
        configGroups = try c.decodeIfPresent([String: ConfigGroup].self, forKey: key("config_groups"))
        actorder = allowsActOrder ? try c.decodeIfPresent(WeightArgsConfig.ActOrder.self, forKey: key("actorder")) : nil
        actorderGiven = allowsActOrder && c.contains(key("actorder"))
        if (scheme == nil) == (configGroups == nil) {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "give exactly one of scheme or config_groups"))
        }
        if let s = scheme, SchemePresets.weights(named: s) == nil {
            throw fail("scheme", "unknown scheme '\(s)' (known: \(SchemePresets.names.joined(separator: ", ")))")
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

    public init(targets: [String] = ["Linear"], weights: WeightArgsConfig, inputActivations: ActivationArgsConfig? = nil) {
        (self.targets, self.weights, self.inputActivations) = (targets, weights, inputActivations)
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        targets = try c.decodeIfPresent([String].self, forKey: .targets) ?? ["Linear"]
        weights = try c.decode(WeightArgsConfig.self, forKey: .weights)
        inputActivations = try c.decodeIfPresent(ActivationArgsConfig.self, forKey: .inputActivations)
        // int8 activations take int8 weights (W8A8) or ternary ones (BitNet W2A8); fp8 ones fp8 weights.
        let ternary = weights.observer == .absmean
        if let a = inputActivations, weights.type != a.type || (weights.numBits != 8 && !(a.type == .int && ternary)) {
            let need = a.type == .int ? "quantized activations need 8-bit int weights (W8A8, compressed-tensors int-quantized)"
                : "fp8 activations need fp8 weights (type: float, num_bits: 8; compressed-tensors float-quantized)"
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.inputActivations],
                debugDescription: "\(need); the weights here are \(weights.type.rawValue)\(weights.numBits)"))
        }
    }
}
