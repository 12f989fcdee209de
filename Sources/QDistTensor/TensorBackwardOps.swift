import CBLAS
import Foundation

/// Row gathers and scatters, and the element-wise backward of the SwiGLU activation: what the
/// training graph needs beyond the forward's operations. Matrix products stay in BLAS.
extension Tensor {
    /// Rows `indices` of a matrix, in that order (an embedding lookup; the head's counted rows).
    public func gatheringRows(_ indices: [Int]) -> Tensor {
        precondition(rank == 2, "gatheringRows needs a matrix, got \(shape)")
        let c = columns, r = rows
        var out = [Float](repeating: 0, count: indices.count * c)
        withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (i, row) in indices.enumerated() {
                    precondition(row >= 0 && row < r, "row \(row) outside \(r) rows")
                    (dst.baseAddress! + i * c).update(from: src.baseAddress! + row * c, count: c)
                }
            }
        }
        return Tensor(shape: [indices.count, c], scalars: out)
    }

    /// `self[indices[i]] += rows[i]` for every row of `rows` (the backward of `gatheringRows`).
    public mutating func scatterAddRows(_ rows: Tensor, at indices: [Int]) {
        let c = columns, r = self.rows
        precondition(rows.rows == indices.count && rows.columns == c, "scatterAddRows: \(rows.shape) at \(indices.count) rows of \(shape)")
        rows.withUnsafeBufferPointer { src in
            withUnsafeMutableBufferPointer { dst in
                for (i, row) in indices.enumerated() {
                    precondition(row >= 0 && row < r, "row \(row) outside \(r) rows")
                    for j in 0..<c { dst[row * c + j] += src[i * c + j] }
                }
            }
        }
    }

    /// Backward of `swiGLU(gate:up:)` = silu(g)·u: with σ = sigmoid(g),
    /// d gate = dy·u·σ·(1 + g·(1 − σ)), d up = dy·g·σ.
    public static func swiGLUBackward(gate: Tensor, up: Tensor, outputGradient dy: Tensor) -> (gate: Tensor, up: Tensor) {
        precondition(gate.shape == up.shape && dy.shape == gate.shape, "swiGLU backward: \(gate.shape), \(up.shape), \(dy.shape)")
        var dGate = Tensor.zeros(gate.shape), dUp = Tensor.zeros(gate.shape)
        gate.withUnsafeBufferPointer { pg in
            up.withUnsafeBufferPointer { pu in
                dy.withUnsafeBufferPointer { pd in
                    dGate.withUnsafeMutableBufferPointer { dg in
                        dUp.withUnsafeMutableBufferPointer { du in
                            for i in 0..<pg.count {
                                let g = pg[i], sigma = 1 / (1 + Foundation.exp(-g))
                                dg[i] = pd[i] * pu[i] * sigma * (1 + g * (1 - sigma))
                                du[i] = pd[i] * g * sigma
                            }
                        }
                    }
                }
            }
        }
        return (dGate, dUp)
    }
}

extension BLAS {
    /// `c = alpha · op(a) · op(b) + beta · c` in Double (`cblas_dgemm`), row-major: for float64
    /// reference computations (finite-difference checks), never for the model itself.
    public static func dgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Double = 1,
        a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        // Tiled like `sgemm`, so references too are the same for any thread count.
        let ta = transposeA ? CblasTrans : CblasNoTrans, tb = transposeB ? CblasTrans : CblasNoTrans
        let pointers = Pointers(a: a, b: b, c: c)
        forEachTile(tiling(m: m, n: n, k: k), m: m, n: n) { r0, rows, c0, columns in
            let a0 = transposeA ? pointers.a + r0 : pointers.a + r0 * lda
            let b0 = transposeB ? pointers.b + c0 * ldb : pointers.b + c0
            cblas_dgemm(CblasRowMajor, ta, tb, Int32(rows), Int32(columns), Int32(k), alpha, a0, Int32(lda), b0, Int32(ldb),
                        beta, pointers.c + r0 * ldc + c0, Int32(ldc))
        }
    }
}
