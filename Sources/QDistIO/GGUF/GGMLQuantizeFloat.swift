import QDistTensor

/// The C arithmetic that ggml's quantizers lean on, reproduced bit for bit, plus the encoders of
/// the plain float types F32, F16 and BF16.
///
/// ggml-quants.c is compiled for x86-64 without fast-math, so every float operation there is
/// an IEEE Float32 operation in source order; Swift does the same (it never contracts `a*b + c`
/// into a fused multiply-add). What differs between the languages is everything around the
/// floats: C's float→integer casts and its narrowing integer stores (and `nearest_int`'s bit
/// trick, which sits in GGMLQuantizeSearch.swift next to the loops that call it most). Those
/// live here, spelled out, so the encoders read like the C they port and never trap on
/// inputs C accepts (NaN, infinities, values far outside a code range).
enum GGMLRounding {
    /// C's `(int)x` for a float on x86-64 (`cvttss2si`/`cvttps2dq`): truncation toward zero,
    /// and the "integer indefinite" value Int32.min for NaN or anything outside the Int32
    /// range. ggml's `(int8_t)(x + 8.5f)` and `(uint8_t)(x + 0.5f)` are this, then the low byte.
    @inline(__always)
    static func truncated(_ x: Float) -> Int32 {
        // -2147483904 is the float just below −2³¹; NaN fails both comparisons.
        guard x > -2147483904, x < 2147483648 else { return Int32.min }
        return Int32(x)
    }

    /// The low byte of C's `(int8_t)x` / `(uint8_t)x` for a float `x` (see `truncated`).
    @inline(__always)
    static func truncatedByte(_ x: Float) -> UInt8 {
        UInt8(truncatingIfNeeded: truncated(x))
    }

    /// C's `lroundf` as glibc computes it on x86-64: half away from zero, Int64.min for NaN
    /// and values outside the Int64 range.
    @inline(__always)
    static func lround(_ x: Float) -> Int64 {
        let r = x.rounded(.toNearestOrAwayFromZero)
        guard r >= -0x1p63, r < 0x1p63 else { return Int64.min }
        return Int64(r)
    }

    /// ggml `GGML_FP32_TO_FP16` as built here (the portable `ggml_compute_fp32_to_fp16`, no
    /// F16C): round to nearest even, overflow to ±inf, every NaN to the canonical `sign|0x7E00`.
    /// Spelled out rather than `Float16(x)` so NaN payloads come out as ggml writes them.
    @inline(__always)
    static func fp16(_ f: Float) -> UInt16 {
        let scaleToInf: Float = 0x1.0p+112, scaleToZero: Float = 0x1.0p-110
        var base = (abs(f) * scaleToInf) * scaleToZero
        let w = f.bitPattern
        let shl1 = w &+ w
        let sign = w & 0x8000_0000
        var bias = shl1 & 0xFF00_0000
        if bias < 0x7100_0000 { bias = 0x7100_0000 }
        base = Float(bitPattern: (bias >> 1) &+ 0x0780_0000) + base
        let bits = base.bitPattern
        let nonsign = ((bits >> 13) & 0x7C00) &+ (bits & 0x0FFF)
        return UInt16(truncatingIfNeeded: (sign >> 16) | (shl1 > 0xFF00_0000 ? 0x7E00 : nonsign))
    }

    /// Stores `GGML_FP32_TO_FP16(value)` little-endian at `offset` (unaligned is fine).
    @inline(__always)
    static func storeHalf(_ value: Float, _ block: UnsafeMutableRawPointer, _ offset: Int) {
        block.storeBytes(of: fp16(value).littleEndian, toByteOffset: offset, as: UInt16.self)
    }
}

extension GGMLQuantize {
    /// F32 (`ggml_quantize_chunk`'s memcpy): the bytes of the row, NaN payloads included.
    static func f32(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        y.copyMemory(from: x, byteCount: 4 * n)
    }

    /// F16 (`ggml_fp32_to_fp16_row`): `GGML_FP32_TO_FP16` per value.
    static func f16(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        for i in 0..<n { GGMLRounding.storeHalf(x[i], y, 2 * i) }
    }

    /// BF16 (`ggml_fp32_to_bf16_row_ref`): round to nearest even, NaN forced quiet
    /// (FORMATS.md §2.2) — `FloatBits.bf16` is that same function.
    static func bf16(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        for i in 0..<n { y.storeBytes(of: FloatBits.bf16(fromFloat: x[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
    }
}
