/// Encoders of the ternary formats TQ1_0 and TQ2_0 (ggml-quants.c `quantize_row_tq1_0_ref`,
/// `quantize_row_tq2_0_ref`; FORMATS.md §2.3): every value becomes −1, 0 or 1 times the block's
/// absolute maximum, `t = lroundf(x/amax) + 1`. ggml has no imatrix variant; `quantize_tq*_0`
/// ignores the importance vector.
extension GGMLQuantize {
    /// Absolute maximum of one 256-value block, with ggml's `MAX(amax, fabsf(v))` order.
    @inline(__always)
    private static func absMax256(_ x: UnsafePointer<Float>) -> Float {
        var amax: Float = 0
        for j in 0..<256 { amax = amax > abs(x[j]) ? amax : abs(x[j]) }
        return amax
    }

    /// The trit (0, 1, 2 for −1, 0, 1) of `x`: C's `int xi = lroundf(x * id) + 1`.
    @inline(__always)
    private static func trit(_ x: Float, _ id: Float) -> Int32 {
        Int32(truncatingIfNeeded: GGMLRounding.lround(x * id) &+ 1)
    }

    /// Five (or four) trits as one base-3 number, first trit most significant, in `uint8_t`
    /// arithmetic as ggml accumulates them, then scaled to a byte: `ceil(q·256/243)`.
    @inline(__always)
    private static func packTrits(_ count: Int, _ element: (Int) -> Float, _ id: Float, shiftToFive: Bool) -> UInt8 {
        var q: UInt8 = 0
        for n in 0..<count {
            q = UInt8(truncatingIfNeeded: Int32(q) * 3)
            q = UInt8(truncatingIfNeeded: Int32(q) &+ trit(element(n), id))
        }
        if shiftToFive { q = UInt8(truncatingIfNeeded: Int32(q) * 3) }
        return UInt8(truncatingIfNeeded: (Int32(q) * 256 + 242) / 243)
    }

    /// TQ1_0 (54 bytes: `u8 qs[48]; u8 qh[4]; half d`): five trits per byte. Bytes 0-31 hold
    /// elements `m + 32n`, bytes 32-47 the next 80 as `160 + m + 16n`, and `qh` the last 16
    /// as `240 + j + 4n` with a sixth-trit shift.
    static func tq1_0(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        for i in 0..<n / 256 {
            let xs = x + 256 * i, block = y + 54 * i
            let d = absMax256(xs)
            let id: Float = d != 0 ? 1 / d : 0
            GGMLRounding.storeHalf(d, block, 52)
            for m in 0..<32 {
                let q = packTrits(5, { xs[m + $0 * 32] }, id, shiftToFive: false)
                block.storeBytes(of: q, toByteOffset: m, as: UInt8.self)
            }
            let tail = xs + 160
            for m in 0..<16 {
                let q = packTrits(5, { tail[m + $0 * 16] }, id, shiftToFive: false)
                block.storeBytes(of: q, toByteOffset: 32 + m, as: UInt8.self)
            }
            let last = xs + 240
            for j in 0..<4 {
                let q = packTrits(4, { last[j + $0 * 4] }, id, shiftToFive: true)
                block.storeBytes(of: q, toByteOffset: 48 + j, as: UInt8.self)
            }
        }
    }

    /// TQ2_0 (66 bytes: `u8 qs[64]; half d`): four 2-bit trits per byte; bits `2n…2n+1` of
    /// byte `m` in each 32-byte half hold element `m + 32n` of its 128.
    static func tq2_0(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        for i in 0..<n / 256 {
            let xs = x + 256 * i, block = y + 66 * i
            let d = absMax256(xs)
            let id: Float = d != 0 ? 1 / d : 0
            GGMLRounding.storeHalf(d, block, 64)
            for j in stride(from: 0, to: 64, by: 32) {
                let half = xs + 4 * j
                for m in 0..<32 {
                    var q: UInt8 = 0
                    for n in 0..<4 {
                        q = UInt8(truncatingIfNeeded: Int32(q) &+ ((trit(half[m + n * 32], id) & 3) << (2 * n)))
                    }
                    block.storeBytes(of: q, toByteOffset: j + m, as: UInt8.self)
                }
            }
        }
    }
}
