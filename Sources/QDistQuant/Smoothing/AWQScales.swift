import Foundation
import QDistTensor

/// AWQ's candidate smoothing scales, as llm-compressor's `AWQModifier` draws them (FORMATS.md
/// 7.2, 10.1): from the per-channel mean |x| of the balance layers' input and the per-channel
/// mean of group-normalised |W|, one candidate per grid ratio r,
///
///     duo scaling:  s = max(x_mean^r / (w_mean^(1−r) + 1e-4), 1e-4)
///     otherwise:    s = max(x_mean^r, 1e-4)
///     then          s /= sqrt(max(s) · min(s))      (inf, nan → 1)
///
/// The caller measures each candidate's output loss under Q(W·s)/s and keeps the first minimum.
public enum AWQScales {
    /// How the grid is spent on the two formulas (`duo_scaling` in the recipe).
    public enum DuoScaling: Sendable, Equatable {
        /// Activation-only ratios r = i/(n−1).
        case off
        /// llm-compressor's default: the identity (r = 0, activation-only) then duo ratios
        /// r = i/(n−2), i = 0…n−2.
        case on
        /// n/2 ratios, each tried activation-only then duo.
        case both
    }

    /// The grid: (ratio, duo) pairs in the order they are tried.
    public static func grid(points n: Int, duo: DuoScaling) -> [(ratio: Double, duo: Bool)] {
        switch duo {
        case .off: return (0..<n).map { (Double($0) / Double(max(n - 1, 1)), false) }
        case .on: return [(0, false)] + (0..<(n - 1)).map { (Double($0) / Double(max(n - 2, 1)), true) }
        case .both:
            let half = n / 2
            return (0..<half).flatMap { i -> [(ratio: Double, duo: Bool)] in
                let r = Double(i) / Double(max(half - 1, 1))
                return [(r, false), (r, true)]
            }
        }
    }

    /// One candidate scale vector.
    public static func scales(xMean: [Double], wMean: [Double], ratio r: Double, duo: Bool) -> [Float] {
        var s = xMean.indices.map { j -> Double in
            let v = duo ? pow(xMean[j], r) / (pow(wMean[j], 1 - r) + 1e-4) : pow(xMean[j], r)
            return max(v, 1e-4)
        }
        let norm = (s.max()! * s.min()!).squareRoot()
        for j in s.indices {
            s[j] /= norm
            if !s[j].isFinite { s[j] = 1 }
        }
        return s.map(Float.init)
    }

    /// Per input column: the mean over every balance layer's rows of |W| divided by its chunk's
    /// max |W| (+1e-6), a chunk being a group of `chunkSize` consecutive weights of a row
    /// (the group size; the whole row for per-channel; the whole tensor for per-tensor).
    public static func weightMean(_ weights: [Tensor], chunkSizes: [Int]) -> [Double] {
        guard let columns = weights.first?.columns else { return [] }
        var sum = [Double](repeating: 0, count: columns)
        var rows = 0
        for (w, chunk) in zip(weights, chunkSizes) {
            w.withUnsafeBufferPointer { p in
                let count = p.count
                var start = 0
                var normalised = [Float](repeating: 0, count: count)
                while start < count {
                    let end = min(start + chunk, count)
                    var m: Float = 0
                    for i in start..<end { m = max(m, abs(p[i])) }
                    let d = m + 1e-6
                    for i in start..<end { normalised[i] = abs(p[i]) / d }
                    start = end
                }
                for r in 0..<w.rows {
                    for j in 0..<columns { sum[j] += Double(normalised[r * columns + j]) }
                }
            }
            rows += w.rows
        }
        return sum.map { $0 / Double(rows) }
    }
}
