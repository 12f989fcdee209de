import Foundation
import QDistTensor

extension CausalLMLoss {
    /// Next-token labels drawn from the model's own predictive distribution: for every row of h
    /// whose `targets` entry is counted, one token sampled from softmax(h·headᵀ) with a
    /// generator seeded by `seed` (rows in order, so the labels depend only on the logits and
    /// the seed); ignored rows stay `ignoreIndex`.
    ///
    /// Backpropagating the loss of such labels gives gradients whose squares estimate the
    /// model's true Fisher (the Gauss–Newton curvature of the loss, the Hessian of
    /// KL(model ‖ perturbed model)), where the data's labels give the empirical Fisher.
    public static func sampledTargets(hidden h: Tensor, head: Tensor, targets: [Int], seed: UInt64) -> [Int] {
        let vocab = head.rows
        precondition(h.rows == targets.count && head.columns == h.columns,
                     "sampled targets: hidden \(h.shape), head \(head.shape), \(targets.count) targets")
        var sampled = targets
        var generator = SeededGenerator(seed: seed)
        let rows = targets.indices.filter { targets[$0] != ignoreIndex }
        let chunk = max(1, maxLogitElements / max(vocab, 1))
        for start in stride(from: 0, to: rows.count, by: chunk) {
            let picked = Array(rows[start..<min(start + chunk, rows.count)])
            let z = Tensor.matmul(h.gatheringRows(picked), head, transposeB: true)  // (c, vocab)
            z.withUnsafeBufferPointer { p in
                for (k, row) in picked.enumerated() {
                    let logits = UnsafeBufferPointer(rebasing: p[(k * vocab)..<((k + 1) * vocab)])
                    sampled[row] = sample(logits: logits, uniform: generator.uniform())
                }
            }
        }
        return sampled
    }

    /// The index i with Σ_{j<i} p_j ≤ u·Σp < Σ_{j≤i} p_j for p = exp(z − max z), summed in
    /// Double; the last index with nonzero mass if rounding leaves u past the end.
    static func sample(logits z: UnsafeBufferPointer<Float>, uniform u: Double) -> Int {
        var m = -Float.infinity
        for v in z { m = max(m, v) }
        var total = 0.0
        for v in z { total += exp(Double(v - m)) }
        let threshold = u * total
        var running = 0.0, last = 0
        for (j, v) in z.enumerated() {
            let e = exp(Double(v - m))
            guard e > 0 else { continue }
            running += e
            last = j
            if running > threshold { return j }
        }
        return last
    }
}
