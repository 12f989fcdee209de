import Foundation
import QDistTensor

/// GPTQ's layer Hessian `H = (2/N)·Σ x xᵀ` over calibration inputs, where N counts *sequences*
/// (gptq's `add_batch`, FORMATS.md §3.2: its running mean `H ← H·n/(n+t) + (2/(n+t))·XᵀX` is
/// this same value), summed so that the result does not depend on how the batches were split
/// across ranks or in which order they came.
///
/// Why fixed point: GPTQ with act-order is chaotic in H — one flipped code changes the error fed
/// to every later column, and a near-tie in diag(H) reorders the columns — so every rank count
/// must produce the *same bits* of H. A floating-point sum depends on its order (which window
/// landed on which rank, the Reduce's tree), and a Float64 sum rounded to Float32 still flips
/// about one entry in 10⁷. Here each batch's `2·XᵀX` (one Float32 ssyrk, identical on every rank
/// since a window is never split) is converted to an integer on a grid fixed *before* any batch
/// is seen (`HessianFixedPointScale`, from the global per-column absmax of the inputs), and the
/// integers add up exactly in Int64 — in any order, on any number of ranks, through MPI's
/// `Reduce(SUM)` on MPI_INT64_T. The grid keeps 61 bits per entry relative to its
/// Cauchy–Schwarz bound, far below the Float32 rounding already in each batch's product.
///
/// Memory: n(n+1)/2 Int64 plus an n×n Float32 scratch. Cost per batch: one ssyrk
/// (tokens·n² flops) and n(n+1)/2 conversions (truncating: as deterministic as rounding, and
/// one instruction). A non-finite batch poisons H (NaN; GPTQ then
/// rejects it); a batch larger than the scale's bound is a caller bug (the scale must come from
/// these very inputs) and traps.
public struct HessianAccumulator: Sendable {
    /// Σ 2·XᵀX over all batches in fixed point: the upper triangle (j ≥ i), row by row; entry
    /// (i, j) is `sum · 2^(e_i + e_j + t − 61)` (`scale`).
    public private(set) var sum: [Int64]
    /// N: sequences folded in so far.
    public private(set) var sampleCount: Int
    /// Whether some batch held a non-finite value (H is then NaN).
    public private(set) var nonFinite: Bool
    public let scale: HessianFixedPointScale
    public var columns: Int { scale.columns }
    private var scratch: Tensor

    /// An empty accumulator on `scale`'s grid.
    public init(scale: HessianFixedPointScale) {
        self.scale = scale
        sum = [Int64](repeating: 0, count: scale.columns * (scale.columns + 1) / 2)
        sampleCount = 0
        nonFinite = false
        scratch = Tensor.zeros([0])
    }

    /// An accumulator holding `sum` (packed upper triangle, fixed point on `scale`) over
    /// `sampleCount` sequences: what the Reduce(SUM) of every rank's `sum` gives.
    public init(sum: [Int64], sampleCount: Int, scale: HessianFixedPointScale, nonFinite: Bool = false) {
        precondition(sum.count == scale.columns * (scale.columns + 1) / 2, "packed Hessian sum of \(sum.count) for \(scale.columns) columns")
        precondition(sampleCount >= 0, "negative sample count")
        self.scale = scale
        self.sum = sum
        self.sampleCount = sampleCount
        self.nonFinite = nonFinite
        scratch = Tensor.zeros([0])
    }

    /// The accumulator over `batches` with a grid fitted to them: for tests, benchmarks and
    /// one-process callers that hold all their inputs. `samples` as in `add`.
    public static func over(_ batches: [Tensor], samples: Int? = nil) -> HessianAccumulator {
        precondition(!batches.isEmpty, "a Hessian over no batches")
        let columns = batches[0].columns
        var absMax = [Float](repeating: 0, count: columns)
        for b in batches { HessianFixedPointScale.foldAbsMax(b, into: &absMax) }
        let tokens = batches.reduce(0) { $0 + $1.rows }
        var acc = HessianAccumulator(scale: HessianFixedPointScale(columnAbsMax: absMax, totalTokens: tokens))
        for b in batches { acc.add(b, samples: samples) }
        return acc
    }

    /// (columns, columns): the mean `2/N·Σ x xᵀ` as a full symmetric Float32 matrix.
    public var hessian: Tensor {
        let n = columns
        if nonFinite { return Tensor(shape: [n, n], scalars: [Float](repeating: .nan, count: n * n)) }
        let inverse = sampleCount > 0 ? 1 / Double(sampleCount) : 0
        let rowUnit = scale.rowUnits, columnUnit = scale.columnUnits
        var out = [Float](repeating: 0, count: n * n)
        var k = 0
        for i in 0..<n {
            for j in i..<n {
                let v = Float(Double(sum[k]) * rowUnit[i] * columnUnit[j] * inverse)
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
        sampleCount += t
        // A non-finite product poisons H (checked in one vectorizable pass, so the conversion
        // loop below has no branch).
        if scratch.firstNonFiniteIndex != nil { nonFinite = true }
        if nonFinite { return }
        let rowScale = scale.rowScales, columnScale = scale.columnScales
        scratch.withUnsafeBufferPointer { g in
            sum.withUnsafeMutableBufferPointer { s in
                columnScale.withUnsafeBufferPointer { cs in
                    var k = 0
                    for i in 0..<n {
                        let row = i * n, ri = rowScale[i]
                        for j in i..<n {
                            // Powers of two: the products are exact; the one rounding is the
                            // truncation to an integer, the same on every rank.
                            s[k] &+= Int64(Double(g[row + j]) * ri * cs[j])
                            k += 1
                        }
                    }
                }
            }
        }
    }

    /// The accumulator one process would hold after seeing every part's batches (the same
    /// bits: integer sums). All parts must share one scale.
    public static func combine(_ parts: [HessianAccumulator]) -> HessianAccumulator {
        precondition(!parts.isEmpty, "combine of no Hessians")
        let scale = parts[0].scale
        var total = [Int64](repeating: 0, count: parts[0].sum.count)
        for p in parts {
            precondition(p.scale == scale, "combining Hessians on different fixed-point grids")
            for i in total.indices { total[i] &+= p.sum[i] }
        }
        return HessianAccumulator(sum: total, sampleCount: parts.reduce(0) { $0 + $1.sampleCount }, scale: scale,
                                  nonFinite: parts.contains { $0.nonFinite })
    }
}
