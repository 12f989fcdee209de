import CBLAS
import Dispatch

/// Every matrix product qdist runs, on raw pointers with explicit leading dimensions (strided
/// views such as one attention head inside a (tokens, heads·dim) matrix), row-major — made
/// independent of the thread count.
///
/// Why: OpenBLAS's threaded drivers give different last bits than its one-thread driver, and
/// how they differ depends on the CPU's kernels and cache sizes (measured: 13,796 of 16,384
/// elements of a 64-deep product differ between 1 and 2 threads on an AVX2-only EPYC with
/// OpenBLAS 0.3.21's Zen kernels; an earlier depth-splitting scheme held only on AVX-512
/// machines). GPTQ with act-order and AWQ's argmin turn last bits into different codes. So
/// OpenBLAS itself always runs on one thread (`BLASThreads` keeps it there), and qdist threads
/// products itself: the output is cut into tiles of `tileRows` × `tileColumns(rows:)` — a cut that
/// depends on the shape only — and each tile is one single-threaded OpenBLAS call, run on
/// whichever of `BLASThreads.current` workers takes it. Every element is computed by the same
/// call whatever the thread count. Products below `singleCallWork` multiply-adds are one call.
/// `ThreadIndependentProductTests` checks 1, 2 and 3 threads byte for byte.
public enum BLAS {
    /// Rows of the output per tile.
    public static let tileRows = 128
    /// m·n·k below which a product is one call (threads would cost more than they save).
    public static let singleCallWork = 1 << 16

    /// Columns of the output per tile: wide, so a tile packs its share of b once (measured on
    /// 2 cores: 128 × 2048 tiles run SmolLM2's shapes within noise of OpenBLAS's own threads),
    /// narrower for a few rows (decoding), where columns are the only parallelism (128-column
    /// tiles and a 2^16 single-call limit decode as fast as OpenBLAS's threads did).
    @inlinable
    public static func tileColumns(rows m: Int) -> Int { m <= 32 ? 128 : 2048 }

    /// (row tiles, column tiles) of an (m, n) output with depth k.
    @inlinable
    public static func tiling(m: Int, n: Int, k: Int) -> (rows: Int, columns: Int) {
        if m * n * max(k, 1) < singleCallWork { return (1, 1) }
        let w = tileColumns(rows: m)
        return ((m + tileRows - 1) / tileRows, (n + w - 1) / w)
    }

    /// `c = alpha · op(a) · op(b) + beta · c` where op(a) is (m, k), op(b) is (k, n), c is (m, n).
    public static func sgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        let ta = transposeA ? CblasTrans : CblasNoTrans, tb = transposeB ? CblasTrans : CblasNoTrans
        let grid = tiling(m: m, n: n, k: k)
        let pointers = Pointers(a: a, b: b, c: c)
        forEachTile(grid, m: m, n: n) { r0, rows, c0, columns in
            // Row r0 of op(a) and column c0 of op(b) in their stored layouts.
            let a0 = transposeA ? pointers.a + r0 : pointers.a + r0 * lda
            let b0 = transposeB ? pointers.b + c0 * ldb : pointers.b + c0
            cblas_sgemm(CblasRowMajor, ta, tb, Int32(rows), Int32(columns), Int32(k), alpha, a0, Int32(lda), b0, Int32(ldb),
                        beta, pointers.c + r0 * ldc + c0, Int32(ldc))
        }
    }

    /// `c = alpha · aᵀa + beta · c` on the upper triangle (j ≥ i) of c (n, n), for a (k, n) with
    /// leading dimension lda; the strict lower triangle is untouched. Tiled like `sgemm` in
    /// square blocks of `tileRows`: `ssyrk` on the diagonal blocks, `sgemm` above them.
    public static func ssyrkUpperTransposed(
        n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if n == 0 { return }
        let blocks = n * n / 2 * max(k, 1) < singleCallWork ? 1 : (n + tileRows - 1) / tileRows
        let size = blocks == 1 ? n : tileRows
        // Upper-triangle block pairs (i ≤ j), row by row: a fixed list for the shape.
        let pairs = (0..<blocks).flatMap { i in (i..<blocks).map { (i, $0) } }
        let pointers = Pointers(a: a, b: a, c: c)
        parallelFor(pairs.count) { t in
            let (i, j) = pairs[t]
            let i0 = i * size, j0 = j * size
            let rows = min(size, n - i0), columns = min(size, n - j0)
            let ci = pointers.c + i0 * ldc + j0
            if i == j {
                cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(rows), Int32(k), alpha, pointers.a + i0, Int32(lda),
                            beta, ci, Int32(ldc))
            } else {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(rows), Int32(columns), Int32(k), alpha,
                            pointers.a + i0, Int32(lda), pointers.a + j0, Int32(lda), beta, ci, Int32(ldc))
            }
        }
    }

    /// Runs `body(row0, rows, column0, columns)` for every tile of `grid` over an (m, n) output,
    /// spread over `BLASThreads.current` workers.
    static func forEachTile(_ grid: (rows: Int, columns: Int), m: Int, n: Int, _ body: (Int, Int, Int, Int) -> Void) {
        if grid.rows * grid.columns == 1 { return body(0, m, 0, n) }
        let w = tileColumns(rows: m)
        parallelFor(grid.rows * grid.columns) { t in
            let r = t / grid.columns, col = t % grid.columns
            let r0 = r * tileRows, c0 = col * w
            body(r0, min(tileRows, m - r0), c0, min(w, n - c0))
        }
    }

    /// `body(0..<count)` on up to `BLASThreads.current` workers, worker w taking w, w + W, ….
    /// Which worker runs an index never changes what the index computes.
    static func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        let workers = min(BLASThreads.current, count)
        if workers <= 1 {
            for t in 0..<count { body(t) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let job = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                for t in stride(from: w, to: count, by: workers) { job.value(t) }
            }
        }
    }

    /// The three operands' base pointers, handed to the workers (each writes its own tiles).
    struct Pointers<T>: @unchecked Sendable {
        let a: UnsafePointer<T>, b: UnsafePointer<T>, c: UnsafeMutablePointer<T>
        init(a: UnsafePointer<T>, b: UnsafePointer<T>, c: UnsafeMutablePointer<T>) { (self.a, self.b, self.c) = (a, b, c) }
    }

    /// A value the caller guarantees is safe to share with the workers.
    struct UncheckedSendable<T>: @unchecked Sendable {
        let value: T
        init(_ value: T) { self.value = value }
    }
}
