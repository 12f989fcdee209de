import QDistIO

/// How a linear's input activations are quantized, as a checkpoint's `quantization_config`
/// records it (compressed-tensors `input_activations`, FORMATS.md §5.1): an int grid (or FP8) that is
/// either *dynamic* (the range of each token, or of the whole input, found at run time; nothing
/// stored) or *static* (one calibrated per-tensor scale stored as `input_scale`).
///
/// Why a value of its own: the recipe, the calibration, the writer (config group + tensors), the
/// reader and the staging folder all pass it along, and layers with equal schemes share one
/// config group. Failure mode: combinations compressed-tensors rejects (static per-token) are
/// refused by `validate()` with a sentence naming the fix.
public struct InputActivationScheme: Sendable, Hashable, CustomStringConvertible {
    /// Which values share one scale.
    public enum Strategy: String, Sendable, CaseIterable {
        /// One scale for the whole input (static: calibrated; dynamic: per forward call).
        case tensor
        /// One scale per token (row), always dynamic.
        case token
    }

    public var numBits: Int
    public var symmetric: Bool
    public var strategy: Strategy
    public var dynamic: Bool
    /// The observer a static scale was calibrated with (`minmax`, `percentile`, `kl`), as
    /// recorded in the config; nil for dynamic schemes (compressed-tensors writes null).
    public var observer: String?
    /// An int grid, or FP8 E4M3 (`type: float`: symmetric, scale = absmax / 448).
    public var type: QuantizationArgs.ValueType
    /// LLM.int8's decomposition: input columns with any |x| at or above this stay float (only
    /// the bitsandbytes format stores it, as `llm_int8_threshold`).
    public var outlierThreshold: Float?

    public init(numBits: Int = 8, symmetric: Bool = true, strategy: Strategy, dynamic: Bool, observer: String? = nil,
                type: QuantizationArgs.ValueType = .int, outlierThreshold: Float? = nil) {
        self.outlierThreshold = outlierThreshold
        self.numBits = numBits
        self.symmetric = symmetric
        self.strategy = strategy
        self.dynamic = dynamic
        self.observer = dynamic ? nil : (observer ?? "minmax")
        self.type = type
    }

    /// compressed-tensors' W8A8 activations: int8 dynamic per-token symmetric.
    public static let int8DynamicPerToken = InputActivationScheme(strategy: .token, dynamic: true)

    /// Why this scheme cannot be stored or run, or nil when it can.
    public var problem: String? {
        if outlierThreshold != nil && (type != .int || numBits != 8 || !symmetric || !dynamic || strategy != .token) {
            return "LLM.int8's outlier threshold goes with int8 symmetric dynamic per-token inputs"
        }
        if type == .float && numBits != 8 { return "float activations are FP8 E4M3 (num_bits 8), got \(numBits)" }
        if type == .float && !symmetric { return "FP8 activations are symmetric" }
        if !(2...8).contains(numBits) { return "int activations take 2 to 8 bits, got \(numBits)" }
        if strategy == .token && !dynamic { return "static per-token activations are not possible (a token's scale is only known at run time): use dynamic: true, or strategy: tensor for a calibrated scale" }
        return nil
    }

    public var description: String {
        (type == .float ? "fp8 e4m3" : "int\(numBits) \(symmetric ? "sym" : "asym")") + " \(dynamic ? "dynamic" : "static") per-\(strategy.rawValue)"
            + (outlierThreshold.map { ", columns with |x| ≥ \($0) in float (LLM.int8)" } ?? "")
    }

    /// `QuantizationArgs.model_dump()` of these activation arguments (field order as the
    /// pydantic model's, as compressed-tensors writes `input_activations`).
    public var compressedTensorsArguments: JSONValue {
        [
            "num_bits": .integer(numBits),
            "type": .string(type.rawValue),
            "symmetric": .bool(symmetric),
            "group_size": nil,
            "strategy": .string(strategy.rawValue),
            "block_structure": nil,
            "dynamic": .bool(dynamic),
            "actorder": nil,
            "observer": observer.map { .string($0) } ?? .null,
            "observer_kwargs": [:],
        ]
    }
}

/// One linear's input quantization: its scheme plus, when static, the calibrated scale and
/// (asymmetric) signed zero point — what `input_scale` / `input_zero_point` hold.
public struct InputActivationParameters: Sendable, Equatable {
    public var scheme: InputActivationScheme
    /// The per-tensor scale of a static scheme; nil when dynamic.
    public var scale: Float?
    /// The signed zero point of a static asymmetric scheme (int8: −128…127); nil otherwise.
    public var zeroPoint: Int32?

    /// Checks that a static scheme has a finite positive scale (and a zero point exactly when
    /// asymmetric) and a dynamic one has neither; `subject` names the layer in the error.
    public init(scheme: InputActivationScheme, scale: Float? = nil, zeroPoint: Int32? = nil,
                subject: String = "input activations") throws(QuantizedFormatError) {
        func fail(_ m: String) -> QuantizedFormatError { QuantizedFormatError(subject, m) }
        if let p = scheme.problem { throw fail(p) }
        if scheme.dynamic {
            guard scale == nil, zeroPoint == nil else { throw fail("dynamic activations store no input_scale or input_zero_point") }
        } else {
            guard let scale, scale.isFinite, scale > 0 else { throw fail("static activations need a finite positive input_scale, got \(scale.map { "\($0)" } ?? "none")") }
            let half = Int32(1) << Int32(scheme.numBits - 1)
            if scheme.symmetric {
                guard zeroPoint == nil || zeroPoint == 0 else { throw fail("symmetric activations have no zero point, got \(zeroPoint!)") }
            } else {
                guard let z = zeroPoint, (-half...(half - 1)).contains(z) else {
                    throw fail("static asymmetric activations need an input_zero_point in \(-half)...\(half - 1), got \(zeroPoint.map(String.init) ?? "none")")
                }
            }
        }
        self.scheme = scheme
        self.scale = scale
        self.zeroPoint = scheme.symmetric ? nil : zeroPoint
    }
}
