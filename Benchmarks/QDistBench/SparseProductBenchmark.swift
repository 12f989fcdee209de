// `qdist-bench sparse24`: the decode product y = x · Wᵀ (1 to a few tokens) over SmolLM2's seven
// decoder linear shapes, dense through OpenBLAS against the 2:4 compressed kernel
// (SemiStructuredSparseMatrix), at each requested thread count. Enough layers are made that the
// weights do not fit in the last-level cache, as in a real decode step. For one token it also
// times cblas_sgemv on the dense weights: what a bandwidth-bound dense kernel gets, since
// OpenBLAS's sgemm with one row (what qdist's dense path calls) is slower than that.
import CBLAS
import Foundation
import QDistTensor

enum SparseProductBenchmark {
    /// SmolLM2-135M: q, k, v, o, gate, up, down as (out, in).
    static let shapes = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]

    /// A (rows, columns) matrix of values in [-1, 1) with two random positions of every four zeroed.
    static func random24(rows: Int, columns: Int, seed: UInt64) -> Tensor {
        var state = seed
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 11
        }
        var w = [Float](repeating: 0, count: rows * columns)
        for g in 0..<(rows * columns / 4) {
            let keep = SemiStructuredSparseMatrix.positionPairs[Int(next() % 6)]
            w[4 * g + keep.first] = Float(Int64(next() % 2000) - 1000) / 1000
            w[4 * g + keep.second] = Float(Int64(next() % 2000) - 1000) / 1000
        }
        return Tensor(shape: [rows, columns], scalars: w)
    }

    static func run(layers: Int, tokens: Int, threadCounts: [Int], repeats: Int) -> [String: Any] {
        let dense = (0..<layers).flatMap { l in
            shapes.enumerated().map { i, s in random24(rows: s.0, columns: s.1, seed: UInt64(l * 7 + i + 1)) }
        }
        let sparse = dense.compactMap(SemiStructuredSparseMatrix.detect)
        precondition(sparse.count == dense.count, "benchmark matrices must be 2:4")
        // The unstructured kernel on the same 2:4 matrices (50% zeros) and on matrices with 50%
        // zeros anywhere (a fixed shuffle of each 2:4 matrix's entries along its row).
        let unstructured24 = dense.compactMap { UnstructuredSparseMatrix.detect($0) }
        let unstructured = dense.compactMap { w -> UnstructuredSparseMatrix? in
            var s = w.scalars
            var state: UInt64 = 99
            for r in 0..<w.rows {
                for c in stride(from: w.columns - 1, to: 0, by: -1) {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    s.swapAt(r * w.columns + c, r * w.columns + Int((state >> 33) % UInt64(c + 1)))
                }
            }
            return UnstructuredSparseMatrix.detect(Tensor(shape: w.shape, scalars: s))
        }
        precondition(unstructured24.count == dense.count && unstructured.count == dense.count, "benchmark matrices are 50% zeros")
        let inputs = [576, 1536].map { n in
            Tensor(shape: [tokens, n], scalars: (0..<(tokens * n)).map { Float(($0 * 7919) % 2001 - 1000) / 1000 })
        }
        func input(_ columns: Int) -> Tensor { columns == 576 ? inputs[0] : inputs[1] }
        func best(_ body: () -> Void) -> Double {
            body()
            var t = Double.infinity
            for _ in 0..<repeats {
                let start = DispatchTime.now().uptimeNanoseconds
                body()
                t = min(t, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            return t
        }
        let denseBytes = Double(dense.reduce(0) { $0 + $1.count * 4 })
        let sparseBytes = Double(sparse.reduce(0) { $0 + $1.compressedBytes })
        var rows: [[String: Any]] = []
        for threads in threadCounts {
            BLASThreads.set(threads)
            // Alternate the two so drift in machine load hits both alike.
            var tDense = Double.infinity, tSparse = Double.infinity, tGemv = Double.infinity
            var tU24 = Double.infinity, tU = Double.infinity
            var y = [Float](repeating: 0, count: 1536)
            for _ in 0..<3 {
                tDense = min(tDense, best { for w in dense { _ = Tensor.matmul(input(w.columns), w, transposeB: true) } })
                tSparse = min(tSparse, best { for m in sparse { _ = m.multiply(input(m.columns), threads: threads) } })
                tU24 = min(tU24, best { for m in unstructured24 { _ = m.multiply(input(m.columns), threads: threads) } })
                tU = min(tU, best { for m in unstructured { _ = m.multiply(input(m.columns), threads: threads) } })
                if tokens == 1 {
                    tGemv = min(tGemv, best {
                        for w in dense {
                            w.withUnsafeBufferPointer { pw in input(w.columns).withUnsafeBufferPointer { px in
                                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(w.rows), Int32(w.columns), 1, pw.baseAddress,
                                            Int32(w.columns), px.baseAddress, 1, 0, &y, 1)
                            } }
                        }
                    })
                }
            }
            var row: [String: Any] = ["threads": threads, "dense_seconds": tDense, "sparse_seconds": tSparse,
                                      "speedup": tDense / tSparse, "dense_gbps": denseBytes / tDense / 1e9,
                                      "sparse_gbps": sparseBytes / tSparse / 1e9,
                                      "unstructured_on_24_seconds": tU24, "unstructured_50_seconds": tU,
                                      "unstructured_50_speedup": tDense / tU]
            if tokens == 1 {
                row["dense_sgemv_seconds"] = tGemv
                row["dense_sgemv_gbps"] = denseBytes / tGemv / 1e9
                row["speedup_over_sgemv"] = tGemv / tSparse
            }
            rows.append(row)
            FileHandle.standardError.write(Data(String(
                format: "sparse24 tokens=%d threads=%d: dense sgemm %.2f ms (%.1f GB/s), sparse %.2f ms (%.1f GB/s), speedup %.2fx%@\n",
                tokens, threads, tDense * 1e3, denseBytes / tDense / 1e9, tSparse * 1e3, sparseBytes / tSparse / 1e9,
                tDense / tSparse, tokens == 1 ? String(format: "; dense sgemv %.2f ms (%.1f GB/s)", tGemv * 1e3, denseBytes / tGemv / 1e9) : "").utf8))
            FileHandle.standardError.write(Data(String(
                format: "  unstructured kernel: on the 2:4 matrices %.2f ms, on 50%% unstructured %.2f ms (%.2fx over sgemm)\n",
                tU24 * 1e3, tU * 1e3, tDense / tU).utf8))
        }
        return ["benchmark": "sparse24", "layers": layers, "tokens": tokens, "dense_bytes": denseBytes,
                "sparse_bytes": sparseBytes, "results": rows]
    }
}
