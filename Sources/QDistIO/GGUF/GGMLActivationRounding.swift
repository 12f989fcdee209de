import QDistTensor

/// What llama.cpp's CPU matrix products do to a linear's input before they multiply it by a
/// weight of a given ggml type: the input is converted to that type's `vec_dot_type`
/// (`type_traits_cpu` in ggml-cpu.c) — Q8_0 blocks of 32 for Q4_0/Q5_0/Q8_0, Q8_1 for
/// Q4_1/Q5_1, Q8_K super-blocks of 256 for the k-quants and ternary types, F16 or BF16 for
/// half-precision weights, nothing for F32 — and the integer or half-precision dot products
/// then see only the rounded values. `round(_:)` gives those values in Float32, so a Float32
/// product with the dequantized weight reproduces llama.cpp's up to summation order.
///
/// The formulas are the x86 AVX2 kernels' (ggml-cpu/arch/x86/quants.c, llama.cpp as vendored by
/// llama-cpp-python 0.3.36), which the repacked GEMMs (`ggml_quantize_mat_q8_0_4x8`,
/// `…_q8_K_4x8`) share:
/// - Q8_0 / Q8_1: `amax` of the block; codes `round_even(x · (127/amax))`; values
///   `code · fp16(amax/127)`. (Q8_1 also stores `fp16(d · Σcodes)`, which Q4_1/Q5_1 products
///   multiply by the weight's minimum: that one extra rounding is not reproduced here.)
/// - Q8_K (`quantize_row_q8_K_ref`): `iscale = −127/max` with `max` the signed value of largest
///   magnitude, codes `nearest_int(iscale · x)` capped at 127, values `code · (1/iscale)`
///   (Float32 scale). The sign of `iscale` cancels, so the values are
///   `round_even(x · (127/amax)) · (1/(127/amax))`.
/// - F16 / BF16: each value rounded to nearest even.
/// A block of zeros stays zero. Values are expected finite (a NaN propagates).
public enum GGMLActivationRounding: String, Sendable, Equatable, CaseIterable {
    /// F32 weights: the input is used as it is.
    case none = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case q8_0 = "Q8_0"
    case q8_1 = "Q8_1"
    case q8_K = "Q8_K"

    /// The rounding llama.cpp's CPU backend applies to inputs multiplied by `weightType`.
    public init(weightType: GGMLType) {
        switch weightType {
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .q4_0, .q5_0, .q8_0, .iq4_NL: self = .q8_0
        case .q4_1, .q5_1: self = .q8_1
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .tq1_0, .tq2_0,
             .iq2_XXS, .iq2_XS, .iq3_XXS, .iq1_S, .iq3_S, .iq2_S, .iq4_XS, .iq1_M: self = .q8_K
        case .f32, .f64, .i8, .i16, .i32, .i64, .q8_1: self = .none
        }
    }

    /// Values per block: an input row must be a multiple of it (llama.cpp refuses other rows too).
    public var blockSize: Int {
        switch self {
        case .none, .f16, .bf16: return 1
        case .q8_0, .q8_1: return 32
        case .q8_K: return GGMLType.superBlockSize
        }
    }

    /// Rounds `row` in place (see the type's documentation); a trailing partial block — which
    /// llama.cpp never forms — is left as it is.
    public func round(_ row: UnsafeMutableBufferPointer<Float>) {
        switch self {
        case .none: return
        case .f16:
            for i in row.indices { row[i] = FloatBits.float(fromFP16: FloatBits.fp16(fromFloat: row[i])) }
        case .bf16:
            for i in row.indices { row[i] = FloatBits.float(fromBF16: FloatBits.bf16(fromFloat: row[i])) }
        case .q8_0, .q8_1, .q8_K:
            let n = blockSize, halfPrecisionScale = self != .q8_K
            for start in stride(from: 0, through: row.count - n, by: n) {
                Self.roundBlock(UnsafeMutableBufferPointer(rebasing: row[start..<(start + n)]), halfPrecisionScale: halfPrecisionScale)
            }
        }
    }

    /// One block to 8-bit codes and back: `halfPrecisionScale` stores the scale as fp16
    /// (Q8_0/Q8_1: `amax/127`) instead of Float32 (Q8_K: `1/(127/amax)`).
    @inline(__always)
    static func roundBlock(_ block: UnsafeMutableBufferPointer<Float>, halfPrecisionScale: Bool) {
        var amax: Float = 0
        for v in block { amax = Swift.max(amax, v.magnitude) }
        guard amax > 0 else {
            for i in block.indices { block[i] = 0 }
            return
        }
        let inverse = 127 / amax
        let scale = halfPrecisionScale ? FloatBits.float(fromFP16: FloatBits.fp16(fromFloat: amax / 127)) : 1 / inverse
        let magic: Float = 12_582_912  // 1.5 · 2²³: adding and subtracting it rounds |v| ≤ 2²² half to even
        for i in block.indices {
            let code = Swift.min((block[i] * inverse + magic) - magic, 127)
            block[i] = code * scale
        }
    }
}
