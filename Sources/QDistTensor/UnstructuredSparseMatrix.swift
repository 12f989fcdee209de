import Dispatch

/// A (rows, columns) Float32 matrix with at least half its entries exactly zero, in any pattern
/// (unstructured pruning: SparseGPT or Wanda at sparsity ≥ 0.5), stored compressed, with a
/// product `x · Wᵀ` for a few input rows that reads about as many bytes as it stores.
///
/// Why: like `SemiStructuredSparseMatrix`, a decode step is bound by weight bytes; unstructured
/// pruning keeps zeros anywhere, so each group of four consecutive entries of a row gets a 4-bit
/// mask of its nonzero positions (two per byte, (rows, columns/8)) and the nonzeros are stored
/// row after row. At 50% sparsity that is 2.125 bytes per weight instead of 4; above it, less.
///
/// The product reads, per group, the group's mask and the next four stored values, and
/// multiplies them with a per-token table holding, for each of the 16 masks, the inputs at the
/// mask's positions packed to the front and zero-padded — so lanes past the group's nonzeros
/// (which belong to the next group) are multiplied by zero. That needs every stored value
/// finite (0 · ∞ is NaN), which `detect` checks. Sums run in a fixed order per row and rows are
/// independent, so results are the same bits for any thread count.
public struct UnstructuredSparseMatrix: Sendable {
    /// Output features: rows of the dense matrix.
    public let rows: Int
    /// Input features: columns of the dense matrix, a multiple of 8.
    public let columns: Int
    /// The nonzero entries row after row, followed by 3 zeros (the kernel loads four at a time).
    public let values: [Float]
    /// (rows, columns/8): nonzero masks of the row's groups of four, even group in the low nibble.
    public let masks: [UInt8]
    /// (rows + 1): where each row's values start in `values`.
    public let rowStarts: [Int]

    /// Above this many input rows a product should go to the dense sgemm. Measured on SmolLM2's
    /// shapes (qdist-bench sparse24, 50% zeros): 1.7× faster than sgemm for one token, 1.1× for
    /// two, slower from four — per group the kernel does about twice the work of the 2:4 one (a
    /// mask lookup and a variable offset), so it is compute-bound as soon as tokens share a weight.
    public static let maxTokens = 1

    /// Rows per work item; fixed, so who computes a row never matters (as in the 2:4 kernel).
    static let chunkRows = 32

    /// The compressed form of `dense` (rows, columns), or nil unless columns are a positive
    /// multiple of 8, every entry is finite, and at least `minimumZeroFraction` of the entries are
    /// zero (±0) — below about half, the compressed bytes stop being much fewer than the dense ones.
    public static func detect(_ dense: Tensor, minimumZeroFraction: Double = 0.5) -> UnstructuredSparseMatrix? {
        guard dense.rank == 2 else { return nil }
        let (rows, columns) = (dense.shape[0], dense.shape[1])
        guard rows > 0, columns > 0, columns % 8 == 0 else { return nil }
        // One pass to count (and reject a dense or non-finite matrix without allocating).
        let nonzeros: Int? = dense.withUnsafeBufferPointer { w in
            var n = 0
            for v in w {
                guard v.isFinite else { return nil }
                if v != 0 { n += 1 }
            }
            return n
        }
        guard let nonzeros, Double(dense.count - nonzeros) >= minimumZeroFraction * Double(dense.count) else { return nil }
        var values = [Float](repeating: 0, count: nonzeros + 3)
        var masks = [UInt8](repeating: 0, count: rows * columns / 8)
        var rowStarts = [Int](repeating: 0, count: rows + 1)
        dense.withUnsafeBufferPointer { w in
            var k = 0
            for r in 0..<rows {
                rowStarts[r] = k
                for b in 0..<(columns / 8) {
                    var byte: UInt8 = 0
                    for j in 0..<8 {
                        let v = w[r * columns + 8 * b + j]
                        if v != 0 {
                            byte |= 1 << j
                            values[k] = v
                            k += 1
                        }
                    }
                    masks[r * columns / 8 + b] = byte
                }
            }
            rowStarts[rows] = k
        }
        return UnstructuredSparseMatrix(rows: rows, columns: columns, values: values, masks: masks, rowStarts: rowStarts)
    }

    /// The dense (rows, columns) matrix again.
    public func dense() -> Tensor {
        var out = [Float](repeating: 0, count: rows * columns)
        var k = 0
        for i in 0..<(rows * columns) where masks[i / 8] & (1 << (i % 8)) != 0 {
            out[i] = values[k]
            k += 1
        }
        return Tensor(shape: [rows, columns], scalars: out)
    }

    /// Bytes the compressed form holds (values, masks, row starts).
    public var compressedBytes: Int { values.count * 4 + masks.count + rowStarts.count * 8 }

    /// y = x · Wᵀ for x (tokens, columns) → (tokens, rows), on `threads` threads (default: the
    /// OpenBLAS count). Meant for few tokens, like `SemiStructuredSparseMatrix.multiply`.
    public func multiply(_ x: Tensor, threads: Int = BLASThreads.current) -> Tensor {
        precondition(x.columns == columns, "sparse product expects \(columns) features, got \(x.shape)")
        let tokens = x.count / columns
        if tokens == 0 { return Tensor(shape: [0, rows], scalars: []) }  // no buffers to point at
        let groups = columns / 4
        // (tokens, groups, 16 masks, 4): the group's inputs at the mask's positions, packed to the
        // front, zero-padded. 16·columns floats per token.
        var table = [Float](repeating: 0, count: tokens * groups * 64)
        x.withUnsafeBufferPointer { px in
            table.withUnsafeMutableBufferPointer { pt in
                for g in 0..<(tokens * groups) {
                    for m in 1..<16 {
                        var lane = 0
                        for j in 0..<4 where m & (1 << j) != 0 {
                            pt[64 * g + 4 * m + lane] = px[4 * g + j]
                            lane += 1
                        }
                    }
                }
            }
        }
        var y = [Float](repeating: 0, count: tokens * rows)
        let chunks = (rows + Self.chunkRows - 1) / Self.chunkRows
        let workers = max(1, min(threads, chunks))
        values.withUnsafeBufferPointer { pv in
            masks.withUnsafeBufferPointer { pm in
                rowStarts.withUnsafeBufferPointer { ps in
                    table.withUnsafeBufferPointer { pt in
                        y.withUnsafeMutableBufferPointer { py in
                            let job = ProductJob(values: pv.baseAddress!, masks: pm.baseAddress!, rowStarts: ps.baseAddress!,
                                                 table: pt.baseAddress!, out: py.baseAddress!, rows: rows, groups: groups,
                                                 tokens: tokens, chunks: chunks, workers: workers)
                            if workers == 1 { job.run(worker: 0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: job.run) }
                        }
                    }
                }
            }
        }
        return Tensor(shape: [tokens, rows], scalars: y)
    }

    /// One product's operands for the worker threads (unchecked Sendable: the pointers outlive
    /// the dispatch and workers write disjoint rows).
    struct ProductJob: @unchecked Sendable {
        let values: UnsafePointer<Float>, masks: UnsafePointer<UInt8>, rowStarts: UnsafePointer<Int>
        let table: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>
        let rows: Int, groups: Int, tokens: Int, chunks: Int, workers: Int

        func run(worker w: Int) {
            for c in (w * chunks / workers)..<((w + 1) * chunks / workers) {
                for r in (c * chunkRows)..<min((c + 1) * chunkRows, rows) {
                    for t in 0..<tokens {
                        out[t * rows + r] = dotRow(values: values + rowStarts[r], masks: masks + r * groups / 2,
                                                   table: table + t * groups * 64, groups: groups)
                    }
                }
            }
        }
    }

    /// Σ over the row's groups of (next four values) · table[group][mask]. Eight groups per step
    /// (one 32-bit word of masks) into four 4-lane sums; the per-group value counts come from a
    /// SWAR popcount of the word, so the only serial chain is the running value offset.
    @inline(__always)
    static func dotRow(values v: UnsafePointer<Float>, masks m: UnsafePointer<UInt8>,
                       table t: UnsafePointer<Float>, groups: Int) -> Float {
        let vr = UnsafeRawPointer(v), tr = UnsafeRawPointer(t)
        var a0 = SIMD4<Float>(), a1 = SIMD4<Float>(), a2 = SIMD4<Float>(), a3 = SIMD4<Float>()
        var k = 0  // byte offset of the next value
        var g = 0
        while g + 8 <= groups {
            let word = UnsafeRawPointer(m + g / 2).loadUnaligned(as: UInt32.self)
            var counts = word &- ((word >> 1) & 0x5555_5555)
            counts = (counts & 0x3333_3333) &+ ((counts >> 2) & 0x3333_3333)  // nibble i: popcount of mask i
            @inline(__always) func term(_ i: Int) -> SIMD4<Float> {
                let mask = Int(truncatingIfNeeded: (word >> (4 * UInt32(i))) & 15)
                let product = vr.loadUnaligned(fromByteOffset: k, as: SIMD4<Float>.self)
                    * tr.load(fromByteOffset: ((g + i) * 16 + mask) * 16, as: SIMD4<Float>.self)
                k &+= Int(truncatingIfNeeded: (counts >> (4 * UInt32(i))) & 15) * 4
                return product
            }
            a0 += term(0); a1 += term(1); a2 += term(2); a3 += term(3)
            a0 += term(4); a1 += term(5); a2 += term(6); a3 += term(7)
            g += 8
        }
        var tail = SIMD4<Float>()
        while g < groups {
            let mask = Int((m[g / 2] >> (4 * UInt8(g % 2))) & 15)
            tail += vr.loadUnaligned(fromByteOffset: k, as: SIMD4<Float>.self)
                * tr.load(fromByteOffset: (g * 16 + mask) * 16, as: SIMD4<Float>.self)
            k += mask.nonzeroBitCount * 4
            g += 1
        }
        let a = (a0 + a1) + (a2 + a3)
        return ((a[0] + a[1]) + (a[2] + a[3])) + ((tail[0] + tail[1]) + (tail[2] + tail[3]))
    }
}
