import QDistTensor

/// A streaming histogram of |x| (plus the exact min and max) for percentile and KL calibration,
/// kept so that batches and ranks combine exactly.
///
/// The histogram covers `[0, 2^exponent)` with `counts.count` equal bins, where `2^exponent` is
/// the smallest power of two above every |x| seen. A value's bin is `floor(|x|·bins/2^exponent)`,
/// computed exactly in Double; when a larger value arrives the range doubles and bin `i` moves to
/// `i >> k`, which is exactly where a histogram built at the wider range would have put it. So
/// the result depends only on the multiset of values seen, never on batch order or on how the
/// values were split across ranks. (TensorRT's calibrator uses `[0, absmax]`; the power-of-two
/// range costs up to a factor two of resolution.)
///
/// Combining over ranks with Allreduce: MIN on `[min]`, MAX on `[max]`, MAX on `[exponent]`, then
/// each rank calls `widen(toExponent:)`, then SUM on `counts` and on `[nonFinite]` — which is
/// what `merge` does in one process. Failure mode: NaN and ±∞ are not binned but counted in
/// `nonFinite`, which a pipeline should report rather than calibrate through.
public struct HistogramStatistics: Sendable, Equatable {
    /// The narrowest range used: values below 2^−64 all land in bin 0.
    public static let minimumExponent = -64

    /// Smallest and largest finite value seen (+∞ / −∞ before any).
    public var min: Float
    public var max: Float
    /// The histogram covers |x| in `[0, 2^exponent)`.
    public var exponent: Int
    /// Counts per bin (Double so Allreduce SUM is exact up to 2^53 values).
    public var counts: [Double]
    /// NaN and infinite values skipped.
    public var nonFinite: Double

    public init(bins: Int = 2048) {
        precondition(bins >= 2 && bins % 2 == 0, "histogram bins must be even, got \(bins)")
        min = .infinity
        max = -.infinity
        exponent = Self.minimumExponent
        counts = [Double](repeating: 0, count: bins)
        nonFinite = 0
    }

    /// State as received from the Allreduce sequence described above.
    public init(min: Float, max: Float, exponent: Int, counts: [Double], nonFinite: Double = 0) {
        self.min = min
        self.max = max
        self.exponent = exponent
        self.counts = counts
        self.nonFinite = nonFinite
    }

    public var bins: Int { counts.count }
    /// Values binned so far.
    public var total: Double { counts.reduce(0, +) }
    /// Width of one bin.
    public var binWidth: Double { Double(sign: .plus, exponent: exponent, significand: 1) / Double(bins) }

    /// Folds in every element of `batch`.
    public mutating func observe(_ batch: Tensor) {
        batch.withUnsafeBufferPointer { observe($0) }
    }

    /// Folds in `values`.
    public mutating func observe(_ values: UnsafeBufferPointer<Float>) {
        var absMax: Float = 0
        for x in values where x.isFinite {
            min = Swift.min(min, x)
            max = Swift.max(max, x)
            absMax = Swift.max(absMax, x.magnitude)
        }
        if absMax > 0 { widen(toExponent: Swift.max(Int(absMax.exponent) + 1, Self.minimumExponent)) }
        let toBins = Double(bins) * Double(sign: .plus, exponent: -exponent, significand: 1)
        let last = bins - 1
        counts.withUnsafeMutableBufferPointer { c in
            for x in values {
                guard x.isFinite else { nonFinite += 1; continue }
                c[Swift.min(Int(Double(x.magnitude) * toBins), last)] += 1
            }
        }
    }

    /// Re-bins to the wider range `[0, 2^e)` (no-op if `e` is not wider).
    public mutating func widen(toExponent e: Int) {
        guard e > exponent else { return }
        let k = e - exponent
        var merged = [Double](repeating: 0, count: bins)
        if k < Int.bitWidth - 1 {
            for (i, n) in counts.enumerated() where n != 0 { merged[i >> k] += n }
        } else {
            merged[0] = total
        }
        counts = merged
        exponent = e
    }

    /// One state equal to observing all the parts' values in one process.
    public static func merge(_ parts: [HistogramStatistics]) -> HistogramStatistics {
        precondition(!parts.isEmpty, "merge of no histograms")
        let e = parts.map(\.exponent).max()!
        var out = HistogramStatistics(bins: parts[0].bins)
        out.exponent = e
        for var p in parts {
            precondition(p.bins == out.bins, "merging \(p.bins) bins into \(out.bins)")
            p.widen(toExponent: e)
            out.min = Swift.min(out.min, p.min)
            out.max = Swift.max(out.max, p.max)
            out.nonFinite += p.nonFinite
            for i in 0..<out.bins { out.counts[i] += p.counts[i] }
        }
        return out
    }

    /// The symmetric clip `[−t, t]` intersected with the observed range (`[0, 0]` if empty).
    public func clip(threshold t: Double) -> ClipRange {
        guard min <= max else { return ClipRange(min: 0, max: 0) }
        let tf = Float(t)
        return ClipRange(min: Swift.max(min, -tf), max: Swift.min(max, tf))
    }
}
