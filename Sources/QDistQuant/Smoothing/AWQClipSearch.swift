import Foundation
import QDistTensor

/// The original AWQ's weight clipping (llm-awq `auto_clip.py`, FORMATS.md 7.2), which
/// llm-compressor's AWQModifier lacks: for every output row and quantization group, try
/// clipping the weights to `max|W_g|·(1 − i/grid)`, i = 0 … ⌊maxShrink·grid⌋ − 1, quantize, and
/// keep the clip with the smallest output error on the calibration inputs; then clamp the
/// weights to it (the real quantization follows).
///
/// The error of a group is Σ_tokens (x_g·(q_g − w_g))² = (q_g − w_g)ᵀ H_gg (q_g − w_g), read
/// from the diagonal block of the input Hessian H = Σ x xᵀ: every token counts (llm-awq samples
/// 512) and the result is as exact as H (the pipeline passes the fixed-point sum, the same bits
/// on every rank).
public enum AWQClipSearch {
    /// `w` (rows, in) clamped per (row, group) to the best clip; `args` is the recipe's grid.
    public static func clipped(_ w: Tensor, hessian h: Tensor, args: QuantizationArgs, grid: Int = 20,
                               maxShrink: Double = 0.5) throws -> Tensor {
        let rows = w.rows, columns = w.columns
        let size = args.strategy == .group ? min(args.groupSize ?? columns, columns) : columns
        let groups = (columns + size - 1) / size
        let quantizer = try QuantizationGrid(args)
        var original = [Float](repeating: 0, count: rows * groups)
        w.withUnsafeBufferPointer { p in
            for r in 0..<rows {
                for j in 0..<columns { original[r * groups + j / size] = max(original[r * groups + j / size], abs(p[r * columns + j])) }
            }
        }
        let blocks = (0..<groups).map { g -> Tensor in
            let range = (g * size)..<min((g + 1) * size, columns)
            return h.rows(range).columns(range)
        }
        var best = original
        var bestError = [Double](repeating: .infinity, count: rows * groups)
        for i in 0..<Int(maxShrink * Double(grid)) {
            let factor = 1 - Float(i) / Float(grid)
            let limits = original.map { $0 * factor }
            let candidate = clamp(w, limits: limits, groupSize: size)
            let error = quantizer.quantize(candidate).dequantized() - w
            for g in 0..<groups {
                let range = (g * size)..<min((g + 1) * size, columns)
                let e = error.columns(range)
                let eh = Tensor.matmul(e, blocks[g])
                for r in 0..<rows {
                    var s = 0.0
                    for j in 0..<range.count { s += Double(eh.scalars[r * range.count + j]) * Double(e.scalars[r * range.count + j]) }
                    if s < bestError[r * groups + g] { (bestError[r * groups + g], best[r * groups + g]) = (s, limits[r * groups + g]) }
                }
            }
        }
        return clamp(w, limits: best, groupSize: size)
    }

    /// `w` with each (row, group) clamped to ±limits[row·groups + group].
    public static func clamp(_ w: Tensor, limits: [Float], groupSize size: Int) -> Tensor {
        var out = w
        let columns = w.columns, groups = (columns + size - 1) / size
        out.withUnsafeMutableBufferPointer { p in
            for r in 0..<w.rows {
                for j in 0..<columns {
                    let m = limits[r * groups + j / size]
                    p[r * columns + j] = min(max(p[r * columns + j], -m), m)
                }
            }
        }
        return out
    }
}
