import QDistTensor

/// The clipping range `[min, max]` of one quantization group; the grid widens it to include 0.
public struct ClipRange: Sendable, Equatable {
    public var min: Float
    public var max: Float

    public init(min: Float, max: Float) {
        self.min = min
        self.max = max
    }
}

/// Chooses the clipping range of one group of weights, seen all at once.
///
/// Why a protocol: the grid, RTN and GPTQ's per-group parameter search take any observer, so
/// MSE or percentile clipping plugs into GPTQ the way gptq's `Quantizer(mse=True)` does.
/// Failure mode: an empty group has no range; observers return `[0, 0]`, which the grid turns
/// into the smallest scale (eps), so the group's codes are all zero.
public protocol WeightRangeObserver: Sendable {
    /// The range for `values` (one tensor, row, or group), given the grid it will feed.
    func range(of values: UnsafeBufferPointer<Float>, grid: QuantizationGrid) -> ClipRange
}

extension QuantizationArgs {
    /// The weight observer `observer` names, with this value's parameters.
    public func makeWeightObserver() -> any WeightRangeObserver {
        switch observer {
        case .minmax, .absmax: return MinMaxObserver()
        case .mse: return MSEObserver(mse)
        case .percentile: return PercentileObserver(percentile: percentile, bins: histogramBins)
        case .kl: return KLObserver(bins: histogramBins, quantizedBins: 1 << (numBits - 1))
        case .absmean: return AbsMeanObserver()
        }
    }
}

/// BitNet b1.58's weight scale: the mean |w| (at least 1e-5), returned as the symmetric range
/// `±γ`, so the ternary grid (codes −1…1, `QuantizationArgs.codeRange`) gets `scale = γ`.
/// The mean is accumulated in Double, so it does not depend on how long the group is.
public struct AbsMeanObserver: WeightRangeObserver {
    public init() {}

    public func range(of values: UnsafeBufferPointer<Float>, grid: QuantizationGrid) -> ClipRange {
        guard !values.isEmpty else { return ClipRange(min: 0, max: 0) }
        var sum = 0.0
        for x in values { sum += Double(x.magnitude) }
        let gamma = Swift.max(Float(sum / Double(values.count)), 1e-5)
        return ClipRange(min: -gamma, max: gamma)
    }
}

/// The exact minimum and maximum: compressed-tensors' default `minmax` observer (for weights
/// its memoryless form) and gptq's `find_params`.
///
/// Failure mode: one outlier stretches the whole group's scale; MSE or percentile clipping trade
/// that outlier's error for everyone else's resolution.
public struct MinMaxObserver: WeightRangeObserver {
    public init() {}

    public func range(of values: UnsafeBufferPointer<Float>, grid: QuantizationGrid) -> ClipRange {
        Self.exactRange(values)
    }

    /// Min and max of `values` (`[0, 0]` when empty).
    @inlinable
    public static func exactRange(_ values: UnsafeBufferPointer<Float>) -> ClipRange {
        guard var lo = values.first else { return ClipRange(min: 0, max: 0) }
        var hi = lo
        for x in values {
            lo = Swift.min(lo, x)
            hi = Swift.max(hi, x)
        }
        return ClipRange(min: lo, max: hi)
    }
}

/// Streaming min/max of activations, per tensor or per channel (last dimension), whose state is
/// two plain arrays so ranks can combine it with Allreduce MIN on `mins` and MAX on `maxs`.
///
/// Why: static activation scales must come from every calibration token, and the tokens are
/// spread over ranks; `merge` of per-rank states equals one state that saw all batches.
/// Failure mode: NaN values are skipped (they would otherwise poison or vanish depending on
/// order); infinities are kept and produce an infinite range, which a caller should reject.
public struct MinMaxStatistics: Sendable, Equatable {
    /// Per channel (or one entry for per-tensor) running minimum; +∞ before any data.
    public var mins: [Float]
    /// Per channel running maximum; −∞ before any data.
    public var maxs: [Float]

    /// `channels` = 1 for a per-tensor range, or the activation's last dimension.
    public init(channels: Int = 1) {
        mins = [Float](repeating: .infinity, count: channels)
        maxs = [Float](repeating: -.infinity, count: channels)
    }

    /// State as received from an Allreduce.
    public init(mins: [Float], maxs: [Float]) {
        precondition(mins.count == maxs.count, "mins and maxs differ in length")
        self.mins = mins
        self.maxs = maxs
    }

    public var channels: Int { mins.count }

    /// Folds in a batch: any tensor whose last dimension is the channel count (per-channel) or
    /// any tensor at all (per-tensor).
    public mutating func observe(_ batch: Tensor) {
        let c = channels
        precondition(c == 1 || batch.columns == c, "batch has \(batch.columns) channels, statistics \(c)")
        batch.withUnsafeBufferPointer { p in
            for (i, x) in p.enumerated() where !x.isNaN {
                let k = c == 1 ? 0 : i % c
                if x < mins[k] { mins[k] = x }
                if x > maxs[k] { maxs[k] = x }
            }
        }
    }

    /// Elementwise min of mins and max of maxs: what Allreduce MIN/MAX computes.
    public static func merge(_ parts: [MinMaxStatistics]) -> MinMaxStatistics {
        precondition(!parts.isEmpty, "merge of no statistics")
        var out = parts[0]
        for p in parts.dropFirst() {
            precondition(p.channels == out.channels, "merging \(p.channels) channels into \(out.channels)")
            for k in 0..<out.channels {
                out.mins[k] = Swift.min(out.mins[k], p.mins[k])
                out.maxs[k] = Swift.max(out.maxs[k], p.maxs[k])
            }
        }
        return out
    }

    /// The clipping range of channel `k` (`[0, 0]` if nothing was observed).
    public func range(channel k: Int = 0) -> ClipRange {
        mins[k] > maxs[k] ? ClipRange(min: 0, max: 0) : ClipRange(min: mins[k], max: maxs[k])
    }
}
