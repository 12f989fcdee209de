import QDistQuant

/// How a config group's input activations are quantized (W8A8), spelled as compressed-tensors'
/// `QuantizationArgs` in YAML:
///
/// ```yaml
/// input_activations: {num_bits: 8, type: int, symmetric: true, strategy: token, dynamic: true}
/// input_activations: {num_bits: 8, symmetric: false, strategy: tensor, dynamic: false, observer: percentile}
/// ```
///
/// *Dynamic* activations find each token's (`strategy: token`) or each input's (`tensor`) range
/// at run time and store nothing; *static* ones (`dynamic: false`, compressed-tensors' default)
/// need `strategy: tensor` and get one scale calibrated by `observer` (`minmax`, `percentile`,
/// `kl`) over the calibration set. Combinations that make no sense are one-line errors naming
/// the key: static per-token, an observer on dynamic activations, fp8 or non-8-bit activations.
public struct ActivationArgsConfig: Decodable, Sendable, Equatable {
    /// Which values share one scale.
    public typealias Strategy = InputActivationScheme.Strategy

    public var numBits: Int
    public var symmetric: Bool
    public var strategy: Strategy
    public var dynamic: Bool
    /// The calibration observer of a static scale (nil when dynamic).
    public var observer: WeightArgsConfig.Observer?
    /// int8, or FP8 E4M3 (`type: float`).
    public var type: WeightArgsConfig.NumberType
    /// LLM.int8's outlier threshold: input columns with any |x| at or above it skip quantization.
    public var outlierThreshold: Double?

    public init(numBits: Int = 8, symmetric: Bool = true, strategy: Strategy, dynamic: Bool,
                observer: WeightArgsConfig.Observer? = nil, type: WeightArgsConfig.NumberType = .int, outlierThreshold: Double? = nil) {
        (self.numBits, self.symmetric, self.strategy, self.dynamic, self.type) = (numBits, symmetric, strategy, dynamic, type)
        self.observer = dynamic ? nil : (observer ?? .minmax)
        self.outlierThreshold = outlierThreshold
    }

    /// LLM.int8's inputs: int8 per token, columns with any |x| ≥ 6 in float.
    public static let llmInt8 = ActivationArgsConfig(strategy: .token, dynamic: true, outlierThreshold: 6)

    /// compressed-tensors' W8A8 activations: int8 per-token, symmetric, dynamic.
    public static let int8DynamicPerToken = ActivationArgsConfig(strategy: .token, dynamic: true)
    /// compressed-tensors' `FP8_DYNAMIC` activations: E4M3 per token, dynamic.
    public static let fp8DynamicPerToken = ActivationArgsConfig(strategy: .token, dynamic: true, type: .float)
    /// compressed-tensors' `FP8` activations: E4M3 per tensor, static (minmax).
    public static let fp8StaticPerTensor = ActivationArgsConfig(strategy: .tensor, dynamic: false, type: .float)

    enum CodingKeys: String, CodingKey, CaseIterable {
        case numBits = "num_bits", type, symmetric, strategy, dynamic, observer, outlierThreshold = "outlier_threshold"
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func fail(_ key: CodingKeys, _ message: String) -> DecodingError {
            .dataCorrupted(.init(codingPath: c.codingPath + [key], debugDescription: message))
        }
        numBits = try c.decodeIfPresent(Int.self, forKey: .numBits) ?? 8
        type = try c.decodeIfPresent(WeightArgsConfig.NumberType.self, forKey: .type) ?? .int
        symmetric = try c.decodeIfPresent(Bool.self, forKey: .symmetric) ?? true
        if type.fourBitType != nil { throw fail(.type, "activations are int or float (fp8); \(type.rawValue) is a weight code book") }
        if type == .float && !symmetric { throw fail(.symmetric, "FP8 activations are symmetric") }
        dynamic = try c.decodeIfPresent(Bool.self, forKey: .dynamic) ?? false
        let strategyName = try c.decodeIfPresent(String.self, forKey: .strategy)
        if let strategyName {
            guard let s = Strategy(rawValue: strategyName) else {
                throw fail(.strategy, "activations take strategy tensor or token, not '\(strategyName)'")
            }
            strategy = s
        } else {
            strategy = dynamic ? .token : .tensor
        }
        let observerValue = try c.decodeIfPresent(WeightArgsConfig.Observer.self, forKey: .observer)
        if numBits != 8 { throw fail(.numBits, "activations are int8 or fp8 (W8A8): num_bits must be 8") }
        if strategy == .token && !dynamic {
            throw fail(.strategy, "static per-token activations are not possible (a token's scale exists only at run time): set dynamic: true, or strategy: tensor for a calibrated scale")
        }
        if dynamic, let o = observerValue {
            throw fail(.observer, "dynamic activations are not calibrated, so observer \(o.rawValue) has no effect: remove it, or set dynamic: false")
        }
        outlierThreshold = try c.decodeIfPresent(Double.self, forKey: .outlierThreshold)
        if let t = outlierThreshold, !(t >= 0 && t.isFinite) || !dynamic || strategy != .token || type != .int || !symmetric {
            throw fail(.outlierThreshold, "LLM.int8's outlier threshold (≥ 0; 6.0 as bitsandbytes) goes with int8 symmetric dynamic per-token inputs")
        }
        if observerValue == .absmean || observerValue == .absmax {
            throw fail(.observer, "absmean is a ternary weight scale; static activations take minmax, percentile or kl")
        }
        if observerValue == .mse {
            throw fail(.observer, "the mse observer needs every activation at once; static activations take minmax, percentile or kl")
        }
        observer = dynamic ? nil : (observerValue ?? .minmax)
    }

    /// The scheme a checkpoint records.
    public var scheme: InputActivationScheme {
        InputActivationScheme(numBits: numBits, symmetric: symmetric, strategy: strategy, dynamic: dynamic, observer: observer?.rawValue,
                              type: type, outlierThreshold: outlierThreshold.map(Float.init))
    }
}
