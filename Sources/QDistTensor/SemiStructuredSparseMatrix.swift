import Dispatch

/// A (rows, columns) Float32 matrix with 2:4 semi-structured sparsity — at least two exact zeros
/// in every group of four consecutive entries of a row — stored compressed, with a product
/// `x · Wᵀ` for a few input rows that reads about 56% of the dense matrix's bytes.
///
/// Why: a decode step multiplies one token by every weight once, so it is bound by memory
/// bandwidth, and a 2:4-pruned model stores half its linear weights as zeros. Layout: the two
/// kept values of each group, lower position first (rows, columns/2), and one selector byte per
/// group naming which pair of positions they sit at (rows, columns/4): 2.25 bytes per weight
/// instead of 4. A group with three or four zeros keeps two positions anyway (one or both
/// values 0), so every group has the same shape and the kernel has no branches.
///
/// Products are exact Float32 multiply-adds in a fixed order per row (no FMA, no reassociation
/// that depends on threads), and the rows are cut into fixed chunks, so the result is the same
/// bits for every thread count. It is not the same bits as the dense sgemm (another summation
/// order); agreement is to rounding, ~1e-6 relative.
public struct SemiStructuredSparseMatrix: Sendable {
    /// Output features: rows of the dense matrix.
    public let rows: Int
    /// Input features: columns of the dense matrix, a multiple of 4.
    public let columns: Int
    /// (rows, columns/2): the two kept values of each group of four, lower position first.
    public let values: [Float]
    /// (rows, columns/4): the kept positions of each group, an index into `positionPairs`.
    public let selectors: [UInt8]

    /// The six ways to keep two of four positions; a selector byte indexes this table.
    public static let positionPairs: [(first: Int, second: Int)] = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]

    /// Above this many input rows a product should go to the dense sgemm instead: the sparse
    /// kernel does no cache blocking over tokens, so prefill and evaluation windows (hundreds of
    /// tokens) are faster through OpenBLAS, while decode (one token) is memory-bound.
    public static let maxTokens = 8

    /// Rows per work item. The partition is fixed (not derived from the thread count) so that
    /// who computes a row never matters; 32 rows of 1536 inputs are ~110 KB of compressed weight,
    /// enough work to amortize a dispatch, and 576 rows still give 18 items to balance.
    static let chunkRows = 32

    /// The compressed form of `dense` (rows, columns), or nil unless it is exactly 2:4: columns a
    /// positive multiple of 4 and at least two entries equal to zero (±0) in every group of four.
    /// A NaN is not zero. Returns at the first group that fails, so a dense matrix costs almost
    /// nothing to reject.
    public static func detect(_ dense: Tensor) -> SemiStructuredSparseMatrix? {
        guard dense.rank == 2 else { return nil }
        let (rows, columns) = (dense.shape[0], dense.shape[1])
        guard rows > 0, columns > 0, columns % 4 == 0 else { return nil }
        let groups = rows * (columns / 4)
        var values = [Float](repeating: 0, count: groups * 2)
        var selectors = [UInt8](repeating: 0, count: groups)
        // selectorFor[mask of kept positions] for the six two-bit masks; 0xff marks the others.
        var selectorFor = [UInt8](repeating: 0xff, count: 16)
        let pairTable = positionPairs  // one read of the static, not one per group
        for (s, p) in pairTable.enumerated() { selectorFor[1 << p.first | 1 << p.second] = UInt8(s) }
        let ok = dense.withUnsafeBufferPointer { w in
            values.withUnsafeMutableBufferPointer { v in
                selectors.withUnsafeMutableBufferPointer { sel in
                    for g in 0..<groups {
                        var keep = 0
                        for j in 0..<4 where w[4 * g + j] != 0 { keep |= 1 << j }
                        guard keep.nonzeroBitCount <= 2 else { return false }
                        // Fewer than two nonzeros: fill up with the lowest zero positions.
                        var j = 0
                        while keep.nonzeroBitCount < 2 {
                            keep |= 1 << j
                            j += 1
                        }
                        let s = Int(selectorFor[keep])
                        sel[g] = UInt8(s)
                        v[2 * g] = w[4 * g + pairTable[s].first]
                        v[2 * g + 1] = w[4 * g + pairTable[s].second]
                    }
                    return true
                }
            }
        }
        guard ok else { return nil }
        return SemiStructuredSparseMatrix(rows: rows, columns: columns, values: values, selectors: selectors)
    }

    /// The dense (rows, columns) matrix again: zeros where nothing was kept.
    public func dense() -> Tensor {
        var out = [Float](repeating: 0, count: rows * columns)
        for g in 0..<selectors.count {
            let p = Self.positionPairs[Int(selectors[g])]
            out[4 * g + p.first] = values[2 * g]
            out[4 * g + p.second] = values[2 * g + 1]
        }
        return Tensor(shape: [rows, columns], scalars: out)
    }

    /// Bytes the compressed form holds (values and selectors).
    public var compressedBytes: Int { values.count * MemoryLayout<Float>.stride + selectors.count }

    /// y = x · Wᵀ for x (tokens, columns) → (tokens, rows), on `threads` threads (default: the
    /// OpenBLAS count, so a user's OPENBLAS_NUM_THREADS limits both kernels alike). Meant for
    /// tokens ≤ `maxTokens`; more works, only slower than sgemm.
    public func multiply(_ x: Tensor, threads: Int = BLASThreads.current) -> Tensor {
        precondition(x.columns == columns, "sparse product expects \(columns) features, got \(x.shape)")
        let tokens = x.count / columns
        if tokens == 0 { return Tensor(shape: [0, rows], scalars: []) }  // no buffers to point at
        let groups = columns / 4
        // Per token and group, the six (x[a], x[b]) pairs a selector can name, (tokens, groups, 6, 2):
        // the kernel then reads its two inputs with one 8-byte load instead of decoding two
        // positions and gathering. 3·columns floats per token, built once per call.
        var pairs = [Float](repeating: 0, count: tokens * groups * 12)
        x.withUnsafeBufferPointer { px in
            pairs.withUnsafeMutableBufferPointer { pp in
                for g in 0..<(tokens * groups) {
                    let (x0, x1, x2, x3) = (px[4 * g], px[4 * g + 1], px[4 * g + 2], px[4 * g + 3])
                    let o = 12 * g
                    (pp[o], pp[o + 1], pp[o + 2], pp[o + 3]) = (x0, x1, x0, x2)
                    (pp[o + 4], pp[o + 5], pp[o + 6], pp[o + 7]) = (x0, x3, x1, x2)
                    (pp[o + 8], pp[o + 9], pp[o + 10], pp[o + 11]) = (x1, x3, x2, x3)
                }
            }
        }
        var y = [Float](repeating: 0, count: tokens * rows)
        let chunks = (rows + Self.chunkRows - 1) / Self.chunkRows
        let workers = max(1, min(threads, chunks))
        values.withUnsafeBufferPointer { pv in
            selectors.withUnsafeBufferPointer { ps in
                pairs.withUnsafeBufferPointer { pp in
                    y.withUnsafeMutableBufferPointer { py in
                        let job = ProductJob(values: pv.baseAddress!, selectors: ps.baseAddress!, pairs: pp.baseAddress!,
                                             out: py.baseAddress!, rows: rows, groups: groups, tokens: tokens,
                                             chunks: chunks, workers: workers)
                        if workers == 1 { job.run(worker: 0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: job.run) }
                    }
                }
            }
        }
        return Tensor(shape: [tokens, rows], scalars: y)
    }

    /// One product's operands for the worker threads. Unchecked Sendable because the pointers
    /// outlive the dispatch (`multiply` holds them across it) and workers write disjoint rows.
    struct ProductJob: @unchecked Sendable {
        let values: UnsafePointer<Float>, selectors: UnsafePointer<UInt8>, pairs: UnsafePointer<Float>
        let out: UnsafeMutablePointer<Float>
        let rows: Int, groups: Int, tokens: Int, chunks: Int, workers: Int

        /// Worker w takes a contiguous run of chunks: one forward stream per thread.
        func run(worker w: Int) {
            let half = 2 * groups
            for c in (w * chunks / workers)..<((w + 1) * chunks / workers) {
                for r in (c * chunkRows)..<min((c + 1) * chunkRows, rows) {
                    for t in 0..<tokens {
                        out[t * rows + r] = dotRow(values: values + r * half, selectors: selectors + r * groups,
                                                   pairs: pairs + t * groups * 12, groups: groups)
                    }
                }
            }
        }
    }

    /// Σ over the row's groups of value₀·x[a] + value₁·x[b]. Eight groups (16 products) per
    /// step into four independent 4-lane sums, so the adds pipeline; the lanes and the tail are
    /// combined in a fixed order.
    @inline(__always)
    static func dotRow(values v: UnsafePointer<Float>, selectors s: UnsafePointer<UInt8>,
                       pairs p: UnsafePointer<Float>, groups: Int) -> Float {
        let raw = UnsafeRawPointer(p)
        // The pair of group `g` for selector byte `sel`: 8 bytes at ((g·6 + sel)·2) floats.
        @inline(__always) func pair(_ g: Int, _ sel: UInt64) -> SIMD2<Float> {
            raw.load(fromByteOffset: (g * 6 + Int(truncatingIfNeeded: sel & 0xff)) * 8, as: SIMD2<Float>.self)
        }
        let vr = UnsafeRawPointer(v)
        var a0 = SIMD4<Float>(), a1 = SIMD4<Float>(), a2 = SIMD4<Float>(), a3 = SIMD4<Float>()
        var g = 0
        while g + 8 <= groups {
            let sel = UnsafeRawPointer(s + g).loadUnaligned(as: UInt64.self)
            let x0 = SIMD4(lowHalf: pair(g, sel), highHalf: pair(g + 1, sel >> 8))
            let x1 = SIMD4(lowHalf: pair(g + 2, sel >> 16), highHalf: pair(g + 3, sel >> 24))
            let x2 = SIMD4(lowHalf: pair(g + 4, sel >> 32), highHalf: pair(g + 5, sel >> 40))
            let x3 = SIMD4(lowHalf: pair(g + 6, sel >> 48), highHalf: pair(g + 7, sel >> 56))
            let o = 8 * g  // byte offset of value 2g
            a0 += vr.loadUnaligned(fromByteOffset: o, as: SIMD4<Float>.self) * x0
            a1 += vr.loadUnaligned(fromByteOffset: o + 16, as: SIMD4<Float>.self) * x1
            a2 += vr.loadUnaligned(fromByteOffset: o + 32, as: SIMD4<Float>.self) * x2
            a3 += vr.loadUnaligned(fromByteOffset: o + 48, as: SIMD4<Float>.self) * x3
            g += 8
        }
        var tail = SIMD2<Float>()
        while g < groups {
            tail += SIMD2(v[2 * g], v[2 * g + 1]) * pair(g, UInt64(s[g]))
            g += 1
        }
        let a = (a0 + a1) + (a2 + a3)
        return ((a[0] + a[1]) + (a[2] + a[3])) + (tail[0] + tail[1])
    }
}
