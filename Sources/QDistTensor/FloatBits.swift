/// Bit-exact conversions between Float32 and the narrow float formats that model files store:
/// IEEE binary16 (fp16), bfloat16, and the OCP fp8 formats E4M3FN and E5M2.
///
/// Narrowing rounds to nearest, ties to even, exactly as a float64 reference would; NaN stays NaN
/// (quiet), infinities stay infinities where the format has them. The fp8 encoders saturate:
/// a finite value (or an infinity) beyond the largest finite code becomes ±max — which is what
/// quantizers want, because an overflowing scale must clip, never turn into NaN.
public enum FloatBits {
    // MARK: fp16 (1 sign, 5 exponent bits with bias 15, 10 mantissa bits)

    /// fp16 bits → Float32; exact for every pattern (fp16 ⊂ fp32).
    @inlinable
    public static func float(fromFP16 h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int((h >> 10) & 0x1F)
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0x1F {  // Inf or NaN: keep the payload, set quiet bit for NaN.
            let payload: UInt32 = mantissa == 0 ? 0 : (mantissa << 13) | 0x0040_0000
            return Float(bitPattern: sign | 0x7F80_0000 | payload)
        }
        if exponent == 0 {
            // Zero or subnormal: value = mantissa × 2^-24, exact in fp32.
            let magnitude = Float(mantissa) * 0x1p-24
            return Float(bitPattern: sign | magnitude.bitPattern)
        }
        return Float(bitPattern: sign | UInt32(exponent + 112) << 23 | mantissa << 13)
    }

    /// Float32 → fp16 bits, round to nearest even; overflow → ±Inf; NaN → quiet NaN.
    @inlinable
    public static func fp16(fromFloat x: Float) -> UInt16 {
        let bits = x.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        let exponent = Int((bits >> 23) & 0xFF)
        let mantissa = bits & 0x7F_FFFF
        if exponent == 0xFF {
            if mantissa == 0 { return sign | 0x7C00 }
            return sign | 0x7E00 | UInt16(truncatingIfNeeded: mantissa >> 13)
        }
        let unbiased = exponent - 127
        if unbiased > 15 { return sign | 0x7C00 }
        if unbiased >= -14 {
            // Normal fp16: drop 13 mantissa bits with round-to-nearest-even; a carry may ripple
            // into the exponent (and up to Inf), which is the correct result.
            let half = UInt32(unbiased + 15) << 10 | (mantissa >> 13)
            let rest = mantissa & 0x1FFF
            let roundUp = rest > 0x1000 || (rest == 0x1000 && (half & 1) == 1)
            return sign | UInt16(truncatingIfNeeded: half + (roundUp ? 1 : 0))
        }
        // Subnormal fp16 (or zero): value / 2^-24 rounded to an integer 0...1024.
        let shift = -unbiased - 14 + 13  // bits of the 24-bit significand that fall off
        if shift > 24 { return sign }  // below half the smallest subnormal → ±0
        let significand = exponent == 0 ? mantissa : (mantissa | 0x80_0000)
        let kept = significand >> UInt32(shift)
        let rest = significand & ((1 << UInt32(shift)) - 1)
        let halfway = UInt32(1) << UInt32(shift - 1)
        let roundUp = rest > halfway || (rest == halfway && (kept & 1) == 1)
        return sign | UInt16(truncatingIfNeeded: kept + (roundUp ? 1 : 0))
    }

    // MARK: bf16 (the upper half of an fp32)

    /// bf16 bits → Float32; exact.
    @inlinable
    public static func float(fromBF16 b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }

    /// Float32 → bf16 bits, round to nearest even (ggml's reference); NaN → quiet NaN.
    @inlinable
    public static func bf16(fromFloat x: Float) -> UInt16 {
        let u = x.bitPattern
        if (u & 0x7FFF_FFFF) > 0x7F80_0000 { return UInt16(truncatingIfNeeded: (u >> 16) | 0x40) }
        return UInt16(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
    }

    // MARK: fp8

    /// fp8 E4M3FN bits → Float32 (bias 7, no infinities, S.1111.111 is NaN, max 448).
    @inlinable
    public static func float(fromFP8E4M3 v: UInt8) -> Float {
        let negative = v & 0x80 != 0
        let exponent = Int((v >> 3) & 0xF)
        let mantissa = Float(v & 0x7)
        if exponent == 0xF && (v & 0x7) == 0x7 { return negative ? -Float.nan : .nan }
        let magnitude = exponent == 0
            ? mantissa * 0x1p-9
            : (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
        return negative ? -magnitude : magnitude
    }

    /// Float32 → fp8 E4M3FN bits, round to nearest even, saturating to ±448; NaN → 0x7F/0xFF.
    @inlinable
    public static func fp8E4M3(fromFloat x: Float) -> UInt8 {
        narrowToFP8(x, exponentBits: 4, mantissaBits: 3, maxCode: 0x7E, nanCode: 0x7F)
    }

    /// `x` rounded onto the E4M3FN grid (nearest, ties to even), as a Float32: the same value as
    /// `float(fromFP8E4M3: fp8E4M3(fromFloat: x))` for every finite |x| ≤ 448 (callers clamp
    /// first, as quantizers do), without the bit assembly — a few vectorizable operations per
    /// value, for activation fake-quantization on every linear input.
    @inlinable
    public static func roundedToFP8E4M3(_ x: Float) -> Float {
        if x.magnitude < 0x1p-6 {
            // Subnormal range: a fixed step of 2⁻⁹; x·512 is exact, and 1.5·2²³ rounds half to even.
            let magic: Float = 12_582_912
            return ((x * 512 + magic) - magic) * 0x1p-9
        }
        // Normal range: keep 3 mantissa bits, rounding the 20 dropped ones half to even (a carry
        // into the exponent is the right result).
        let b = x.bitPattern
        return Float(bitPattern: (b &+ 0x7FFFF &+ ((b >> 20) & 1)) & 0xFFF0_0000)
    }

    /// fp8 E5M2 bits → Float32 (bias 15, IEEE-like: has ±Inf and NaNs, max 57344).
    @inlinable
    public static func float(fromFP8E5M2 v: UInt8) -> Float {
        float(fromFP16: UInt16(v) << 8)
    }

    /// Float32 → fp8 E5M2 bits, round to nearest even, saturating to ±57344 (±Inf included);
    /// NaN → S.11111.11 (torch's pattern).
    @inlinable
    public static func fp8E5M2(fromFloat x: Float) -> UInt8 {
        narrowToFP8(x, exponentBits: 5, mantissaBits: 2, maxCode: 0x7B, nanCode: 0x7F)
    }

    /// Shared fp8 narrowing: rounds |x| onto the format's grid, ties to even, then saturates.
    @usableFromInline
    static func narrowToFP8(
        _ x: Float, exponentBits: Int, mantissaBits: Int, maxCode: UInt8, nanCode: UInt8
    ) -> UInt8 {
        let sign: UInt8 = x.sign == .minus ? 0x80 : 0
        if x.isNaN { return sign | nanCode }
        let bias = (1 << (exponentBits - 1)) - 1
        let magnitude = x.magnitude
        let minNormalExponent = 1 - bias
        // Grid spacing at |x|: 2^(e - mantissaBits), with e clamped to the subnormal range.
        let e = magnitude == 0 ? minNormalExponent : max(Int(magnitude.exponent), minNormalExponent)
        if magnitude.isInfinite || e > 2 * bias + 1 { return sign | maxCode }
        let step = Float(sign: .plus, exponent: e - mantissaBits, significand: 1)
        let units = (magnitude / step).rounded(.toNearestOrEven)  // exact: a power-of-two divide
        var code: Int
        if e == minNormalExponent && units < Float(1 << mantissaBits) {
            code = Int(units)  // subnormal (or zero, or rounds up to the first normal)
        } else {
            // units in [2^m, 2^(m+1)]; 2^(m+1) means the rounding carried into the exponent.
            code = (e + bias) << mantissaBits + Int(units) - (1 << mantissaBits)
        }
        if code > Int(maxCode) { code = Int(maxCode) }
        return sign | UInt8(code)
    }
}
