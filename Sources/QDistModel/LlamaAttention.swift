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
        var scores = [Float](repeating: 0, count: s * t)
        q.withUnsafeBufferPointer { pq in
            out.withUnsafeMutableBufferPointer { po in
                scores.withUnsafeMutableBufferPointer { ps in
                    for h in 0..<heads {
                        let g = h / group
                        BLAS.sgemm(transposeA: false, transposeB: true, m: s, n: t, k: headDim, alpha: scale,
                                   a: pq.baseAddress! + h * headDim, lda: qWidth,
                                   b: keys.baseAddress! + g * headDim, ldb: kvWidth,
                                   c: ps.baseAddress!, ldc: t)
                        Self.maskedSoftmax(ps, rows: s, columns: t, offset: offset)
                        BLAS.sgemm(transposeA: false, transposeB: false, m: s, n: headDim, k: t,
                                   a: ps.baseAddress!, lda: t,
                                   b: values.baseAddress! + g * headDim, ldb: kvWidth,
                                   c: po.baseAddress! + h * headDim, ldc: qWidth)
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
