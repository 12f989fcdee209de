import QDistTensor
import QDistIO

/// Fake quantization of a linear layer's input (W8A8 activations): each value is quantized to a
/// signed integer grid and immediately dequantized, `x̂ = (round(clamp(x/scale + zero)) − zero)·scale`
/// with rounding half to even, so the Float32 forward sees exactly the values an int8 kernel
/// would multiply.
///
/// The grid is compressed-tensors' (FORMATS.md §5.2, the same formulas as QDistQuant's
/// `QuantizationGrid`, restated here because the decoder does not depend on the quantizers):
/// codes `−2^(b−1) … 2^(b−1)−1`; symmetric `scale = max(|min|, |max|)/((qmax − qmin)/2)` (int8:
/// ÷127.5), asymmetric `scale = (max − min)/(qmax − qmin)`, `zero = round(clamp(qmin − min/scale))`;
/// the range always includes 0 and `scale ≥ Float32 eps`.
///
/// FP8 (`float8`): the grid is E4M3FN, symmetric, `scale = absmax / 448`, and a value becomes
/// `e4m3(clamp(x/scale, ±448))·scale` (compressed-tensors' float quantization: divide, clamp,
/// cast to `float8_e4m3fn`, multiply back).
///
/// Static quantizers carry a calibrated scale (and zero point); dynamic ones derive the range of
/// each token (row) or of the whole input at run time and store nothing. Failure mode: a NaN
/// input stays NaN (and is skipped by the dynamic range); an infinity gives an infinite dynamic
/// scale, so its whole row turns NaN — activations are expected finite.
public struct InputQuantizer: Sendable, Equatable {
    /// Where the scale comes from.
    public enum Mode: Sendable, Equatable {
        /// A calibrated per-tensor scale and (integer-valued) zero point.
        case staticTensor(scale: Float, zeroPoint: Float)
        /// Min/max of each token (row of the input) at run time.
        case dynamicToken
        /// Min/max of the whole input at run time.
        case dynamicTensor
        /// LLM.int8()'s decomposition (bitsandbytes 0.50 `int8_vectorwise_quant` +
        /// `int8_mixed_scaled_mm`): input columns holding any |x| ≥ `threshold` (after the cast
        /// to fp16) stay exact; the rest are int8 per token, `round(x₁₆ · 127/s)` with `s` the
        /// row's largest |x₁₆| below the threshold, dequantized with bitsandbytes' constant
        /// (`code · s · 127 · 6.200124e-05`, its 1/127² being 1.8e-5 high), so that times the
        /// weight `CB·SCB/127` is bitsandbytes' `i32 · s · SCB · 6.200124e-05`. A threshold of 0
        /// turns the decomposition off (pure vector-wise int8), as in bitsandbytes.
        case llmInt8(threshold: Float)
        /// llama.cpp's CPU kernels: each row converted to the weight type's `vec_dot_type`
        /// (Q8_0, Q8_1, Q8_K blocks or F16/BF16) and back (`GGMLActivationRounding`), so a
        /// dequantized GGUF weight times this input is what llama.cpp multiplies.
        case ggml(GGMLActivationRounding)
    }

    public let numBits: Int
    public let symmetric: Bool
    public let mode: Mode
    /// FP8 E4M3 codes instead of integers.
    public let float8: Bool
    /// The smallest and largest code (int8: −128 and 127).
    public let codeMin: Float
    public let codeMax: Float
    /// LLM.int8 only: where each call's outlier-column count goes (`qdist eval`'s report);
    /// not part of the quantizer's identity (`==` ignores it).
    public var outlierTally: OutlierColumnTally?

    public static func == (a: InputQuantizer, b: InputQuantizer) -> Bool {
        a.numBits == b.numBits && a.symmetric == b.symmetric && a.mode == b.mode && a.float8 == b.float8
    }

    public init(numBits: Int = 8, symmetric: Bool, mode: Mode, float8: Bool = false) {
        precondition((2...16).contains(numBits), "input quantization takes 2 to 16 bits, got \(numBits)")
        self.numBits = numBits
        self.symmetric = symmetric || float8
        self.mode = mode
        self.float8 = float8
        codeMin = float8 ? -448 : -Float(1 << (numBits - 1))
        codeMax = float8 ? 448 : Float(1 << (numBits - 1)) - 1
    }

    /// compressed-tensors `calculate_qparams` for the range `[lo, hi]`.
    @inlinable
    public func parameters(min lo: Float, max hi: Float) -> (scale: Float, zeroPoint: Float) {
        let lo = Swift.min(lo, 0), hi = Swift.max(hi, 0)
        let span = codeMax - codeMin
        if symmetric { return (Swift.max(Swift.max(-lo, hi) / (span / 2), Float.ulpOfOne), 0) }
        let scale = Swift.max((hi - lo) / span, Float.ulpOfOne)
        return (scale, Swift.min(Swift.max(codeMin - lo / scale, codeMin), codeMax).rounded(.toNearestOrEven))
    }

    /// `x` (tokens, features) with every value quantized and dequantized.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var out = x
        let columns = x.columns, rows = x.count / max(columns, 1)
        if case .llmInt8(let threshold) = mode {
            let outliers = out.withUnsafeMutableBufferPointer { Self.decompose($0, rows: rows, columns: columns, threshold: threshold) }
            outlierTally?.record(outliers: outliers, columns: columns)
            return out
        }
        out.withUnsafeMutableBufferPointer { v in
            switch mode {
            case .llmInt8: break
            case .ggml(let rounding):
                for r in 0..<rows { rounding.round(UnsafeMutableBufferPointer(rebasing: v[(r * columns)..<((r + 1) * columns)])) }
            case .staticTensor(let scale, let zero):
                fakeQuantize(v, scale: scale, zeroPoint: zero)
            case .dynamicTensor:
                let (scale, zero) = parameters(range(UnsafeMutableBufferPointer(rebasing: v[...])))
                fakeQuantize(v, scale: scale, zeroPoint: zero)
            case .dynamicToken:
                for r in 0..<rows {
                    let row = UnsafeMutableBufferPointer(rebasing: v[(r * columns)..<((r + 1) * columns)])
                    let (scale, zero) = parameters(range(row))
                    fakeQuantize(row, scale: scale, zeroPoint: zero)
                }
            }
        }
        return out
    }

    /// bitsandbytes' dequantization factor of the int8 path (≈ 1/127², as its kernel writes it).
    public static let llmInt8Dequantization: Float = 6.200124e-05

    /// In place: LLM.int8's input side (see `Mode.llmInt8`); returns how many columns stayed
    /// in float.
    @discardableResult
    static func decompose(_ v: UnsafeMutableBufferPointer<Float>, rows: Int, columns: Int, threshold: Float) -> Int {
        let limit = threshold > 0 ? threshold : .infinity
        var outlier = [Bool](repeating: false, count: columns)
        for i in 0..<(rows * columns) where FloatBits.float(fromFP16: FloatBits.fp16(fromFloat: v[i])).magnitude >= limit {
            outlier[i % columns] = true
        }
        let magic: Float = 12_582_912  // 1.5 · 2²³: round half to even for |c| ≤ 127
        let back = 127 * llmInt8Dequantization
        var half = [Float](repeating: 0, count: columns)
        for r in 0..<rows {
            // The row statistic counts every element below the threshold, outlier columns too.
            var s: Float = 0
            for c in 0..<columns {
                half[c] = FloatBits.float(fromFP16: FloatBits.fp16(fromFloat: v[r * columns + c]))
                if half[c].magnitude < limit { s = Swift.max(s, half[c].magnitude) }
            }
            let scale = s > 0 ? 127 / s : 0
            for c in 0..<columns where !outlier[c] {
                let code = (half[c] * scale + magic) - magic
                v[r * columns + c] = code * s * back
            }
        }
        return outlier.reduce(0) { $0 + ($1 ? 1 : 0) }
    }

    private func parameters(_ r: (min: Float, max: Float)) -> (scale: Float, zeroPoint: Float) {
        parameters(min: r.min, max: r.max)
    }

    private func range(_ v: UnsafeMutableBufferPointer<Float>) -> (min: Float, max: Float) {
        var lo: Float = 0, hi: Float = 0
        for x in v {
            lo = Swift.min(lo, x)
            hi = Swift.max(hi, x)
        }
        return (lo, hi)
    }

    /// In place: `(round(clamp(x/scale + zero)) − zero)·scale`. Division (not multiplication
    /// by 1/scale) as torch does, so codes match a PyTorch reference bit for bit.
    ///
    /// Rounding adds and subtracts 1.5·2²³: exact round-half-to-even for |c| < 2²², which the
    /// clamped codes (at most 16 bits) always are. `.rounded(.toNearestOrEven)` is the same
    /// value but compiles to a `rintf` call per element on the baseline x86-64 target, which
    /// kept this loop (run on every W8A8 linear input) from vectorizing.
    private func fakeQuantize(_ v: UnsafeMutableBufferPointer<Float>, scale: Float, zeroPoint zero: Float) {
        let lo = codeMin, hi = codeMax
        if float8 {
            for i in v.indices {
                v[i] = FloatBits.roundedToFP8E4M3(Swift.min(Swift.max(v[i] / scale, lo), hi)) * scale
            }
            return
        }
        let magic: Float = 12_582_912  // 1.5 · 2²³
        for i in v.indices {
            let c = Swift.min(Swift.max(v[i] / scale + zero, lo), hi)
            let q = (c + magic) - magic
            v[i] = (q - zero) * scale
        }
    }
}
