import Foundation  // powf for the l_p shrinkage
import QDistTensor

/// HQQ, Half-Quadratic Quantization (Badri & Shaji 2023; `mobiusml/hqq` 0.2.8,
/// FORMATS.md §7.1 and §10.5) for one weight: asymmetric group quantization whose zero points
/// are tuned, without calibration data, to minimise an l_p (p < 1) norm of the weight error.
///
/// A pure function of (weight, settings) that reproduces the library's default path,
/// `Quantizer.quantize(W, nbits, group_size, axis=1, optimize=True)` →
/// `optimize_weights_proximal_legacy` in fp32 on CPU:
/// - groups are `groupSize` consecutive input columns of a row (the library's `axis=1`);
/// - the library works with an inverse scale `s`: `W_q = clamp(round(W·s + z), 0, 2^b − 1)`,
///   `W_r = (W_q − z)/s`; start `s = (2^b − 1)/(max − min)` (1 where `|max − min| ≤ 1e-4`, at
///   most 2e4) and `z = −min·s`, rounded when `roundZero`;
/// - each step quantizes with the current `z`, measures `mean|W − W_r|` over the *whole* weight
///   (not per group), then sets `z = mean_group(W_q − (W − shrink_lp(W − W_r))·s)`; the loop
///   stops at the first step whose error, as a float32, is not below the best so far and keeps
///   the `z` that step computed (the library does not roll back, and the legacy solver keeps β
///   fixed);
/// - the stored scale is `1/s`, the zero point the float `z` (even with `roundZero`: the
///   optimiser's mean replaces the rounded start value, as in the library).
/// Cost: `O(steps · count)` with at most `iterations` steps; no allocation inside the loops.
/// Failure modes are thrown as `HQQError`: unsupported settings, a weight that is not 2-D, a
/// group size that does not divide the input features, non-finite weights.
public enum HQQSolver {
    /// The solver's settings; the defaults are the library's (`nbits=4, group_size=64,
    /// round_zero=False`, legacy `opt_params {lp_norm: 0.7, beta: 10, iters: 20}`).
    ///
    /// There is no `kappa`: the library passes `kappa: 1.01` to the legacy solver, which never
    /// reads it (only the experimental `optimize_weights_proximal_v2` grows β), so a setting here
    /// would change nothing. Failure mode: values outside the documented ranges are rejected by
    /// `quantize`, not clamped.
    public struct Settings: Sendable, Equatable {
        /// Bits per code: the library's integer widths 2, 3, 4, 5, 6, 8.
        public var nbits: Int
        /// Consecutive input columns that share one scale and zero point; must divide `in`.
        public var groupSize: Int
        /// Round the *initial* zero point (AutoAWQ style); the optimised one stays fractional.
        public var roundZero: Bool
        /// p of the l_p error the shrinkage targets, in (0, 1].
        public var lpNorm: Double
        /// Half-quadratic penalty β (> 0): the shrinkage threshold is about β^(−1/(2−p)).
        public var beta: Double
        /// Maximum proximal steps (0 keeps the min–max start).
        public var iterations: Int

        public init(nbits: Int = 4, groupSize: Int = 64, roundZero: Bool = false,
                    lpNorm: Double = 0.7, beta: Double = 10, iterations: Int = 20) {
            self.nbits = nbits
            self.groupSize = groupSize
            self.roundZero = roundZero
            self.lpNorm = lpNorm
            self.beta = beta
            self.iterations = iterations
        }

        /// The integer widths `Quantizer.SUPPORTED_BITS` lists (1 and 1.58 are left out: qdist's
        /// code storage starts at 2 bits).
        public static let supportedBits: [Int] = [2, 3, 4, 5, 6, 8]

        func validate() throws(HQQError) {
            guard Self.supportedBits.contains(nbits) else {
                throw .invalidSettings("nbits \(nbits) is not supported; use one of \(Self.supportedBits)")
            }
            guard groupSize > 0 else { throw .invalidSettings("group size must be > 0, got \(groupSize)") }
            guard lpNorm > 0 && lpNorm <= 1 else { throw .invalidSettings("lp_norm must be in (0, 1], got \(lpNorm)") }
            guard beta > 0 && beta.isFinite else { throw .invalidSettings("beta must be a positive number, got \(beta)") }
            guard iterations >= 0 else { throw .invalidSettings("iterations must be ≥ 0, got \(iterations)") }
        }
    }

    /// Quantizes `w` (rows = output features, columns = input features) with HQQ.
    public static func quantize(_ w: Tensor, settings: Settings = Settings()) throws(HQQError) -> HQQResult {
        try settings.validate()
        guard w.rank == 2 else { throw .shape("HQQ needs a 2-D (out, in) weight, got shape \(w.shape)") }
        let rows = w.rows, cols = w.columns, gs = settings.groupSize
        guard cols % gs == 0 else {
            throw .shape("group size \(gs) does not divide in_features \(cols) of weight shape \(w.shape)")
        }
        guard GPTQSolver.allFinite(w) else { throw .nonFinite("weight of shape \(w.shape) contains NaN or infinity") }
        let groups = w.count / gs
        var state = HQQGroupState(groups: groups)
        var codes = [UInt8](repeating: 0, count: w.count)
        let qmax = Float((1 << settings.nbits) - 1)
        let shrink = HQQShrink(beta: settings.beta, lpNorm: settings.lpNorm)

        w.withUnsafeBufferPointer { src in
            // Min–max start per group (float32, as the library).
            for g in 0..<groups {
                let x = UnsafeBufferPointer(rebasing: src[g * gs..<(g + 1) * gs])
                var lo = x[0], hi = x[0]
                for v in x { lo = Swift.min(lo, v); hi = Swift.max(hi, v) }
                let denom = hi - lo
                // `max_v / denom` is torch's `__rtruediv__`, i.e. `denom.reciprocal() * max_v`:
                // two roundings. bf16 checkpoints put many weights exactly at a group's
                // midpoint, where W·s + z is a rounding tie, so the last bit of s decides codes.
                var s = abs(denom) <= Float(1e-4) ? 1 : (1 / denom) * qmax
                s = Swift.min(s, 2e4)
                let z = -lo * s
                state.inverseScales[g] = s
                state.zeros[g] = settings.roundZero ? z.rounded(.toNearestOrEven) : z
            }
            // Iteration-major: the early stop looks at the error of the whole weight, so every
            // group must finish step i before the decision about step i + 1.
            // The library keeps both errors in float32 tensors, so an improvement smaller than
            // float32 resolution counts as none: compare the (exact) mean rounded to Float.
            var best = Float.infinity
            for _ in 0..<settings.iterations {
                var total = 0.0
                for g in 0..<groups {
                    let x = UnsafeBufferPointer(rebasing: src[g * gs..<(g + 1) * gs])
                    let (z, err) = proximalStep(x, s: state.inverseScales[g], z: state.zeros[g], qmax: qmax, shrink: shrink)
                    state.zeros[g] = z
                    total += err
                }
                let err = w.count == 0 ? 0 : total / Double(w.count)
                state.errors.append(err)
                if Float(err) < best { best = Float(err) } else { state.stoppedEarly = true; break }
            }
            // Final codes with the kept zero points.
            codes.withUnsafeMutableBufferPointer { out in
                for g in 0..<groups {
                    let s = state.inverseScales[g], z = state.zeros[g]
                    for j in g * gs..<(g + 1) * gs {
                        out[j] = UInt8(Swift.min(Swift.max((src[j] * s + z).rounded(.toNearestOrEven), 0), qmax))
                    }
                }
            }
        }
        // The library stores the reciprocal of the inverse scale, computed in float32.
        let scales = state.inverseScales.map { 1 / $0 }
        return HQQResult(rows: rows, columns: cols, nbits: settings.nbits, groupSize: gs, codes: codes,
                         scales: scales, zeros: state.zeros, errorHistory: state.errors, stoppedEarly: state.stoppedEarly)
    }

    /// One `optimize_weights_proximal_legacy_step` on one group: quantize with `z`, return the
    /// updated zero point and the group's sum of `|W − W_r|` (measured with the incoming `z`).
    /// Elementwise arithmetic is float32 like the library; the two sums are Double so that the
    /// result does not depend on summation order (torch sums fp32 in vector lanes).
    @inline(__always)
    static func proximalStep(_ x: UnsafeBufferPointer<Float>, s: Float, z: Float, qmax: Float,
                             shrink: HQQShrink) -> (zero: Float, absError: Double) {
        var zSum = 0.0, errSum = 0.0
        for v in x {
            let q = Swift.min(Swift.max((v * s + z).rounded(.toNearestOrEven), 0), qmax)
            let d = v - (q - z) / s
            errSum += Double(abs(d))
            zSum += Double(q - (v - shrink(d)) * s)
        }
        return (Float(zSum / Double(x.count)), errSum)
    }
}

/// Per-group solver state and the loop's record, kept together so the loop allocates nothing.
struct HQQGroupState {
    var inverseScales: [Float]
    var zeros: [Float]
    var errors: [Double] = []
    var stoppedEarly = false

    init(groups: Int) {
        inverseScales = [Float](repeating: 1, count: groups)
        zeros = [Float](repeating: 0, count: groups)
    }
}

/// The library's `shrink_lp_op`: `sign(x)·relu(|x| − |x|^(p−1)/β)`, the proximal operator of
/// the l_p penalty that lets large (outlier) errors escape the zero-point fit.
///
/// Why a cutoff: `|x| − |x|^(p−1)/β ≤ 0` exactly when `|x| ≤ β^(−1/(2−p))` (≈ 0.17 for the
/// defaults), which is almost every weight error of an LLM, and the library clamps those to 0.
/// Below 0.999 of that bound the true value is negative by far more than float rounding, so
/// returning 0 there is bit-identical to evaluating `powf`, and much cheaper.
struct HQQShrink {
    let inverseBeta: Float
    let exponent: Float
    let cutoff: Float

    init(beta: Double, lpNorm: Double) {
        // The library forms 1/β and p − 1 in Python doubles; torch then uses them as float32.
        inverseBeta = Float(1 / beta)
        exponent = Float(lpNorm - 1)
        cutoff = Float(0.999 * Foundation.pow(1 / beta, 1 / (2 - lpNorm)))
    }

    @inline(__always)
    func callAsFunction(_ x: Float) -> Float {
        let a = abs(x)
        if a <= cutoff { return 0 }
        let v = Swift.max(a - inverseBeta * Foundation.pow(a, exponent), 0)
        return x < 0 ? -v : v
    }
}

/// Why HQQ rejected an input, in words that name the setting or the shape.
public enum HQQError: Error, CustomStringConvertible, Equatable {
    case invalidSettings(String)
    case shape(String)
    case nonFinite(String)

    public var description: String {
        switch self {
        case .invalidSettings(let s): return "HQQ: \(s)"
        case .shape(let s): return "HQQ: \(s)"
        case .nonFinite(let s): return "HQQ: the \(s); check the checkpoint"
        }
    }
}
