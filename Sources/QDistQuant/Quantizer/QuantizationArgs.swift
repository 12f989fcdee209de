/// How one weight (or activation) tensor is quantized: the compressed-tensors `QuantizationArgs`
/// subset qdist implements (FORMATS.md §5.1), as a plain value the recipe decoder fills in.
///
/// Why a separate value: the grid, the observers and the GPTQ solver all read the same settings,
/// and a recipe, a preset and a test build them the same way. Failure mode: settings that no
/// checkpoint format can hold (a group size that does not divide the input features, 4-bit
/// floats, actorder "group" without groups) are not caught here at construction but by
/// `validate(inFeatures:)` (and `validateStructure()`), which say what would work instead.
public struct QuantizationArgs: Sendable, Equatable {
    /// The code type: a signed integer grid or FP8 E4M3 (compressed-tensors `type`), or one of
    /// bitsandbytes' 4-bit code books (`nf4`, `fp4`; a qdist extension, written only as a
    /// bitsandbytes folder): 16 fixed values in [−1, 1] scaled by each group's absmax.
    public enum ValueType: String, Sendable, CaseIterable {
        case int, float, nf4, fp4

        /// The bitsandbytes code book of `nf4` / `fp4`; nil for int and FP8.
        public var fourBitType: FourBitQuantType? {
            switch self {
            case .nf4: return .nf4
            case .fp4: return .fp4
            case .int, .float: return nil
            }
        }
    }

    /// How many values share one scale (compressed-tensors `strategy`).
    public enum Strategy: String, Sendable, CaseIterable {
        /// One scale for the whole tensor: scale shape `[1]`.
        case tensor
        /// One scale per output feature (weight row): `[out, 1]`.
        case channel
        /// One scale per `groupSize` consecutive input features of each row: `[out, ceil(in/gs)]`.
        case group
    }

    /// How the clipping range of a group is chosen before the scale is derived from it.
    public enum ObserverKind: String, Sendable, CaseIterable {
        /// The exact min and max (compressed-tensors' default).
        case minmax
        /// Shrink min/max on a grid and keep the shrink with the lowest Σ|x − q(x)|^norm.
        case mse
        /// The `percentile`-th percentile of |x| from a histogram (activations mostly).
        case percentile
        /// TensorRT's entropy calibration: the threshold minimising KL(P‖Q).
        case kl
        /// BitNet b1.58's ternary scale (FORMATS.md §7.5): `γ = max(mean|w|, 1e-5)` over the
        /// tensor, row or group, for 2-bit symmetric weights whose codes are then −1, 0, 1
        /// (`round(clamp(w/γ, −1, 1))`, half to even).
        case absmean
        /// LLM.int8's vector-wise absmax (bitsandbytes `Linear8bitLt`, FORMATS.md §6.6/§7.4):
        /// 8-bit symmetric codes −127…127 and `scale = max|w| / 127`, so the stored `SCB` is
        /// the row's largest |w|.
        case absmax
    }

    /// Activation ordering (compressed-tensors `actorder`): process input columns by descending
    /// Hessian diagonal. Spelled with compressed-tensors' aliases: `static` ≡ "weight", `group`
    /// ≡ "dynamic".
    public enum ActivationOrdering: String, Sendable, CaseIterable {
        /// Columns are processed in activation order but groups stay the original consecutive
        /// column ranges (llm-compressor "weight"; gptq `act_order` + `static_groups`): no g_idx
        /// is needed to load the result.
        case `static`
        /// Groups are formed in activation order (gptq `act_order`; llm-compressor "group"):
        /// the checkpoint needs `g_idx`, which is non-monotonic.
        case group
    }

    /// The MSE observer's search: shrink factors `p = 1 − i/grid` for `i < Int(maxShrink·grid)`.
    /// Defaults are gptq `quant.py`'s (grid 100, maxshrink 0.8, norm 2.4); llm-compressor's
    /// current `mse` observer uses maxshrink 0.20 with patience 5.
    public struct MSEParameters: Sendable, Equatable {
        public var grid: Double
        public var maxShrink: Double
        public var norm: Double
        /// Stop after this many candidates without improvement (nil: try them all, as gptq).
        public var patience: Int?

        public init(grid: Double = 100, maxShrink: Double = 0.8, norm: Double = 2.4, patience: Int? = nil) {
            self.grid = grid
            self.maxShrink = maxShrink
            self.norm = norm
            self.patience = patience
        }
    }

    public var numBits: Int
    public var type: ValueType
    public var symmetric: Bool
    public var strategy: Strategy
    /// Input features per group; required (> 0) for `.group`, ignored otherwise.
    public var groupSize: Int?
    public var observer: ObserverKind
    public var actorder: ActivationOrdering?
    public var mse: MSEParameters
    /// The percentile observer's percentile of |x| (TensorRT / pytorch-quantization: 99.99).
    public var percentile: Double
    /// Histogram bins of the percentile and KL observers (TensorRT: 2048).
    public var histogramBins: Int
    /// For `nf4` / `fp4`: keep each group's absmax double-quantized (QLoRA's
    /// `bnb_4bit_use_double_quant`, FORMATS.md §6.4) — 8 bits per group plus a float per 256
    /// groups, computed over the whole weight. The codes are still chosen with the exact absmax
    /// (as bitsandbytes does); the weight is read back with the compressed one.
    public var doubleQuantize: Bool

    public init(numBits: Int = 8, type: ValueType = .int, symmetric: Bool = true, strategy: Strategy = .tensor,
                groupSize: Int? = nil, observer: ObserverKind = .minmax, actorder: ActivationOrdering? = nil,
                mse: MSEParameters = MSEParameters(), percentile: Double = 99.99, histogramBins: Int = 2048,
                doubleQuantize: Bool = false) {
        self.doubleQuantize = doubleQuantize
        self.numBits = numBits
        self.type = type
        self.symmetric = symmetric
        self.strategy = strategy
        self.groupSize = groupSize
        self.observer = observer
        self.actorder = actorder
        self.mse = mse
        self.percentile = percentile
        self.histogramBins = histogramBins
    }

    /// W4A16 as llm-compressor's preset: int4 symmetric, groups of 128, minmax.
    public static func w4a16(groupSize: Int = 128) -> QuantizationArgs {
        QuantizationArgs(numBits: 4, type: .int, symmetric: true, strategy: .group, groupSize: groupSize)
    }

    /// The smallest and largest code: −2^(b−1)…2^(b−1)−1 for int, ±448 for FP8 E4M3.
    public var codeRange: (min: Float, max: Float) {
        switch type {
        case .int where observer == .absmean: return (-1, 1)  // ternary
        case .int where observer == .absmax: return (-127, 127)  // LLM.int8: no −128
        case .int: return (-Float(1 << (numBits - 1)), Float(1 << (numBits - 1)) - 1)
        case .float: return (-448, 448)
        case .nf4, .fp4: return (-1, 1)  // the code books span [−1, 1]: scale = absmax
        }
    }

    /// The column group size the grid uses: `groupSize` for `.group`, else all `inFeatures`.
    public func effectiveGroupSize(inFeatures: Int) -> Int {
        strategy == .group ? (groupSize ?? inFeatures) : max(inFeatures, 1)
    }

    /// Checks the settings that do not depend on a tensor's shape; the grid and GPTQ call it.
    public func validateStructure() throws(QuantizationArgsError) {
        switch type {
        case .int where !(2...8).contains(numBits):
            throw QuantizationArgsError("num_bits \(numBits) is not supported for int: use 2 to 8")
        case .float where numBits != 8:
            throw QuantizationArgsError("num_bits \(numBits) is not supported for float: only 8 (FP8 E4M3)")
        case .float where !symmetric:
            throw QuantizationArgsError("float (FP8) quantization must be symmetric (compressed-tensors has no FP8 zero point)")
        default: break
        }
        if type.fourBitType != nil {
            guard numBits == 4, symmetric, strategy == .group else {
                throw QuantizationArgsError("\(type.rawValue) weights are 4-bit, symmetric, in groups (bitsandbytes blocks): num_bits 4, strategy group")
            }
            guard BlockwiseFourBit.validBlockSizes.contains(groupSize ?? 0) else {
                throw QuantizationArgsError("\(type.rawValue) group_size \(groupSize.map(String.init) ?? "null") is not a bitsandbytes block size (32, 64, …, 4096; QLoRA uses 64)")
            }
            guard actorder != .group else { throw QuantizationArgsError("\(type.rawValue) weights have no g_idx: use actorder static") }
        }
        if doubleQuantize && type.fourBitType == nil {
            throw QuantizationArgsError("double quantization is of nf4/fp4 group absmaxes; \(type.rawValue) weights have none")
        }
        if observer == .absmax && (type != .int || numBits != 8 || !symmetric) {
            throw QuantizationArgsError("observer absmax is LLM.int8's weight scale: it needs 8-bit symmetric int weights")
        }
        if observer == .absmean && (type != .int || numBits != 2 || !symmetric) {
            throw QuantizationArgsError("observer absmean is BitNet's ternary scale: it needs 2-bit symmetric int weights")
        }
        if strategy == .group {
            guard let gs = groupSize, gs > 0 else {
                throw QuantizationArgsError("strategy group needs group_size > 0, got \(groupSize.map(String.init) ?? "null")")
            }
        }
        if actorder == .group && strategy != .group {
            throw QuantizationArgsError(
                "actorder group forms groups in activation order, so it needs strategy group (got \(strategy.rawValue)); use actorder static")
        }
        if observer == .mse && !(mse.grid > 0 && mse.maxShrink > 0 && mse.maxShrink < 1 && mse.norm > 0) {
            throw QuantizationArgsError("mse observer needs grid > 0, 0 < maxshrink < 1, norm > 0")
        }
        if observer == .percentile && !(percentile > 0 && percentile <= 100) {
            throw QuantizationArgsError("percentile \(percentile) is not in (0, 100]")
        }
        if histogramBins < 2 * (1 << (numBits - 1)) || histogramBins % 2 != 0 {
            throw QuantizationArgsError("histogram bins \(histogramBins) must be even and at least \(2 * (1 << (numBits - 1)))")
        }
    }

    /// Checks that a checkpoint can store these settings for a Linear with `inFeatures` inputs:
    /// compressed-tensors and GPTQ store `[out, in/group_size]` scales, so the group size must
    /// divide `inFeatures`. The error lists the group sizes that would.
    public func validate(inFeatures: Int) throws(QuantizationArgsError) {
        try validateStructure()
        guard strategy == .group, let gs = groupSize, inFeatures % gs != 0 else { return }
        let divisors = (1...max(inFeatures, 1)).filter { inFeatures % $0 == 0 }
        let usable = divisors.filter { $0 % 8 == 0 }
        let nearest = (usable.isEmpty ? divisors : usable).sorted { abs($0 - gs) < abs($1 - gs) }.prefix(2)
        throw QuantizationArgsError(
            "group_size \(gs) does not divide in_features \(inFeatures) (\(inFeatures) = \(inFeatures / gs) × \(gs) + "
                + "\(inFeatures % gs)); group sizes that divide \(inFeatures)"
                + (usable.isEmpty ? ": " : " and are multiples of 8: ")
                + (usable.isEmpty ? divisors : usable).map(String.init).joined(separator: ", ")
                + " (nearest: \(nearest.map(String.init).joined(separator: ", "))), or use strategy channel")
    }
}

/// Why quantization settings were rejected, in words a recipe author can act on.
public struct QuantizationArgsError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
