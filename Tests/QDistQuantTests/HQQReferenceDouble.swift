import Foundation

/// A float64 port of hqq 0.2.8's default quantizer, written from `hqq/core/quantize.py`
/// (`Quantizer.quantize`, axis=1, optimize=True) and `hqq/core/optimize.py`
/// (`shrink_lp_op`, `optimize_weights_proximal_legacy[_step]`), kept deliberately close to the
/// Python so it can be read side by side with it: whole-tensor arrays, one array operation per
/// Python line, no shortcuts (the shrinkage always evaluates the power; the Swift solver skips it
/// below a cutoff). It is the oracle the Swift solver is held to.
enum HQQReferenceDouble {
    struct Output {
        /// Inverse scales `s` per group (the library's `scale` before `1.0 / scale`).
        var inverseScales: [Double]
        /// Zero points per group as returned.
        var zeros: [Double]
        /// Final `W_q`, row-major.
        var codes: [Int]
        /// `current_error` of each step.
        var errors: [Double]
        /// The zero points after each step (`zerosAfterStep[i]` is what step i computed).
        var zerosAfterStep: [[Double]]
        /// Elements whose shrinkage was non-zero, summed over all steps (proves the l_p path ran).
        var shrunk: Int
        /// Per group, over every rounding the group did (all steps and the final codes): the
        /// smallest distance of an unclamped `W·s + z` from a rounding boundary (k + 0.5),
        /// divided by max(1, |W·s + z|). A float32 implementation computes `W·s + z` with a
        /// relative error of a few 1e-8, so where this is below a few ulps it may round the
        /// other way, and that group's zero point may then follow a different path.
        var closestTie: [Double]
    }

    /// `w` is (rows, columns) row-major; groups are `groupSize` consecutive entries.
    static func quantize(_ w: [Double], groupSize: Int, nbits: Int, roundZero: Bool,
                         lpNorm: Double = 0.7, beta: Double = 10, iters: Int = 20) -> Output {
        let groups = w.count / groupSize
        // W.reshape([-1, group_size]); _min/_max along axis 1
        let rowsOf: (Int) -> ArraySlice<Double> = { w[$0 * groupSize..<($0 + 1) * groupSize] }
        let minV = (0..<groups).map { rowsOf($0).min()! }
        let maxV = (0..<groups).map { rowsOf($0).max()! }
        let maxQ = Double((1 << nbits) - 1)
        // scale = max_v / denom; where(|denom| <= 1e-4, 1, scale); clamp(max=2e4)
        let scale = (0..<groups).map { g -> Double in
            let denom = maxV[g] - minV[g]
            return Swift.min(abs(denom) <= 1e-4 ? 1 : maxQ / denom, 2e4)
        }
        var zero = (0..<groups).map { -minV[$0] * scale[$0] }
        if roundZero { zero = zero.map { $0.rounded(.toNearestOrEven) } }

        var errors: [Double] = [], history: [[Double]] = [], shrunk = 0
        var closestTie = [Double](repeating: .infinity, count: groups)
        let recordTies = { (zero: [Double]) in
            for i in w.indices {
                let v = w[i] * scale[i / groupSize] + zero[i / groupSize]
                guard v > -0.5, v < maxQ + 0.5 else { continue }
                let distance = abs(v - v.rounded(.down) - 0.5) / Swift.max(1, abs(v))
                closestTie[i / groupSize] = Swift.min(closestTie[i / groupSize], distance)
            }
        }
        var best = Double.infinity
        for _ in 0..<iters {
            // optimize_weights_proximal_legacy_step
            recordTies(zero)
            let wq = quantizeCodes(w, scale, zero, groupSize, maxQ)
            let wr = (0..<w.count).map { (wq[$0] - zero[$0 / groupSize]) / scale[$0 / groupSize] }
            let we = (0..<w.count).map { shrinkLp(w[$0] - wr[$0], beta: beta, p: lpNorm) }
            shrunk += we.filter { $0 != 0 }.count
            zero = (0..<groups).map { g in
                (g * groupSize..<(g + 1) * groupSize).reduce(0.0) { $0 + (wq[$1] - (w[$1] - we[$1]) * scale[g]) }
                    / Double(groupSize)
            }
            history.append(zero)
            // current_error = abs(W_f - W_r).mean(); break unless it improved
            let current = (0..<w.count).reduce(0.0) { $0 + abs(w[$1] - wr[$1]) } / Double(w.count)
            errors.append(current)
            // best_error and current_error are float32 tensors in the library.
            if Float(current) < Float(best) { best = current } else { break }
        }
        recordTies(zero)
        let codes = quantizeCodes(w, scale, zero, groupSize, maxQ).map { Int($0) }
        return Output(inverseScales: scale, zeros: zero, codes: codes, errors: errors, zerosAfterStep: history,
                      shrunk: shrunk, closestTie: closestTie)
    }

    /// torch.round(W * scale + zero).clamp(0, max_v)
    static func quantizeCodes(_ w: [Double], _ scale: [Double], _ zero: [Double], _ groupSize: Int, _ maxQ: Double) -> [Double] {
        (0..<w.count).map { i in
            Swift.min(Swift.max((w[i] * scale[i / groupSize] + zero[i / groupSize]).rounded(.toNearestOrEven), 0), maxQ)
        }
    }

    /// sign(x) * relu(|x| - (1/beta) * |x|^(p-1)); at x = 0 the power is +inf and relu gives 0.
    static func shrinkLp(_ x: Double, beta: Double, p: Double) -> Double {
        let sign: Double = x > 0 ? 1 : (x < 0 ? -1 : 0)
        return sign * Swift.max(abs(x) - (1 / beta) * pow(abs(x), p - 1), 0)
    }
}
