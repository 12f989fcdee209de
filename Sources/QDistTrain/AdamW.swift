// port of torch.optim.AdamW (torch/optim/adamw.py, `_single_tensor_adamw`, amsgrad=False,
// maximize=False): decoupled weight decay, bias correction, eps added outside the square root.

/// AdamW's hyperparameters other than the learning rate (which a schedule supplies per step),
/// with torch.optim.AdamW's defaults except weight decay, which HF's Trainer sets to 0.
public struct AdamWHyperparameters: Sendable, Equatable, Codable {
    /// β₁: decay of the first moment (torch default 0.9).
    public var beta1: Double
    /// β₂: decay of the second moment (torch default 0.999).
    public var beta2: Double
    /// ε, added to √v̂ — outside the square root, as torch does.
    public var epsilon: Double
    /// λ: decoupled weight decay, applied as `p ← p·(1 − lr·λ)` before the Adam update.
    public var weightDecay: Double

    public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }
}

/// The first and second moments of AdamW for a contiguous slice of the flat parameter index.
///
/// Under ZeRO ≥ 1 a rank holds only its shard's moments; the update of an element depends on
/// that element alone, so updating shards separately gives bit-for-bit the same values as one
/// update of the whole buffer.
public struct AdamWState: Sendable, Equatable {
    /// m: the exponential average of gradients.
    public var firstMoment: [Float]
    /// v: the exponential average of squared gradients.
    public var secondMoment: [Float]

    /// Zero moments for `count` parameters (torch's state at step 0).
    public init(count: Int) {
        firstMoment = [Float](repeating: 0, count: count)
        secondMoment = [Float](repeating: 0, count: count)
    }

    public init(firstMoment: [Float], secondMoment: [Float]) {
        precondition(firstMoment.count == secondMoment.count, "m has \(firstMoment.count) values, v \(secondMoment.count)")
        self.firstMoment = firstMoment
        self.secondMoment = secondMoment
    }

    public var count: Int { firstMoment.count }
    /// Bytes held (m and v, fp32).
    public var byteCount: Int { 8 * count }
}

/// One AdamW step on a slice of parameters, exactly as torch.optim.AdamW computes it in fp32:
///
///     p ← p·(1 − lr·λ)
///     m ← m + (1 − β₁)(g − m)                 (torch's lerp)
///     v ← β₂·v + (1 − β₂)·g²
///     p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
///
/// `step` is t, counted from 1 (the number of updates including this one). The slice may be
/// any contiguous range of the flat index: the function never sees where it lies.
public enum AdamW {
    public static func update(parameters: inout [Float], gradients: [Float], state: inout AdamWState,
                              step: Int, learningRate: Double, hyperparameters h: AdamWHyperparameters) {
        precondition(step >= 1, "AdamW steps count from 1, got \(step)")
        precondition(parameters.count == gradients.count && parameters.count == state.count,
                     "AdamW slice: \(parameters.count) parameters, \(gradients.count) gradients, \(state.count) moments")
        // torch keeps lr, betas and the bias corrections as Python floats (double) and applies
        // them to fp32 tensors as fp32 scalars; the Float conversions below do the same.
        let decay = Float(1 - learningRate * h.weightDecay)
        let oneMinusBeta1 = Float(1 - h.beta1), beta2 = Float(h.beta2), oneMinusBeta2 = Float(1 - h.beta2)
        let biasCorrection1 = 1 - pow(h.beta1, Double(step))
        let biasCorrection2Sqrt = Float((1 - pow(h.beta2, Double(step))).squareRoot())
        let stepSize = Float(learningRate / biasCorrection1)
        let eps = Float(h.epsilon)
        parameters.withUnsafeMutableBufferPointer { p in
            gradients.withUnsafeBufferPointer { g in
                state.firstMoment.withUnsafeMutableBufferPointer { m in
                    state.secondMoment.withUnsafeMutableBufferPointer { v in
                        for i in 0..<p.count {
                            p[i] *= decay
                            m[i] += oneMinusBeta1 * (g[i] - m[i])
                            v[i] = v[i] * beta2 + oneMinusBeta2 * g[i] * g[i]
                            let denominator = v[i].squareRoot() / biasCorrection2Sqrt + eps
                            p[i] -= stepSize * m[i] / denominator
                        }
                    }
                }
            }
        }
    }

    /// Double-precision `pow` without Foundation (β^t for bias correction).
    static func pow(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0, b = base, e = Int(exponent)
        while e > 0 {
            if e & 1 == 1 { result *= b }
            b *= b
            e >>= 1
        }
        return result
    }
}
