import Foundation
import QDistTensor

/// Causal grouped-query attention over projected q, k, v, head by head through strided sgemm
/// (no per-head copies): scores = q_h·k_gᵀ/√d, causal mask, softmax, then ·v_g, where query head
/// h reads key/value head g = h / (heads / kvHeads).
public struct LlamaAttention: Sendable {
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int

    public init(heads: Int, kvHeads: Int, headDim: Int) {
        precondition(heads % kvHeads == 0, "\(heads) attention heads do not group into \(kvHeads) key/value heads")
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
    }

    /// q: (S, heads·d) for positions offset..<offset+S; keys/values: T = offset + S rows of
    /// kvHeads·d (the cached prefix followed by the new tokens). Returns (S, heads·d).
    public func callAsFunction(queries q: Tensor, keys: UnsafeBufferPointer<Float>, values: UnsafeBufferPointer<Float>,
                               positionOffset offset: Int) -> Tensor {
        let s = q.rows, qWidth = heads * headDim, kvWidth = kvHeads * headDim
        let t = keys.count / kvWidth
        precondition(q.columns == qWidth && t == offset + s && values.count == keys.count,
                     "attention: q \(q.shape), \(t) cached+new keys, offset \(offset)")
        let group = heads / kvHeads
        let scale = 1 / Float(headDim).squareRoot()
        var out = Tensor.zeros([s, qWidth])
        // Query rows go in chunks so each chunk only scores the keys it can see: the causal
        // upper triangle is never computed (≈ 40% less attention work at 512 tokens).
        let chunk = 128
        var scores = [Float](repeating: 0, count: min(s, chunk) * t)
        q.withUnsafeBufferPointer { pq in
            out.withUnsafeMutableBufferPointer { po in
                scores.withUnsafeMutableBufferPointer { ps in
                    for h in 0..<heads {
                        let g = h / group
                        for r0 in stride(from: 0, to: s, by: chunk) {
                            let m = min(chunk, s - r0), visible = min(t, offset + r0 + m)
                            BLAS.sgemm(transposeA: false, transposeB: true, m: m, n: visible, k: headDim, alpha: scale,
                                       a: pq.baseAddress! + r0 * qWidth + h * headDim, lda: qWidth,
                                       b: keys.baseAddress! + g * headDim, ldb: kvWidth,
                                       c: ps.baseAddress!, ldc: visible)
                            Self.maskedSoftmax(ps, rows: m, columns: visible, offset: offset + r0)
                            BLAS.sgemm(transposeA: false, transposeB: false, m: m, n: headDim, k: visible,
                                       a: ps.baseAddress!, lda: visible,
                                       b: values.baseAddress! + g * headDim, ldb: kvWidth,
                                       c: po.baseAddress! + r0 * qWidth + h * headDim, ldc: qWidth)
                        }
                    }
                }
            }
        }
        return out
    }

    /// Row i (position offset + i) keeps columns 0...offset+i; later columns get probability 0.
    static func maskedSoftmax(_ p: UnsafeMutableBufferPointer<Float>, rows: Int, columns: Int, offset: Int) {
        for i in 0..<rows {
            let row = p.baseAddress! + i * columns
            let visible = min(columns, offset + i + 1)
            var m = -Float.infinity
            for j in 0..<visible { m = max(m, row[j]) }
            var sum: Float = 0
            for j in 0..<visible { let e = exp(row[j] - m); row[j] = e; sum += e }
            let inv = 1 / sum
            for j in 0..<visible { row[j] *= inv }
            for j in visible..<columns { row[j] = 0 }
        }
    }
}
