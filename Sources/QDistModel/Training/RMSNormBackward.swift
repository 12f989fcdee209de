import QDistTensor

/// RMSNorm with what its backward needs: y = x · r · w with r = 1/√(mean(x²) + ε) per row.
///
/// The forward is `Tensor.rmsNormalized` step for step (Double sum of squares, Float products),
/// so the training graph and the eval forward give the same numbers.
public enum RMSNorm {
    /// y (rows, hidden) and r for every row.
    public static func forward(_ x: Tensor, weight: Tensor, epsilon: Float) -> (output: Tensor, inverseRMS: [Float]) {
        let c = x.columns, rows = x.rows
        precondition(weight.count == c, "rmsNorm weight of \(weight.count) for \(c) columns")
        var out = x
        var inverse = [Float](repeating: 0, count: rows)
        weight.withUnsafeBufferPointer { pw in
            out.withUnsafeMutableBufferPointer { p in
                for r in 0..<rows {
                    var ss = 0.0
                    for j in 0..<c { let v = Double(p[r * c + j]); ss += v * v }
                    let inv = Float(1 / (ss / Double(c) + Double(epsilon)).squareRoot())
                    inverse[r] = inv
                    for j in 0..<c { p[r * c + j] = p[r * c + j] * inv * pw[j] }
                }
            }
        }
        return (out, inverse)
    }

    /// dL/dx from dL/dy: dx_j = r·w_j·g_j − r³·x_j·(Σ_k w_k·g_k·x_k)/hidden.
    public static func backward(_ x: Tensor, weight: Tensor, inverseRMS: [Float], outputGradient g: Tensor) -> Tensor {
        let c = x.columns, rows = x.rows
        precondition(g.shape == x.shape && inverseRMS.count == rows && weight.count == c,
                     "rmsNorm backward: x \(x.shape), dy \(g.shape), \(inverseRMS.count) row scales")
        var dx = Tensor.zeros(x.shape)
        x.withUnsafeBufferPointer { px in
            g.withUnsafeBufferPointer { pg in
                weight.withUnsafeBufferPointer { pw in
                    dx.withUnsafeMutableBufferPointer { pd in
                        for r in 0..<rows {
                            let base = r * c
                            var dot = 0.0
                            for j in 0..<c { dot += Double(pw[j] * pg[base + j]) * Double(px[base + j]) }
                            let inv = inverseRMS[r]
                            let k = Float(Double(inv) * Double(inv) * Double(inv) * dot / Double(c))
                            for j in 0..<c { pd[base + j] = inv * pw[j] * pg[base + j] - k * px[base + j] }
                        }
                    }
                }
            }
        }
        return dx
    }

    /// dL/dw = Σ_rows g·x·r, for runs that train the norm weights (QLoRA keeps them frozen).
    public static func weightGradient(_ x: Tensor, inverseRMS: [Float], outputGradient g: Tensor) -> Tensor {
        let c = x.columns, rows = x.rows
        precondition(g.shape == x.shape && inverseRMS.count == rows, "rmsNorm weight gradient: x \(x.shape), dy \(g.shape)")
        var sums = [Double](repeating: 0, count: c)
        x.withUnsafeBufferPointer { px in
            g.withUnsafeBufferPointer { pg in
                for r in 0..<rows {
                    let inv = Double(inverseRMS[r])
                    for j in 0..<c { sums[j] += Double(pg[r * c + j] * px[r * c + j]) * inv }
                }
            }
        }
        return Tensor(shape: [c], scalars: sums.map(Float.init))
    }
}
