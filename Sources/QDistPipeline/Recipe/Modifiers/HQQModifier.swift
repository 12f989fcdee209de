import QDistQuant

/// `HQQModifier`: Half-Quadratic Quantization (the `hqq` library's default quantizer, FORMATS.md
/// §7.1): calibration-free asymmetric group quantization whose float zero points are tuned by a
/// proximal solver against an l_p (p = 0.7) weight error. No data and no forward pass.
///
/// ```yaml
/// recipe:
///   HQQModifier: {num_bits: 4, group_size: 64}          # hqq's defaults
///   HQQModifier: {config_groups: {g: {targets: [Linear], weights: {num_bits: 3, symmetric: false, strategy: group, group_size: 64}}}}
/// ```
/// Keys: `num_bits` (2, 3, 4, 8) and `group_size` — or `scheme` / `config_groups` with
/// asymmetric grouped int weights —, `targets`, `ignore`, `round_zero` (round the starting zero
/// point, as the library), `lp_norm` (0.7), `beta` (10), `iters` (20). The zero points stay
/// floats, so the output format is `float-zero`; `integer_zero: true` rounds them after the
/// solve and re-quantizes, for compressed-tensors pack-quantized or GPTQ output (at a cost in
/// accuracy).
public struct HQQModifier: RecipeModifier {
    public static let recipeKey = "HQQModifier"
    public static let summary = "HQQ: calibration-free, float zero points tuned by the half-quadratic solver (num_bits, group_size 64; --format float-zero, or integer_zero: true for compressed-tensors/gptq)"
    public var quantization: ModifierConfig?
    public var settings: HQQSolver.Settings
    /// Round the optimised zero points (integer-zero formats).
    public var integerZero: Bool
    public var solver: (any LinearSolver)? { HQQLinearSolver(settings: settings, integerZeros: integerZero) }
    public var smoothing: (any BlockSmoothing)? { nil }

    static let ownKeys = ["num_bits", "group_size", "round_zero", "lp_norm", "beta", "iters", "integer_zero"]

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(keys: ModifierConfig.keys + Self.ownKeys, modifier: Self.recipeKey)
        let c = try decoder.container(keyedBy: AnyCodingKey.self)
        func key(_ k: String) -> AnyCodingKey { AnyCodingKey(stringValue: k) }
        func fail(_ k: String, _ message: String) -> DecodingError {
            .dataCorrupted(.init(codingPath: c.codingPath + [key(k)], debugDescription: message))
        }
        let bits = try c.decodeIfPresent(Int.self, forKey: key("num_bits"))
        let groupSize = try c.decodeIfPresent(Int.self, forKey: key("group_size"))
        var config: ModifierConfig
        if c.contains(key("scheme")) || c.contains(key("config_groups")) {
            if bits != nil || groupSize != nil {
                throw fail(bits != nil ? "num_bits" : "group_size", "give num_bits/group_size or scheme/config_groups, not both")
            }
            config = try ModifierConfig(from: decoder, allowsActOrder: false)
        } else {
            let weights = WeightArgsConfig(numBits: bits ?? 4, symmetric: false, strategy: .group, groupSize: groupSize ?? 64)
            config = ModifierConfig(targets: try c.decodeIfPresent([String].self, forKey: key("targets")) ?? ["Linear"],
                                    ignore: try c.decodeIfPresent([String].self, forKey: key("ignore")) ?? ["lm_head"],
                                    configGroups: ["group_0": ConfigGroup(targets: ["Linear"], weights: weights)])
        }
        for g in config.weightGroups {
            let w = g.weights
            guard w.type == .int, !w.symmetric, w.strategy == .group, [2, 3, 4, 8].contains(w.numBits) else {
                throw fail(c.contains(key("config_groups")) ? "config_groups" : (c.contains(key("scheme")) ? "scheme" : "num_bits"),
                           "HQQ quantizes int weights asymmetrically in groups with 2, 3, 4 or 8 bits (got \(w.type.rawValue)\(w.numBits) \(w.symmetric ? "symmetric" : "asymmetric") \(w.strategy.rawValue))")
            }
            if g.inputActivations != nil { throw fail("config_groups", "HQQ is weight-only: remove input_activations") }
        }
        settings = HQQSolver.Settings()
        settings.roundZero = try c.decodeIfPresent(Bool.self, forKey: key("round_zero")) ?? false
        settings.lpNorm = try c.decodeIfPresent(Double.self, forKey: key("lp_norm")) ?? settings.lpNorm
        settings.beta = try c.decodeIfPresent(Double.self, forKey: key("beta")) ?? settings.beta
        settings.iterations = try c.decodeIfPresent(Int.self, forKey: key("iters")) ?? settings.iterations
        integerZero = try c.decodeIfPresent(Bool.self, forKey: key("integer_zero")) ?? false
        if !(settings.lpNorm > 0 && settings.lpNorm <= 1) { throw fail("lp_norm", "must be in (0, 1]") }
        if !(settings.beta > 0) { throw fail("beta", "must be positive") }
        if settings.iterations < 0 { throw fail("iters", "must be 0 or more") }
        quantization = config
    }
}
