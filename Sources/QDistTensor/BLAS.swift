import CBLAS

/// Raw `cblas_sgemm` on pointers with explicit leading dimensions, for strided views the
/// Tensor API cannot express without a copy (one attention head inside a (tokens, heads·dim)
/// matrix). Row-major throughout.
public enum BLAS {
    /// `c = alpha · op(a) · op(b) + beta · c` where op(a) is (m, k), op(b) is (k, n), c is (m, n).
    @inlinable
    public static func sgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
