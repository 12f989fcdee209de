import Foundation
import QDistTensor

extension LlamaAttention {
    /// Causal grouped-query attention over several sequences packed one after another (rows
    /// `segment` of q, k, v form one sequence, at positions 0..<count; no attention across
    /// segments). q: (rows, heads·d); k, v: (rows, kvHeads·d) → (rows, heads·d).
    ///
    /// The same chunked sgemm / masked-softmax / sgemm sequence as `callAsFunction`, so it
    /// matches the eval forward; the probabilities are not kept (the backward recomputes them
    /// chunk by chunk, so attention never holds more than (128, S) scores).
    public func forward(queries q: Tensor, keys k: Tensor, values v: Tensor, segments: [Range<Int>]) -> Tensor {
        forward(queries: q, keys: k, values: v, segments: segments, queryChunk: Self.queryChunk)
    }

    func forward(queries q: Tensor, keys k: Tensor, values v: Tensor, segments: [Range<Int>], queryChunk: Int) -> Tensor {
        let qWidth = heads * headDim, kvWidth = kvHeads * headDim
        checkShapes(q, k, v, segments)
        let group = heads / kvHeads
        let scale = 1 / Float(headDim).squareRoot()
        let longest = segments.map(\.count).max() ?? 0
        var out = Tensor.zeros([q.rows, qWidth])
        var scores = [Float](repeating: 0, count: min(longest, queryChunk) * longest)
        q.withUnsafeBufferPointer { pq in
        k.withUnsafeBufferPointer { pk in
        v.withUnsafeBufferPointer { pv in
        out.withUnsafeMutableBufferPointer { po in
        scores.withUnsafeMutableBufferPointer { ps in
            for segment in segments where !segment.isEmpty {
                let s = segment.count, r0 = segment.lowerBound
                for h in 0..<heads {
                    let g = h / group
                    let kg = pk.baseAddress! + r0 * kvWidth + g * headDim
                    let vg = pv.baseAddress! + r0 * kvWidth + g * headDim
                    // Query rows in chunks, each scoring only the keys it can see.
                    for c0 in stride(from: 0, to: s, by: queryChunk) {
                        let m = min(queryChunk, s - c0), visible = c0 + m
                        BLAS.sgemm(transposeA: false, transposeB: true, m: m, n: visible, k: headDim, alpha: scale,
                                   a: pq.baseAddress! + (r0 + c0) * qWidth + h * headDim, lda: qWidth,
                                   b: kg, ldb: kvWidth, c: ps.baseAddress!, ldc: visible)
                        Self.maskedSoftmax(ps, rows: m, columns: visible, offset: c0)
                        BLAS.sgemm(transposeA: false, transposeB: false, m: m, n: headDim, k: visible,
                                   a: ps.baseAddress!, lda: visible, b: vg, ldb: kvWidth,
                                   c: po.baseAddress! + (r0 + c0) * qWidth + h * headDim, ldc: qWidth)
                    }
                }
            }
        }}}}}
        return out
    }

    /// Query rows per attention chunk, as in the eval forward.
    static let queryChunk = 128

    /// dL/dq, dL/dk, dL/dv from dL/d(output), through the softmax:
    /// P = softmax(q·kᵀ/√d) (recomputed), dP = dO·vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)),
    /// dq = dS·k/√d, dk = dSᵀ·q/√d, dv = Pᵀ·dO; a key/value head sums the gradients of all the
    /// query heads of its group.
    public func backward(queries q: Tensor, keys k: Tensor, values v: Tensor, segments: [Range<Int>],
                         outputGradient dO: Tensor) -> (queries: Tensor, keys: Tensor, values: Tensor) {
        backward(queries: q, keys: k, values: v, segments: segments, outputGradient: dO, queryChunk: Self.queryChunk)
    }

    func backward(queries q: Tensor, keys k: Tensor, values v: Tensor, segments: [Range<Int>],
                  outputGradient dO: Tensor, queryChunk: Int) -> (queries: Tensor, keys: Tensor, values: Tensor) {
        let qWidth = heads * headDim, kvWidth = kvHeads * headDim
        checkShapes(q, k, v, segments)
        precondition(dO.shape == q.shape, "attention backward: dO \(dO.shape) for q \(q.shape)")
        let group = heads / kvHeads
        let scale = 1 / Float(headDim).squareRoot()
        let longest = segments.map(\.count).max() ?? 0
        var dq = Tensor.zeros(q.shape), dk = Tensor.zeros(k.shape), dv = Tensor.zeros(v.shape)
        let chunk = min(longest, queryChunk)
        var probabilityBuffer = [Float](repeating: 0, count: chunk * longest)
        var gradientBuffer = probabilityBuffer
        q.withUnsafeBufferPointer { pq in
        k.withUnsafeBufferPointer { pk in
        v.withUnsafeBufferPointer { pv in
        dO.withUnsafeBufferPointer { pdo in
        dq.withUnsafeMutableBufferPointer { pdq in
        dk.withUnsafeMutableBufferPointer { pdk in
        dv.withUnsafeMutableBufferPointer { pdv in
        probabilityBuffer.withUnsafeMutableBufferPointer { p in
        gradientBuffer.withUnsafeMutableBufferPointer { ds in
            for segment in segments where !segment.isEmpty {
                let s = segment.count, r0 = segment.lowerBound
                for h in 0..<heads {
                    let g = h / group
                    let kg = pk.baseAddress! + r0 * kvWidth + g * headDim
                    let vg = pv.baseAddress! + r0 * kvWidth + g * headDim
                    let dkg = pdk.baseAddress! + r0 * kvWidth + g * headDim
                    let dvg = pdv.baseAddress! + r0 * kvWidth + g * headDim
                    for c0 in stride(from: 0, to: s, by: queryChunk) {
                        let m = min(queryChunk, s - c0), n = c0 + m
                        let qh = pq.baseAddress! + (r0 + c0) * qWidth + h * headDim
                        let doh = pdo.baseAddress! + (r0 + c0) * qWidth + h * headDim
                        // P (m, n): the forward's probabilities, recomputed.
                        BLAS.sgemm(transposeA: false, transposeB: true, m: m, n: n, k: headDim, alpha: scale,
                                   a: qh, lda: qWidth, b: kg, ldb: kvWidth, c: p.baseAddress!, ldc: n)
                        Self.maskedSoftmax(p, rows: m, columns: n, offset: c0)
                        // dP = dO_h · v_gᵀ (m, n), then dS = P ⊙ (dP − rowsum(P ⊙ dP)) in place.
                        BLAS.sgemm(transposeA: false, transposeB: true, m: m, n: n, k: headDim,
                                   a: doh, lda: qWidth, b: vg, ldb: kvWidth, c: ds.baseAddress!, ldc: n)
                        for i in 0..<m {
                            let row = i * n, visible = c0 + i + 1
                            var dot: Float = 0
                            for j in 0..<visible { dot += p[row + j] * ds[row + j] }
                            for j in 0..<visible { ds[row + j] = p[row + j] * (ds[row + j] - dot) }
                            for j in visible..<n { ds[row + j] = 0 }
                        }
                        BLAS.sgemm(transposeA: false, transposeB: false, m: m, n: headDim, k: n, alpha: scale,
                                   a: ds.baseAddress!, lda: n, b: kg, ldb: kvWidth,
                                   c: pdq.baseAddress! + (r0 + c0) * qWidth + h * headDim, ldc: qWidth)
                        BLAS.sgemm(transposeA: true, transposeB: false, m: n, n: headDim, k: m, alpha: scale,
                                   a: ds.baseAddress!, lda: n, b: qh, ldb: qWidth, beta: 1, c: dkg, ldc: kvWidth)
                        BLAS.sgemm(transposeA: true, transposeB: false, m: n, n: headDim, k: m,
                                   a: p.baseAddress!, lda: n, b: doh, ldb: qWidth, beta: 1, c: dvg, ldc: kvWidth)
                    }
                }
            }
        }}}}}}}}}
        return (dq, dk, dv)
    }

    private func checkShapes(_ q: Tensor, _ k: Tensor, _ v: Tensor, _ segments: [Range<Int>]) {
        precondition(q.columns == heads * headDim && k.columns == kvHeads * headDim && v.shape == k.shape && q.rows == k.rows,
                     "attention: q \(q.shape), k \(k.shape), v \(v.shape) for \(heads)/\(kvHeads) heads of \(headDim)")
        precondition(segments.allSatisfy { $0.lowerBound >= 0 && $0.upperBound <= q.rows },
                     "attention: segments \(segments) outside \(q.rows) rows")
    }
}
