import CBLAS

/// Every matrix product qdist runs, on raw pointers with explicit leading dimensions (strided
/// views such as one attention head inside a (tokens, heads·dim) matrix), row-major — made
/// independent of the OpenBLAS thread count.
///
/// Why: OpenBLAS splits the depth (k) into blocks of at most GEMM_Q and sums each element block
/// by block, and its one-thread and threaded drivers cut a depth between GEMM_Q and 2·GEMM_Q
/// differently (`((k/2 + U−1)/U)·U` against `(k+1)/2`). So with k = 500 one thread and two give
/// different last bits for most elements (measured: 229,256 of 294,912 for 512×576×500), and
/// GPTQ with act-order turns last bits into different codes. Both drivers agree whenever every
/// depth block they see is a multiple of 32 (its half is then a multiple of every unroll), and
/// neither ever splits the depth across threads. So each product runs as two calls: the first
/// 32·⌊k/32⌋ depth, then the remainder (< 32, below any GEMM_Q) accumulated with beta = 1 — the
/// same per-element summation order for any thread count, at the cost of one thin extra call
/// when k is not a multiple of 32 (every hidden, intermediate and head size of the real models
/// is). `LinearAlgebraTests` checks 1, 2 and 3 threads byte for byte over such depths.
public enum BLAS {
    /// The depth granule: the first call's depth is a multiple of it.
    public static let depthGranule = 32

    /// (main, remainder) depths: main is a multiple of `depthGranule`, remainder < it.
    @inlinable
    public static func depthSplit(_ k: Int) -> (main: Int, remainder: Int) {
        let main = k - k % depthGranule
        return (main, k - main)
    }

    /// `c = alpha · op(a) · op(b) + beta · c` where op(a) is (m, k), op(b) is (k, n), c is (m, n).
    @inlinable
    public static func sgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        let ta = transposeA ? CblasTrans : CblasNoTrans, tb = transposeB ? CblasTrans : CblasNoTrans
        let (main, rest) = depthSplit(k)
        if main == 0 || rest == 0 {
            cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
                        beta, c, Int32(ldc))
            return
        }
        cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(n), Int32(main), alpha, a, Int32(lda), b, Int32(ldb),
                    beta, c, Int32(ldc))
        // Depth offset `main`: a column of a (or a row of aᵀ), a row of b (or a column of bᵀ).
        let a2 = transposeA ? a + main * lda : a + main
        let b2 = transposeB ? b + main : b + main * ldb
        cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(n), Int32(rest), alpha, a2, Int32(lda), b2, Int32(ldb),
                    1, c, Int32(ldc))
    }

    /// `c = alpha · aᵀa + beta · c` on the upper triangle (j ≥ i) of c (n, n), for a (k, n) with
    /// leading dimension lda; the strict lower triangle is untouched. The depth (k, the rows of
    /// a) is split as in `sgemm`.
    @inlinable
    public static func ssyrkUpperTransposed(
        n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if n == 0 { return }
        let (main, rest) = depthSplit(k)
        if main == 0 || rest == 0 {
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(k), alpha, a, Int32(lda), beta, c, Int32(ldc))
            return
        }
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(main), alpha, a, Int32(lda), beta, c, Int32(ldc))
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(rest), alpha, a + main * lda, Int32(lda),
                    1, c, Int32(ldc))
    }
}
