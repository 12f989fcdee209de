import QDistTensor

/// SparseGPT's one-shot pruning of a linear's weight against its input Hessian, with
/// llm-compressor 0.14's semantics (FORMATS.md §12.1, §12.5, §12.6): the OBS column loop of
/// GPTQ, where instead of rounding a column it zeroes the masked entries and spreads the error
/// over the columns not yet visited.
///
/// - Dead columns (diag H = 0) are zeroed and their diagonal set to 1; damping is
///   `dampening · mean(diag H)` after that; `U` is the upper Cholesky factor of `(H + damp·I)⁻¹`
///   (`GPTQSolver.upperCholeskyOfInverse`). If H + damp·I is not positive definite, `U = I`, as
///   the reference does after its warning: per-block magnitude pruning without updates.
/// - The score of weight (r, j) is `W[r, j]² / U[j, j]²` — the Cholesky factor's diagonal, not
///   diag(H⁻¹).
/// - Unstructured: at each block's start, every score of the rows × block slab at or below the
///   slab's `⌊p · count⌋`-th smallest is pruned (so ⌊p·count⌋ + 1 and ties; per-row counts vary).
/// - N:M (`n` zeros in every `m` consecutive inputs): at each block-local column `k` with
///   `k % m == 0`, the `n` smallest scores of `W[r, j ..< j+m]` — with the weights as already
///   updated — are pruned in every row; ties go to the lower column.
///
/// - `preserveMask` (`preserve_sparsity_mask`): the weight's exact zeros (after dead columns)
///   score 0; an unstructured block already at or past the target keeps its old mask; later
///   blocks' updates skip them (the in-block ones do not, as in the reference); a weight sparser
///   than the target (unstructured) is refused.
///
/// The arithmetic is Float32, as the reference; trailing updates go through BLAS. Failure
/// modes: sparsity outside [0, 1), `m` not dividing the block size, or `n > m` are refused.
public enum SparseGPT {
    /// What to prune.
    public struct Settings: Sendable, Equatable {
        /// Fraction pruned, unstructured only (ignored for N:M, as in llm-compressor).
        public var sparsity: Double
        /// N:M: `n` zeros per `m` inputs; `m == 0` is unstructured.
        public var n: Int
        public var m: Int
        /// Columns per block (the reference's 128).
        public var blockSize: Int
        /// λ of `λ · mean(diag H)` added to the diagonal (0.01).
        public var dampening: Double
        /// `preserve_sparsity_mask`: the weight's existing exact zeros stay in the mask (they
        /// score 0, so they are chosen first) and no later block's update moves them.
        public var preserveMask: Bool

        public init(sparsity: Double = 0.5, n: Int = 0, m: Int = 0, blockSize: Int = 128, dampening: Double = 0.01,
                    preserveMask: Bool = false) {
            (self.sparsity, self.n, self.m, self.blockSize, self.dampening) = (sparsity, n, m, blockSize, dampening)
            self.preserveMask = preserveMask
        }
    }

    /// The pruned weight and what the solver did.
    public struct Result: Sendable {
        /// The updated weight with exact (+0.0) zeros where pruned, (rows, columns).
        public var weight: Tensor
        /// True where pruned (row-major), dead columns included.
        public var pruned: [Bool]
        /// Σ (w − q)² / U_jj² / 2, the reference's loss.
        public var loss: Double
        /// Columns whose Hessian diagonal was 0 (zeroed whatever the sparsity).
        public var deadColumns: Int
        /// H + damp·I was not positive definite, so U = I (no updates).
        public var usedIdentityFactor: Bool
    }

    /// Prunes `weight` (rows = outputs, columns = inputs) against `hessian` (columns × columns).
    public static func prune(_ weight: Tensor, hessian: Tensor, settings s: Settings) throws -> Result {
        let rows = weight.rows, cols = weight.columns
        guard weight.rank == 2, hessian.shape == [cols, cols] else {
            throw PruningSettingsError(description: "weight \(weight.shape) and Hessian \(hessian.shape) do not match")
        }
        guard s.blockSize > 0, s.dampening >= 0 else { throw PruningSettingsError(description: "block_size must be positive and dampening_frac ≥ 0") }
        if s.m > 0 {
            guard s.n >= 0, s.n <= s.m, s.blockSize % s.m == 0 else {
                throw PruningSettingsError(description: "mask_structure \(s.n):\(s.m) needs 0 ≤ N ≤ M and M dividing block_size \(s.blockSize)")
            }
        } else if !(s.sparsity >= 0 && s.sparsity < 1) {
            throw PruningSettingsError(description: "sparsity \(s.sparsity) is not in [0, 1)")
        }
        var w = weight.scalars
        var h = hessian
        // Dead inputs: no signal reaches them, so their weights go and H gets a unit diagonal.
        var dead = 0
        h.withUnsafeMutableBufferPointer { hp in
            for j in 0..<cols where hp[j * cols + j] == 0 {
                hp[j * cols + j] = 1
                for r in 0..<rows { w[r * cols + j] = 0 }
                dead += 1
            }
        }
        // preserve_sparsity_mask: the zeros already there (dead columns included), as llm-compressor reads them.
        let kept: [Bool]? = s.preserveMask ? w.map { $0 == 0 } : nil
        if let kept, s.m == 0 {
            let current = Double(kept.filter { $0 }.count) / Double(max(kept.count, 1))
            guard current <= s.sparsity else {
                throw PruningSettingsError(description: "preserve_sparsity_mask: the weight is already \(current) sparse, above the target \(s.sparsity)")
            }
        }
        var meanDiag = 0.0
        for j in 0..<cols { meanDiag += Double(h.scalars[j * cols + j]) }
        meanDiag /= Double(max(cols, 1))
        let factor: Tensor, identity: Bool
        do {
            factor = try GPTQSolver.upperCholeskyOfInverse(h, addingToDiagonal: Float(s.dampening * meanDiag))
            identity = false
        } catch {
            var eye = [Float](repeating: 0, count: cols * cols)
            for j in 0..<cols { eye[j * cols + j] = 1 }
            factor = Tensor(shape: [cols, cols], scalars: eye)
            identity = true
        }
        let u = factor.scalars
        var pruned = [Bool](repeating: false, count: rows * cols)
        var loss = 0.0
        var a = 0
        while a < cols {
            let b = min(a + s.blockSize, cols), width = b - a
            // The block as column-major slabs: slab[k * rows + r] = W[r, a + k].
            var slab = [Float](repeating: 0, count: width * rows), mask = [Bool](repeating: false, count: width * rows)
            var err = [Float](repeating: 0, count: width * rows)
            for k in 0..<width { for r in 0..<rows { slab[k * rows + r] = w[r * cols + a + k] } }
            // An existing zero (preserve_sparsity_mask) scores 0: it is pruned first.
            func wasZero(_ k: Int, _ r: Int) -> Bool { kept?[r * cols + a + k] ?? false }
            func score(_ k: Int, _ r: Int) -> Float {
                if wasZero(k, r) { return 0 }
                let d = u[(a + k) * cols + a + k]
                return slab[k * rows + r] * slab[k * rows + r] / (d * d)
            }
            if s.m == 0 {
                let before = kept == nil ? 0 : (0..<width).reduce(0) { n, k in n + (0..<rows).filter { wasZero(k, $0) }.count }
                if kept != nil && Int(Double(width * rows) * s.sparsity) <= before {
                    // Already sparse enough here: the old mask stands.
                    for k in 0..<width { for r in 0..<rows where wasZero(k, r) { mask[k * rows + r] = true } }
                } else {
                    var all = [Float](repeating: 0, count: width * rows)
                    for k in 0..<width { for r in 0..<rows { all[k * rows + r] = score(k, r) } }
                    mask = Self.slabMask(all, sparsity: s.sparsity)
                }
            }
            for k in 0..<width {
                let j = a + k, d = u[j * cols + j]
                if s.m > 0, k % s.m == 0, s.n > 0 {
                    let group = k..<min(k + s.m, width)
                    for r in 0..<rows {
                        for x in Self.smallest(s.n, of: group, score: { score($0, r) }) { mask[x * rows + r] = true }
                    }
                }
                for r in 0..<rows {
                    let x = slab[k * rows + r]
                    let q: Float = mask[k * rows + r] ? 0 : x
                    let e = (x - q) / d
                    loss += Double(e) * Double(e)
                    err[k * rows + r] = e
                    slab[k * rows + r] = q
                }
                // The rest of the block: column kk −= e · U[j, kk] (contiguous slabs).
                for kk in (k + 1)..<width {
                    let c = u[j * cols + a + kk]
                    for r in 0..<rows { slab[kk * rows + r] -= err[k * rows + r] * c }
                }
            }
            for k in 0..<width {
                for r in 0..<rows {
                    w[r * cols + a + k] = slab[k * rows + r]
                    if mask[k * rows + r] { pruned[r * cols + a + k] = true }
                }
            }
            // W[:, b:] −= E · U[a:b, b:], with E = errᵀ (rows × width).
            if b < cols {
                err.withUnsafeBufferPointer { e in
                    u.withUnsafeBufferPointer { up in
                        w.withUnsafeMutableBufferPointer { wp in
                            BLAS.sgemm(transposeA: true, transposeB: false, m: rows, n: cols - b, k: width, alpha: -1,
                                       a: e.baseAddress!, lda: rows, b: up.baseAddress! + a * cols + b, ldb: cols,
                                       beta: 1, c: wp.baseAddress! + b, ldc: cols)
                        }
                    }
                }
                // Later blocks' existing zeros are not moved (they were 0, and stay 0).
                if let kept { for r in 0..<rows { for j in b..<cols where kept[r * cols + j] { w[r * cols + j] = 0 } } }
            }
            a = b
        }
        for j in 0..<cols where hessian.scalars[j * cols + j] == 0 { for r in 0..<rows { pruned[r * cols + j] = true } }
        // +0.0, never −0.0 (vLLM's 2:4 kernels misread negative zeros).
        for i in w.indices where pruned[i] { w[i] = 0 }
        return Result(weight: Tensor(shape: [rows, cols], scalars: w), pruned: pruned, loss: loss / 2,
                      deadColumns: dead, usedIdentityFactor: identity)
    }
}

extension SparseGPT {
    /// The unstructured rule for one rows × block slab: every score at or below the slab's
    /// `⌊p · count⌋`-th smallest is pruned (so ⌊p·count⌋ + 1, and ties). Shared by `prune` and the
    /// one-pass GPTQ loop.
    static func slabMask(_ scores: [Float], sparsity: Double) -> [Bool] {
        let sorted = scores.sorted()
        let threshold = sorted[min(Int(Double(sorted.count) * sparsity), sorted.count - 1)]
        return scores.map { $0 <= threshold }
    }

    /// The N:M rule for one row's group: the `n` positions of `group` with the smallest scores,
    /// ties to the lower position.
    static func smallest(_ n: Int, of group: Range<Int>, score: (Int) -> Float) -> ArraySlice<Int> {
        group.sorted { a, b in (score(a), a) < (score(b), b) }.prefix(n)
    }
}

/// A pruning setting the algorithm cannot run with (SparseGPT, Wanda), in words a recipe author
/// can act on.
public struct PruningSettingsError: Error, CustomStringConvertible, Equatable {
    public let description: String
}
