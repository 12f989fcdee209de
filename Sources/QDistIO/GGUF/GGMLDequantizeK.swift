/// The k-quants Q2_K, Q3_K, Q4_K, Q5_K and Q6_K: 256-element super-blocks with packed
/// per-sub-block scales (ggml-quants.c `dequantize_row_q2_K` … `dequantize_row_q6_K`;
/// FORMATS.md §2.3).
///
/// Each loop mirrors ggml's: the sub-block factors `dl = d·scale` and `ml = dmin·min` are
/// rounded to Float32 first, then `y = dl·q − ml`, so results match ggml and gguf-py bit for bit.
extension GGMLDequantize {
    /// Q2_K (84 bytes): `u8 scales[16]; u8 qs[64]; half d; half dmin`. 16 sub-blocks of 16;
    /// each scale byte holds a 4-bit scale (low) and 4-bit min (high).
    static func q2_K(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<n {
            let block = src + b * 84
            let scales = block.assumingMemoryBound(to: UInt8.self)
            let d = half(block, 80), dmin = half(block, 82)
            var out = y + b * 256
            var q = (block + 16).assumingMemoryBound(to: UInt8.self)
            var s = 0
            for _ in 0..<2 {  // two halves of 128
                var shift: UInt8 = 0
                for _ in 0..<4 {
                    for half in 0..<2 {  // elements l and l + 16 of the 32 sharing these bytes
                        let sc = scales[s]
                        s += 1
                        let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                        for l in 0..<16 { out[l] = dl * Float((q[l + 16 * half] >> shift) & 3) - ml }
                        out += 16
                    }
                    shift += 2
                }
                q += 32
            }
        }
    }

    /// Q3_K (110 bytes): `u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d`. 16 sub-blocks of 16
    /// with signed 6-bit scales; a clear `hmask` bit subtracts 4 from the 2-bit code.
    static func q3_K(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<n {
            let block = src + b * 110
            let hm = block.assumingMemoryBound(to: UInt8.self)
            let packed = (block + 96).assumingMemoryBound(to: UInt8.self)
            let d = half(block, 108)
            // Unpack the 16 scales: low 4 bits from bytes 0..7, high 2 bits from bytes 8..11.
            var scales = (Int8(0), Int8(0), Int8(0), Int8(0), Int8(0), Int8(0), Int8(0), Int8(0),
                          Int8(0), Int8(0), Int8(0), Int8(0), Int8(0), Int8(0), Int8(0), Int8(0))
            withUnsafeMutableBytes(of: &scales) { raw in
                for k in 0..<16 {
                    let low = k < 8 ? packed[k] & 0x0F : packed[k - 8] >> 4
                    let high = (packed[8 + k % 4] >> UInt8(2 * (k / 4))) & 3
                    raw[k] = UInt8(bitPattern: Int8(bitPattern: low | high << 4) &- 32)
                }
            }
            withUnsafeBytes(of: &scales) { raw in
                let sc = raw.bindMemory(to: Int8.self)
                var out = y + b * 256
                var q = (block + 32).assumingMemoryBound(to: UInt8.self)
                var s = 0
                var m: UInt8 = 1
                for _ in 0..<2 {
                    var shift: UInt8 = 0
                    for _ in 0..<4 {
                        for half in 0..<2 {
                            let dl = d * Float(sc[s])
                            s += 1
                            for l in 0..<16 {
                                let i = l + 16 * half
                                let code = Int8(bitPattern: (q[i] >> shift) & 3) - (hm[i] & m != 0 ? 0 : 4)
                                out[l] = dl * Float(code)
                            }
                            out += 16
                        }
                        shift += 2
                        m <<= 1
                    }
                    q += 32
                }
            }
        }
    }

    /// The 6-bit scale and min of sub-block `j` (0..<8) packed in Q4_K/Q5_K's 12 scale bytes
    /// (ggml `get_scale_min_k4`).
    @inline(__always)
    static func scaleMinK4(_ j: Int, _ s: UnsafePointer<UInt8>) -> (scale: Float, min: Float) {
        if j < 4 { return (Float(s[j] & 63), Float(s[j + 4] & 63)) }
        return (Float((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4)), Float((s[j + 4] >> 4) | ((s[j] >> 6) << 4)))
    }

    /// Q4_K (144 bytes): `half d; half dmin; u8 scales[12]; u8 qs[128]`. 8 sub-blocks of 32;
    /// each 32 bytes of `qs` hold two sub-blocks (low nibbles, then high nibbles).
    static func q4_K(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<n {
            let block = src + b * 144
            let d = half(block, 0), dmin = half(block, 2)
            let scales = (block + 4).assumingMemoryBound(to: UInt8.self)
            var q = (block + 16).assumingMemoryBound(to: UInt8.self)
            var out = y + b * 256
            for pair in 0..<4 {
                let (sc1, m1) = scaleMinK4(2 * pair, scales), (sc2, m2) = scaleMinK4(2 * pair + 1, scales)
                let d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2
                for l in 0..<32 { out[l] = d1 * Float(q[l] & 0x0F) - min1 }
                for l in 0..<32 { out[l + 32] = d2 * Float(q[l] >> 4) - min2 }
                out += 64
                q += 32
            }
        }
    }

    /// Q5_K (176 bytes): `half d; half dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]`. As Q4_K,
    /// plus a 5th bit: bit `e/32` of `qh[e % 32]`.
    static func q5_K(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<n {
            let block = src + b * 176
            let d = half(block, 0), dmin = half(block, 2)
            let scales = (block + 4).assumingMemoryBound(to: UInt8.self)
            let qh = (block + 16).assumingMemoryBound(to: UInt8.self)
            var ql = (block + 48).assumingMemoryBound(to: UInt8.self)
            var out = y + b * 256
            var u1: UInt8 = 1, u2: UInt8 = 2
            for pair in 0..<4 {
                let (sc1, m1) = scaleMinK4(2 * pair, scales), (sc2, m2) = scaleMinK4(2 * pair + 1, scales)
                let d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2
                for l in 0..<32 { out[l] = d1 * Float((ql[l] & 0x0F) + (qh[l] & u1 != 0 ? 16 : 0)) - min1 }
                for l in 0..<32 { out[l + 32] = d2 * Float((ql[l] >> 4) + (qh[l] & u2 != 0 ? 16 : 0)) - min2 }
                out += 64
                ql += 32
                u1 <<= 2
                u2 <<= 2
            }
        }
    }

    /// Q6_K (210 bytes): `u8 ql[128]; u8 qh[64]; i8 scales[16]; half d`. 16 sub-blocks of 16
    /// with signed 8-bit scales; 6-bit codes minus 32; y = (d·scale)·q.
    static func q6_K(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<n {
            let block = src + b * 210
            var ql = block.assumingMemoryBound(to: UInt8.self)
            var qh = (block + 128).assumingMemoryBound(to: UInt8.self)
            var sc = (block + 192).assumingMemoryBound(to: Int8.self)
            let d = half(block, 208)
            var out = y + b * 256
            for _ in 0..<2 {
                for l in 0..<32 {
                    let s = l / 16
                    let q1 = Int8(bitPattern: (ql[l] & 0x0F) | ((qh[l] & 3) << 4)) - 32
                    let q2 = Int8(bitPattern: (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32
                    let q3 = Int8(bitPattern: (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32
                    let q4 = Int8(bitPattern: (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32
                    out[l] = d * Float(sc[s]) * Float(q1)
                    out[l + 32] = d * Float(sc[s + 2]) * Float(q2)
                    out[l + 64] = d * Float(sc[s + 4]) * Float(q3)
                    out[l + 96] = d * Float(sc[s + 6]) * Float(q4)
                }
                out += 128
                ql += 64
                qh += 32
                sc += 8
            }
        }
    }
}
