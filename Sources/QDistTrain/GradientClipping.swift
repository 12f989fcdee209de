// port of torch.nn.utils.clip_grad_norm_ (norm_type 2, error_if_nonfinite=False), with the
// norm assembled from per-shard sums of squares so that ZeRO ranks never need the full gradient.

/// Clipping by the global L2 norm of all trainable gradients, split into the part a rank can do
/// alone (the sum of squares of its shard) and the part that needs the total.
///
/// A caller sums the shards' squares (`DataParallelTrainer` does it exactly, as
/// `FixedPointLimbs.squares` digits, so the norm does not depend on P; `sumOfSquares` is the
/// plain Double form), asks `coefficient` for the factor, and scales its own shard with `scale`. torch computes
/// `max_norm / (total_norm + 1e-6)` clamped to 1 and always multiplies, which is what this does.
public enum GradientClipping {
    /// Σ g² of one shard, accumulated in Double so the total does not depend on shard sizes
    /// beyond rounding of the final sum.
    public static func sumOfSquares(_ gradients: [Float]) -> Double {
        gradients.withUnsafeBufferPointer { g in
            var sum = 0.0
            for x in g { sum += Double(x) * Double(x) }
            return sum
        }
    }

    /// The global norm √(Σ shards) and the factor torch would multiply every gradient by:
    /// `min(1, maxNorm / (norm + 1e-6))`. With no `maxNorm` (clipping off) the factor is 1.
    public static func coefficient(totalSumOfSquares: Double, maxNorm: Double?) -> (norm: Double, factor: Float) {
        let norm = totalSumOfSquares.squareRoot()
        guard let maxNorm, maxNorm > 0 else { return (norm, 1) }
        // torch forms the coefficient in fp32 (a tensor op) before clamping.
        let factor = Float(maxNorm) / (Float(norm) + 1e-6)
        return (norm, min(factor, 1))
    }

    /// Multiplies a shard by `factor` in place.
    public static func scale(_ gradients: inout [Float], by factor: Float) {
        guard factor != 1 else { return }
        gradients.withUnsafeMutableBufferPointer { g in
            for i in 0..<g.count { g[i] *= factor }
        }
    }
}
