import QDistTensor

/// GPTQ's layer Hessian `H = (2/N)·Σ x xᵀ` over calibration inputs, kept as a running mean
/// exactly as gptq's `add_batch` does (FORMATS.md §3.2):
/// `H ← H·n/(n+t) + (2/(n+t))·XᵀX`, `n ← n + t`, where `t` is the number of *sequences* in the
/// batch (not tokens) and X holds all the batch's tokens as rows.
///
/// Why a running mean: H stays O(1) in magnitude however many batches arrive, and partial
/// Hessians from several ranks combine as `Σ H_k·n_k / Σ n_k` (`combine`, or Allreduce SUM of
/// `weightedSum` and of `sampleCount`, then `init(weightedSum:sampleCount:)`). Each batch costs
/// one `ssyrk`: tokens·columns² flops. Failure mode: a batch whose width is not the layer's
/// input features traps; a NaN activation poisons H (GPTQ then rejects it).
public struct HessianAccumulator: Sendable {
    /// The current mean `2/N·Σ x xᵀ`; only its upper triangle is kept up to date while batches
    /// arrive (one ssyrk each), and `hessian` mirrors it when asked.
    private var upper: Tensor
    /// (columns, columns): the current mean `2/N·Σ x xᵀ`, full symmetric matrix.
    public var hessian: Tensor {
        var h = upper
        h.symmetrizeFromUpper()
        return h
    }
    /// N: sequences folded in so far.
    public private(set) var sampleCount: Int

    /// An empty accumulator for a layer with `columns` input features.
    public init(columns: Int) {
        upper = Tensor.zeros([columns, columns])
        sampleCount = 0
    }

    /// A Hessian that is already a mean over `sampleCount` sequences.
    public init(hessian: Tensor, sampleCount: Int) {
        precondition(hessian.rank == 2 && hessian.shape[0] == hessian.shape[1], "Hessian must be square, got \(hessian.shape)")
        precondition(sampleCount >= 0, "negative sample count")
        self.upper = hessian
        self.sampleCount = sampleCount
    }

    /// Rebuilds the mean from a summed `H·n` (what Allreduce SUM of `weightedSum` gives).
    public init(weightedSum: Tensor, sampleCount: Int) {
        self.init(hessian: sampleCount > 0 ? weightedSum * (1 / Float(sampleCount)) : weightedSum,
                  sampleCount: sampleCount)
    }

    public var columns: Int { upper.shape[0] }

    /// `H·n`: the additive form of this accumulator, for summing across ranks.
    public var weightedSum: Tensor { hessian * Float(sampleCount) }

    /// Folds in a batch of inputs to the layer. `inputs` is (tokens, columns) or
    /// (batch, sequence, columns). `samples` is gptq's `tmp`: by default the first dimension of a
    /// rank-3 input, and 1 for a rank-2 input (gptq unsqueezes it into a batch of one).
    public mutating func add(_ inputs: Tensor, samples: Int? = nil) {
        precondition(inputs.rank == 2 || inputs.rank == 3, "inputs must be (tokens, columns) or (batch, seq, columns), got \(inputs.shape)")
        precondition(inputs.columns == columns, "inputs have \(inputs.columns) features, the Hessian \(columns)")
        let t = samples ?? (inputs.rank == 3 ? inputs.shape[0] : 1)
        precondition(t > 0, "a batch must count at least one sample")
        let x = inputs.rank == 2 ? inputs : inputs.reshaped([inputs.rows, columns])
        let total = sampleCount + t
        // One ssyrk: H = (2/(n+t))·XᵀX + (n/(n+t))·H.
        Tensor.gramAccumulateUpper(x, into: &upper, alpha: Float(2.0 / Double(total)),
                                   beta: Float(Double(sampleCount) / Double(total)))
        sampleCount = total
    }

    /// The accumulator one process would hold after seeing every part's batches:
    /// `H = Σ H_k·n_k / Σ n_k`, `N = Σ n_k` (summed in Double to keep the parts' order harmless).
    public static func combine(_ parts: [HessianAccumulator]) -> HessianAccumulator {
        precondition(!parts.isEmpty, "combine of no Hessians")
        let n = parts[0].columns
        let total = parts.reduce(0) { $0 + $1.sampleCount }
        var sum = [Double](repeating: 0, count: n * n)
        for p in parts {
            precondition(p.columns == n, "combining a \(p.columns)-column Hessian with a \(n)-column one")
            let w = Double(p.sampleCount)
            p.hessian.withUnsafeBufferPointer { h in
                for i in 0..<(n * n) { sum[i] += Double(h[i]) * w }
            }
        }
        let scale = total > 0 ? 1 / Double(total) : 0
        return HessianAccumulator(hessian: Tensor(shape: [n, n], scalars: sum.map { Float($0 * scale) }),
                                  sampleCount: total)
    }
}
