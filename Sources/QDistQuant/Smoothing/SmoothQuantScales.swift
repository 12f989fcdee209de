import Foundation
import QDistTensor

/// SmoothQuant's per-channel smoothing scales, as llm-compressor's `SmoothQuantModifier`
/// computes them (FORMATS.md 7.3, 10.2): from the per-channel range of the smooth layer's output
/// (max − min over the calibration tokens) and the largest |W[:, j]| over the balance layers,
///
///     w_j = 2 · max_l max_i |W_l[i, j]|,    s_j = max(act_j^α / w_j^(1−α), 1e-5)   (s_j = act_j where w_j = 0)
///
/// Dividing the norm by s and multiplying the balance columns by s moves activation outliers
/// into the weights, which int8 per-channel weights absorb more easily than one per-tensor or
/// per-token activation scale does.
public enum SmoothQuantScales {
    /// llm-compressor's `MINIMUM_SMOOTHING_SCALE`.
    public static let minimumScale = 1e-5

    /// The scales for smoothing strength `alpha` (0…1).
    public static func scales(activationRange: [Double], weightScale: [Double], alpha: Double) -> [Float] {
        zip(activationRange, weightScale).map { a, w in
            let s = w > 0 ? pow(a, alpha) / pow(w, 1 - alpha) : a
            return Float(max(s, minimumScale))
        }
    }

    /// `2 · max over layers and rows of |W[:, j]|`, per input column j.
    public static func weightScale(_ weights: [Tensor]) -> [Double] {
        guard let columns = weights.first?.columns else { return [] }
        var m = [Float](repeating: 0, count: columns)
        for w in weights {
            w.withUnsafeBufferPointer { p in
                for r in 0..<w.rows {
                    let base = r * columns
                    for j in 0..<columns { m[j] = max(m[j], abs(p[base + j])) }
                }
            }
        }
        return m.map { 2 * Double($0) }
    }
}
