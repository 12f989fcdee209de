import QDistTensor

/// Wanda: prune by weight magnitude times input norm, without any update (FORMATS.md §12.2,
/// llm-compressor 0.14's `WandaPruningModifier`, locuslab/wanda): the score of weight (r, j) is
/// `|W[r, j]| · ‖x_j‖₂`, compared within each output row.
///
/// - Unstructured: each row loses exactly `⌊in · p⌋` weights, the smallest scores, ties to the
///   lower column (the reference's stable sort).
/// - N:M: in each row and each group of `m` consecutive inputs starting at a multiple of `m`,
///   the `n` smallest scores (ties to the lower column).
///
/// `inputSquares[j]` is any positive multiple of `Σ_tokens x_j²` — the diagonal of GPTQ's
/// Hessian `2/n · Σ x xᵀ` will do, since a common factor changes no comparison within a row.
/// Float32 scores, as the reference. Failure modes: a last group narrower than `n` (the
/// reference's topk fails there too) and sparsity outside [0, 1] are refused.
public enum Wanda {
    /// Prunes `weight` (rows = outputs, columns = inputs); returns the weight with +0.0 where
    /// pruned and the mask (true = pruned, row-major).
    public static func prune(_ weight: Tensor, inputSquares: [Float], sparsity: Double, n: Int = 0, m: Int = 0) throws
        -> (weight: Tensor, pruned: [Bool])
    {
        let rows = weight.rows, cols = weight.columns
        guard weight.rank == 2, inputSquares.count == cols else {
            throw PruningSettingsError(description: "\(inputSquares.count) input statistics for \(cols) input columns")
        }
        if m > 0 {
            guard n >= 0, n <= m, cols % m >= n || cols % m == 0 else {
                throw PruningSettingsError(description: "mask_structure \(n):\(m) does not fit \(cols) input columns")
            }
        } else if !(sparsity >= 0 && sparsity <= 1) {
            throw PruningSettingsError(description: "sparsity \(sparsity) is not in [0, 1]")
        }
        let norms = inputSquares.map { $0.squareRoot() }
        var w = weight.scalars
        var pruned = [Bool](repeating: false, count: rows * cols)
        let perRow = Int(Double(cols) * sparsity)
        for r in 0..<rows {
            let base = r * cols
            func score(_ j: Int) -> Float { abs(w[base + j]) * norms[j] }
            if m > 0 {
                for start in stride(from: 0, to: cols, by: m) {
                    let group = start..<min(start + m, cols)
                    for j in group.sorted(by: { (score($0), $0) < (score($1), $1) }).prefix(n) { pruned[base + j] = true }
                }
            } else {
                let order = (0..<cols).sorted { (score($0), $0) < (score($1), $1) }
                for j in order.prefix(perRow) { pruned[base + j] = true }
            }
        }
        for i in w.indices where pruned[i] { w[i] = 0 }
        return (Tensor(shape: [rows, cols], scalars: w), pruned)
    }
}
