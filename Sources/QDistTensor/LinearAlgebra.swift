import CBLAS

/// Why a factorization failed; GPTQ reacts to `notPositiveDefinite` by adding more dampening.
public enum LinearAlgebraError: Error, Equatable, CustomStringConvertible {
    /// The leading minor of this order (1-based) is not positive: the matrix is not SPD.
    case notPositiveDefinite(minor: Int)
    /// A diagonal element (1-based) is exactly zero, so the triangular matrix is singular.
    case singular(index: Int)
    /// LAPACK rejected an argument (a bug in the caller): the LAPACKE info code.
    case invalidArgument(info: Int)

    public var description: String {
        switch self {
        case .notPositiveDefinite(let k): return "matrix is not positive definite (leading minor \(k))"
        case .singular(let k): return "triangular matrix is singular (zero at diagonal \(k))"
        case .invalidArgument(let info): return "LAPACK rejected argument \(-info)"
        }
    }
}

/// Which triangle of a symmetric or triangular matrix holds the data.
public enum Triangle: Sendable {
    case upper, lower

    var lapackChar: Int8 { self == .upper ? Int8(UInt8(ascii: "U")) : Int8(UInt8(ascii: "L")) }
}

extension Tensor {
    /// Matrix product `op(a) · op(b)` through `cblas_sgemm`, where op transposes when asked.
    /// Shapes: a (m, k) or (k, m) transposed; b (k, n) or (n, k) transposed → (m, n).
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul needs matrices, got \(a.shape) and \(b.shape)")
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let kb = transposeB ? b.shape[1] : b.shape[0]
        let n = transposeB ? b.shape[0] : b.shape[1]
        precondition(k == kb, "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        var c = Tensor.zeros([m, n])
        gemm(a, b, into: &c, transposeA: transposeA, transposeB: transposeB, alpha: 1, beta: 0)
        return c
    }

    /// `c = alpha · op(a) · op(b) + beta · c` in place, through `cblas_sgemm`: the accumulate
    /// form avoids a temporary when summing products (e.g. Hessians over batches).
    public static func gemm(
        _ a: Tensor, _ b: Tensor, into c: inout Tensor,
        transposeA: Bool = false, transposeB: Bool = false, alpha: Float = 1, beta: Float = 0
    ) {
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let n = transposeB ? b.shape[0] : b.shape[1]
        precondition(c.shape == [m, n], "gemm: output \(c.shape) is not [\(m), \(n)]")
        if m == 0 || n == 0 { return }
        if k == 0 { c.scaleInPlace(by: beta); return }  // an empty product: no pointers to pass
        let lda = a.shape[1], ldb = b.shape[1]
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    // Through BLAS.sgemm: the same bits for any thread count.
                    BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                               a: pa.baseAddress!, lda: max(lda, 1), b: pb.baseAddress!, ldb: max(ldb, 1),
                               beta: beta, c: pc.baseAddress!, ldc: max(n, 1))
                }
            }
        }
    }

    /// `c = alpha · aᵀa + beta · c` for a (rows, n) → c (n, n), through `cblas_ssyrk` (half
    /// the flops of gemm). Both triangles of c are filled, so the result is a full matrix.
    public static func gramAccumulate(_ a: Tensor, into c: inout Tensor, alpha: Float = 1, beta: Float = 1) {
        gramAccumulateUpper(a, into: &c, alpha: alpha, beta: beta)
        c.symmetrizeFromUpper()
    }

    /// `C ← alpha·AᵀA + beta·C` on the upper triangle only (j ≥ i); the strict lower triangle is
    /// left as it was. For accumulating many batches: symmetrize once at the end
    /// (`symmetrizeFromUpper`) instead of after every batch, which costs a strided n² copy.
    public static func gramAccumulateUpper(_ a: Tensor, into c: inout Tensor, alpha: Float = 1, beta: Float = 1) {
        precondition(a.rank == 2, "gramAccumulateUpper needs a matrix, got \(a.shape)")
        let n = a.shape[1], k = a.shape[0]
        precondition(c.shape == [n, n], "gramAccumulateUpper: output \(c.shape) is not [\(n), \(n)]")
        if n == 0 { return }
        if k == 0 { c.scaleInPlace(by: beta); return }
        a.withUnsafeBufferPointer { pa in
            c.withUnsafeMutableBufferPointer { pc in
                BLAS.ssyrkUpperTransposed(n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: n,
                                          beta: beta, c: pc.baseAddress!, ldc: n)
            }
        }
    }

    /// Multiplies every element by `factor` (BLAS's `beta · c` when there is nothing to add).
    mutating func scaleInPlace(by factor: Float) {
        if factor == 1 { return }
        withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = factor == 0 ? 0 : p[i] * factor } }
    }

    /// Copies the upper triangle onto the lower one (row-major square matrix), in tiles so both
    /// sides stay in cache.
    public mutating func symmetrizeFromUpper() {
        precondition(rank == 2 && shape[0] == shape[1], "symmetrizeFromUpper needs a square matrix, got \(shape)")
        let n = shape[0], tile = 32
        withUnsafeMutableBufferPointer { p in
            for i0 in stride(from: 0, to: n, by: tile) {
                for j0 in stride(from: 0, through: i0, by: tile) {
                    for i in i0..<min(i0 + tile, n) {
                        for j in j0..<min(j0 + tile, i) { p[i * n + j] = p[j * n + i] }
                    }
                }
            }
        }
    }

    /// The transpose of a matrix.
    public func transposed() -> Tensor {
        precondition(rank == 2, "transposed needs a matrix, got \(shape)")
        let r = shape[0], c = shape[1]
        var out = [Float](repeating: 0, count: count)
        scalars.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                // Blocked so both sides stay in cache for large matrices.
                let tile = 32
                for i0 in stride(from: 0, to: r, by: tile) {
                    for j0 in stride(from: 0, to: c, by: tile) {
                        for i in i0..<min(i0 + tile, r) {
                            for j in j0..<min(j0 + tile, c) { dst[j * r + i] = src[i * c + j] }
                        }
                    }
                }
            }
        }
        return Tensor(shape: [c, r], scalars: out)
    }

    /// Cholesky factor of a symmetric positive definite matrix (LAPACKE `spotrf`): the upper
    /// factor U with A = UᵀU, or the lower L with A = LLᵀ. The other triangle is zeroed.
    public func cholesky(_ triangle: Triangle = .lower) throws -> Tensor {
        precondition(rank == 2 && shape[0] == shape[1], "cholesky needs a square matrix, got \(shape)")
        var a = self
        let n = shape[0]
        let info = BLASThreads.withOneThread { a.withUnsafeMutableBufferPointer { p in
            LAPACKE_spotrf(LAPACK_ROW_MAJOR, triangle.lapackChar, Int32(n), p.baseAddress, Int32(max(n, 1)))
        } }
        if info > 0 { throw LinearAlgebraError.notPositiveDefinite(minor: Int(info)) }
        if info < 0 { throw LinearAlgebraError.invalidArgument(info: Int(info)) }
        a.zeroOtherTriangle(keeping: triangle)
        return a
    }

    /// Inverse of an SPD matrix from its Cholesky factorization (`spotrf` then `spotri`), as a
    /// full symmetric matrix: GPTQ's H⁻¹ without forming a general inverse.
    public func choleskyInverse() throws -> Tensor {
        precondition(rank == 2 && shape[0] == shape[1], "choleskyInverse needs a square matrix, got \(shape)")
        var a = try cholesky(.lower)
        let n = shape[0]
        let info = BLASThreads.withOneThread { a.withUnsafeMutableBufferPointer { p in
            LAPACKE_spotri(LAPACK_ROW_MAJOR, Triangle.lower.lapackChar, Int32(n), p.baseAddress, Int32(max(n, 1)))
        } }
        if info > 0 { throw LinearAlgebraError.singular(index: Int(info)) }
        if info < 0 { throw LinearAlgebraError.invalidArgument(info: Int(info)) }
        a.withUnsafeMutableBufferPointer { p in
            for i in 0..<n { for j in (i + 1)..<max(n, i + 1) { p[i * n + j] = p[j * n + i] } }
        }
        return a
    }

    /// Inverse of a triangular matrix (LAPACKE `strtri`); the other triangle must be zero and
    /// stays zero.
    public func triangularInverse(_ triangle: Triangle) throws -> Tensor {
        precondition(rank == 2 && shape[0] == shape[1], "triangularInverse needs a square matrix, got \(shape)")
        var a = self
        let n = shape[0]
        let info = BLASThreads.withOneThread { a.withUnsafeMutableBufferPointer { p in
            LAPACKE_strtri(LAPACK_ROW_MAJOR, triangle.lapackChar, Int8(UInt8(ascii: "N")), Int32(n),
                           p.baseAddress, Int32(max(n, 1)))
        } }
        if info > 0 { throw LinearAlgebraError.singular(index: Int(info)) }
        if info < 0 { throw LinearAlgebraError.invalidArgument(info: Int(info)) }
        a.zeroOtherTriangle(keeping: triangle)
        return a
    }

    /// Zeroes the strict triangle opposite to `keeping` (LAPACK leaves it untouched).
    mutating func zeroOtherTriangle(keeping triangle: Triangle) {
        let n = shape[0]
        withUnsafeMutableBufferPointer { p in
            for i in 0..<n {
                for j in 0..<n where (triangle == .lower && j > i) || (triangle == .upper && j < i) {
                    p[i * n + j] = 0
                }
            }
        }
    }
}
