import QDistTensor

/// GPTQ's layer Hessian `H = (2/N)·Σ x xᵀ` over calibration inputs, where N counts *sequences*
/// (gptq's `add_batch`, FORMATS.md §3.2: its running mean `H ← H·n/(n+t) + (2/(n+t))·XᵀX` is
/// this same value).
///
/// Why a Float64 sum of per-batch Gram matrices instead of gptq's Float32 running mean: GPTQ with
/// act-order is chaotic in H — one flipped code changes the error fed to every later column, and
/// a near-tie in diag(H) reorders the columns — so ranks must see the *same* H whatever P is.
/// Each batch's `XᵀX` is one Float32 ssyrk (the same on every rank, since a window is never
/// split); the batches add up in Float64, where summation order (which window landed on which
/// rank, the Reduce's tree) moves the result by ~1e-16 and rounding to Float32 erases it. The
/// parts combine exactly by summing `sum` and `sampleCount` (`Reduce(SUM)` in Float64).
///
/// Memory: n(n+1)/2 doubles plus an n×n Float32 scratch. Cost per batch: one ssyrk
/// (tokens·n² flops) and n(n+1)/2 double adds. A batch whose width is not the layer's input
/// features traps; a NaN activation poisons H (GPTQ then rejects it).
public struct HessianAccumulator: Sendable {
    /// Σ 2·XᵀX over all batches: the upper triangle (j ≥ i), row by row, in Float64.
    public private(set) var sum: [Double]
    /// N: sequences folded in so far.
    public private(set) var sampleCount: Int
    public let columns: Int
    private var scratch: Tensor

    /// An empty accumulator for a layer with `columns` input features.
    public init(columns: Int) {
        self.columns = columns
        sum = [Double](repeating: 0, count: columns * (columns + 1) / 2)
        sampleCount = 0
        scratch = Tensor.zeros([0])
    }

    /// An accumulator holding `sum` (packed upper triangle of Σ 2·XᵀX) over `sampleCount`
    /// sequences: what the Reduce of every rank's `sum` gives.
    public init(sum: [Double], sampleCount: Int, columns: Int) {
        precondition(sum.count == columns * (columns + 1) / 2, "packed Hessian sum of \(sum.count) for \(columns) columns")
        precondition(sampleCount >= 0, "negative sample count")
        self.columns = columns
        self.sum = sum
        self.sampleCount = sampleCount
        scratch = Tensor.zeros([0])
    }

    /// An accumulator whose mean is already `hessian` over `sampleCount` sequences.
    public init(hessian: Tensor, sampleCount: Int) {
        precondition(hessian.rank == 2 && hessian.shape[0] == hessian.shape[1], "Hessian must be square, got \(hessian.shape)")
        let n = hessian.shape[0], scale = Double(max(sampleCount, 1))
        var packed = [Double]()
        packed.reserveCapacity(n * (n + 1) / 2)
        hessian.withUnsafeBufferPointer { h in
            for i in 0..<n { for j in i..<n { packed.append(Double(h[i * n + j]) * scale) } }
        }
        self.init(sum: packed, sampleCount: sampleCount, columns: n)
    }

    /// (columns, columns): the mean `2/N·Σ x xᵀ` as a full symmetric Float32 matrix.
    public var hessian: Tensor {
        let n = columns
        let inverse = sampleCount > 0 ? 1 / Double(sampleCount) : 0
        var out = [Float](repeating: 0, count: n * n)
        var k = 0
        for i in 0..<n {
            for j in i..<n {
                let v = Float(sum[k] * inverse)
                out[i * n + j] = v
                out[j * n + i] = v
                k += 1
            }
        }
        return Tensor(shape: [n, n], scalars: out)
    }

    /// Folds in a batch of inputs to the layer. `inputs` is (tokens, columns) or
    /// (batch, sequence, columns). `samples` is gptq's `tmp`: by default the first dimension of a
    /// rank-3 input, and 1 for a rank-2 input (gptq unsqueezes it into a batch of one).
    public mutating func add(_ inputs: Tensor, samples: Int? = nil) {
        precondition(inputs.rank == 2 || inputs.rank == 3, "inputs must be (tokens, columns) or (batch, seq, columns), got \(inputs.shape)")
        precondition(inputs.columns == columns, "inputs have \(inputs.columns) features, the Hessian \(columns)")
        let t = samples ?? (inputs.rank == 3 ? inputs.shape[0] : 1)
        precondition(t > 0, "a batch must count at least one sample")
        let x = inputs.rank == 2 ? inputs : inputs.reshaped([inputs.rows, columns])
        let n = columns
        if scratch.count != n * n { scratch = Tensor.zeros([n, n]) }
        Tensor.gramAccumulateUpper(x, into: &scratch, alpha: 2, beta: 0)
        scratch.withUnsafeBufferPointer { g in
            sum.withUnsafeMutableBufferPointer { s in
                var k = 0
                for i in 0..<n {
                    let row = i * n
                    for j in i..<n { s[k] += Double(g[row + j]); k += 1 }
                }
            }
        }
        sampleCount += t
    }

    /// The accumulator one process would hold after seeing every part's batches.
    public static func combine(_ parts: [HessianAccumulator]) -> HessianAccumulator {
        precondition(!parts.isEmpty, "combine of no Hessians")
        let n = parts[0].columns
        var total = [Double](repeating: 0, count: n * (n + 1) / 2)
        for p in parts {
            precondition(p.columns == n, "combining a \(p.columns)-column Hessian with a \(n)-column one")
            for i in total.indices { total[i] += p.sum[i] }
        }
        return HessianAccumulator(sum: total, sampleCount: parts.reduce(0) { $0 + $1.sampleCount }, columns: n)
    }
}
