import Foundation
import QDistTensor

/// The causal-LM loss of Hugging Face's `LlamaForCausalLM`: cross-entropy of the output head's
/// logits against the next token, rows labelled `ignoreIndex` (−100: prompt tokens, padding)
/// skipped, summed here and divided by the caller (mean over counted tokens).
public enum CausalLMLoss {
    /// The label that excludes a position from the loss, as in PyTorch's `CrossEntropyLoss`.
    public static let ignoreIndex = -100

    /// Most logits held at once (rows × vocab): bounds the head's memory to ~32 MB whatever the
    /// batch, instead of a (tokens, vocab) matrix (100 MB for 512 tokens of a 49k vocabulary).
    public static let maxLogitElements = 1 << 23

    /// Σ over rows with a counted target of logsumexp(z) − z[target]; with `gradientScale`,
    /// replaces `logits` in place by scale · (softmax(z) − onehot(target)) (zero on ignored rows).
    public static func softmaxCrossEntropy(logits: inout Tensor, targets: [Int], gradientScale: Float?) -> (sum: Double, counted: Int) {
        let v = logits.columns
        precondition(logits.rows == targets.count, "\(logits.rows) logit rows for \(targets.count) targets")
        var total = 0.0, counted = 0
        logits.withUnsafeMutableBufferPointer { p in
            for (t, target) in targets.enumerated() {
                let row = p.baseAddress! + t * v
                guard target != ignoreIndex else {
                    if gradientScale != nil { row.update(repeating: 0, count: v) }
                    continue
                }
                precondition(target >= 0 && target < v, "label \(target) outside vocabulary of \(v)")
                var m = -Float.infinity
                for j in 0..<v { m = max(m, row[j]) }
                let targetLogit = row[target]
                // Exponentials summed in Float (terms ≤ 1 after subtracting the max), as the eval
                // loss does; with a gradient they are kept in the row, so each is computed once.
                var s: Float = 0
                if let scale = gradientScale {
                    for j in 0..<v { let e = expf(row[j] - m); row[j] = e; s += e }
                    let k = scale / s
                    for j in 0..<v { row[j] *= k }
                    row[target] -= scale
                } else {
                    for j in 0..<v { s += expf(row[j] - m) }
                }
                total += Double(m) + log(Double(s)) - Double(targetLogit)
                counted += 1
            }
        }
        return (total, counted)
    }

    /// The loss through the frozen output head, from the final hidden states h (rows, hidden)
    /// and a target per row (`ignoreIndex` to skip): only counted rows are projected, a chunk at
    /// a time. With `gradientScale` s, also returns dL/dh for L = s · sum (zero on skipped rows).
    public static func headLoss(hidden h: Tensor, head: Tensor, targets: [Int], gradientScale: Float?)
        -> (sum: Double, counted: Int, hiddenGradient: Tensor?)
    {
        let width = h.columns, vocab = head.rows
        precondition(h.rows == targets.count && head.columns == width,
                     "loss: hidden \(h.shape), head \(head.shape), \(targets.count) targets")
        let rows = targets.indices.filter { targets[$0] != ignoreIndex }
        var gradient = gradientScale.map { _ in Tensor.zeros(h.shape) }
        var total = 0.0
        let chunk = max(1, maxLogitElements / max(vocab, 1))
        for start in stride(from: 0, to: rows.count, by: chunk) {
            let picked = Array(rows[start..<min(start + chunk, rows.count)])
            let x = h.gatheringRows(picked)  // (c, hidden)
            var z = Tensor.matmul(x, head, transposeB: true)  // (c, vocab)
            total += softmaxCrossEntropy(logits: &z, targets: picked.map { targets[$0] }, gradientScale: gradientScale).sum
            if gradient != nil {
                let dx = Tensor.matmul(z, head)  // (c, hidden)
                gradient!.scatterAddRows(dx, at: picked)
            }
        }
        return (total, rows.count, gradient)
    }
}
