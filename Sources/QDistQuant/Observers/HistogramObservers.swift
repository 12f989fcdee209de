import Foundation

/// An observer that clips |x| at a threshold chosen from a histogram: the part percentile and
/// KL share (build the histogram of a weight, or take merged activation statistics, then clip).
public protocol HistogramThresholdObserver: WeightRangeObserver {
    /// Histogram bins used when observing a weight directly.
    var bins: Int { get }
    /// The |x| threshold for these statistics.
    func threshold(_ h: HistogramStatistics) -> Double
}

extension HistogramThresholdObserver {
    public func range(of values: UnsafeBufferPointer<Float>, grid: QuantizationGrid) -> ClipRange {
        var h = HistogramStatistics(bins: bins)
        h.observe(values)
        return range(of: h)
    }

    /// The clipping range from accumulated (possibly merged) statistics.
    public func range(of h: HistogramStatistics) -> ClipRange {
        h.clip(threshold: threshold(h))
    }
}

/// Clips |x| at a percentile of its histogram (pytorch-quantization `_compute_amax_percentile`:
/// the lower edge of the first bin whose cumulative share reaches `percentile`/100).
///
/// Why: activations have rare huge values (attention sinks, massive activations); clipping the
/// top 0.01 % keeps resolution for the rest. Failure mode: on small groups (a weight group of 64
/// values) 0.01 % is less than one value, so the threshold is just the histogram's last occupied
/// bin edge: close to min/max, not better.
public struct PercentileObserver: HistogramThresholdObserver {
    public let percentile: Double
    public let bins: Int

    public init(percentile: Double = 99.99, bins: Int = 2048) {
        self.percentile = percentile
        self.bins = bins
    }

    /// The |x| threshold.
    public func threshold(_ h: HistogramStatistics) -> Double {
        let total = h.total
        guard total > 0 else { return 0 }
        let target = percentile / 100
        var cumulative = 0.0
        for (i, n) in h.counts.enumerated() {
            cumulative += n / total
            if cumulative >= target { return Double(i) * h.binWidth }
        }
        return Double(h.bins) * h.binWidth
    }
}

/// TensorRT's entropy calibration (as NVIDIA pytorch-quantization `_compute_amax_entropy` writes
/// it out): for every candidate threshold of `i ≥ 128` bins, fold the clipped tail into bin
/// `i−1` (P), merge the `i` bins into `quantizedBins` levels and spread each level evenly over
/// its non-empty bins (Q), and keep the last `i` with the smallest KL(P‖Q).
///
/// `quantizedBins` is 2^(b−1): the 255 levels −127…127 of symmetric int8 are 128 magnitudes of
/// |x|. As the reference does, bin 0's count is replaced by bin 1's before the search (so the
/// zeros ReLU produces do not dominate P). Why: it finds a threshold below absmax when a few
/// outliers would waste most levels. Failure mode: with fewer than ~1000 values the histogram is
/// mostly empty bins, the divergence is noisy, and the threshold can clip real data.
public struct KLObserver: HistogramThresholdObserver {
    public let bins: Int
    public let quantizedBins: Int
    /// The smallest candidate, in bins (reference: 128).
    public let startBin: Int

    public init(bins: Int = 2048, quantizedBins: Int = 128, startBin: Int = 128) {
        self.bins = bins
        self.quantizedBins = quantizedBins
        self.startBin = startBin
    }

    /// The |x| threshold minimising KL(P‖Q): the upper edge of the chosen `i` bins.
    public func threshold(_ h: HistogramStatistics) -> Double {
        var hist = h.counts
        guard hist.count > 1, h.total > 0 else { return 0 }
        hist[0] = hist[1]
        let n = hist.count
        let start = min(startBin, n)
        var suffix = [Double](repeating: 0, count: n + 1)  // suffix[i] = Σ hist[i...]
        for i in stride(from: n - 1, through: 0, by: -1) { suffix[i] = suffix[i + 1] + hist[i] }
        var bestI = n, bestKL = Double.infinity
        var levelSum = [Double](repeating: 0, count: quantizedBins)
        var levelNonEmpty = [Int](repeating: 0, count: quantizedBins)
        for i in start...n {
            // P: the first i bins with the tail folded into the last; Q: levels spread evenly.
            for k in 0..<quantizedBins { levelSum[k] = 0; levelNonEmpty[k] = 0 }
            for j in 0..<i where hist[j] != 0 {
                let k = j * quantizedBins / i
                levelSum[k] += hist[j]
                levelNonEmpty[k] += 1
            }
            var qTotal = 0.0
            for k in 0..<quantizedBins where levelNonEmpty[k] > 0 { qTotal += levelSum[k] }
            let pTotal = suffix[0]
            guard qTotal > 0, pTotal > 0 else { continue }
            var kl = 0.0
            for j in 0..<i {
                let p = (j == i - 1 ? hist[j] + suffix[i] : hist[j]) / pTotal
                guard p > 0 else { continue }
                let k = j * quantizedBins / i
                let q = hist[j] == 0 ? 0 : levelSum[k] / Double(levelNonEmpty[k]) / qTotal
                if q == 0 { kl = .infinity; break }
                kl += p * log(p / q)
            }
            if kl <= bestKL {  // "<=": the last minimum, as the reference's reversed argmin
                bestKL = kl
                bestI = i
            }
        }
        return Double(bestI) * h.binWidth
    }
}
