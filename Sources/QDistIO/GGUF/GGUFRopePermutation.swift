import QDistTensor

/// convert_hf_to_gguf's row permutation of the Q and K projections, and its inverse
/// (FORMATS.md §2.5; `LlamaModel.permute`).
///
/// Hugging Face Llama checkpoints rotate dimension `i` with `i + head_dim/2` ("rotate half");
/// llama.cpp's `llama` architecture rotates `2i` with `2i + 1`. The converter therefore
/// reorders the rows (output features) within each head: GGUF row `h·hd + 2j + p` is HF row
/// `h·hd + p·hd/2 + j`. Loading a GGUF without undoing this gives a model whose attention is
/// silently wrong, so `GGUFCheckpoint` applies `toHuggingFace` to `attn_q` (query heads) and
/// `attn_k` (key/value heads), weights and biases. Whole rows move and columns stay put, so the
/// permutation commutes with quantization along rows. Other architectures (qwen2) are stored
/// unpermuted.
public enum GGUFRopePermutation {
    /// HF → GGUF order: `W.reshape(heads, 2, hd/2, cols).swapaxes(1, 2).reshape(rows, cols)`.
    /// `t` is a matrix (rows, cols) or a bias (rows); rows must be a multiple of 2·heads.
    public static func toGGUF(_ t: Tensor, heads: Int) -> Tensor {
        permuted(t, heads: heads) { headDim, j, p in p * (headDim / 2) + j }
    }

    /// GGUF → HF order, the inverse of `toGGUF`:
    /// `W.reshape(heads, hd/2, 2, cols).swapaxes(1, 2).reshape(rows, cols)`.
    public static func toHuggingFace(_ t: Tensor, heads: Int) -> Tensor {
        // HF row p·hd/2 + j takes GGUF row 2j + p, i.e. output row r = p·hd/2 + j reads 2j + p.
        let rows = t.shape.first ?? 0
        precondition(heads > 0 && rows % (2 * heads) == 0, "Q/K permutation: \(rows) rows is not a multiple of 2 × \(heads) heads")
        let headDim = rows / heads, half = headDim / 2
        return gathered(t) { r in
            let h = r / headDim, i = r % headDim
            let p = i / half, j = i % half
            return h * headDim + 2 * j + p
        }
    }

    /// Output row `h·hd + 2j + p` reads input row `h·hd + source(hd, j, p)`.
    private static func permuted(_ t: Tensor, heads: Int, source: (Int, Int, Int) -> Int) -> Tensor {
        let rows = t.shape.first ?? 0
        precondition(heads > 0 && rows % (2 * heads) == 0, "Q/K permutation: \(rows) rows is not a multiple of 2 × \(heads) heads")
        let headDim = rows / heads
        return gathered(t) { r in
            let h = r / headDim, i = r % headDim
            return h * headDim + source(headDim, i / 2, i % 2)
        }
    }

    /// A tensor whose row r is row `from(r)` of `t` (rows = outermost dimension).
    private static func gathered(_ t: Tensor, from: (Int) -> Int) -> Tensor {
        let rows = t.shape.first ?? 0
        guard rows > 0 else { return t }
        let width = t.count / rows
        var out = [Float](repeating: 0, count: t.count)
        t.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows {
                    let s = from(r)
                    UnsafeMutableRawPointer(dst.baseAddress! + r * width)
                        .copyMemory(from: src.baseAddress! + s * width, byteCount: width * 4)
                }
            }
        }
        return Tensor(shape: t.shape, scalars: out)
    }
}
