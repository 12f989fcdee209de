/// The 32-element block formats Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (ggml-quants.c
/// `dequantize_row_q4_0` … `dequantize_row_q8_0`; FORMATS.md §2.3).
///
/// In every 4- and 5-bit block, element `j` (0..<16) is the low nibble of `qs[j]` and element
/// `j + 16` its high nibble; the 5th bit of element `e` is bit `e` of the little-endian `u32`
/// `qh`. Symmetric types compute `(q − offset) · d`, affine ones `q · d + m`, in Float32.
extension GGMLDequantize {
    /// Q4_0 (18 bytes): `half d; u8 qs[16]`; y = (q − 8)·d.
    static func q4_0(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<n {
            let block = src + b * 18
            let d = half(block, 0)
            let qs = (block + 2).assumingMemoryBound(to: UInt8.self)
            let out = y + b * 32
            for j in 0..<16 {
                out[j] = Float(Int32(qs[j] & 0x0F) - 8) * d
                out[j + 16] = Float(Int32(qs[j] >> 4) - 8) * d
            }
        }
    }

    /// Q4_1 (20 bytes): `half d; half m; u8 qs[16]`; y = q·d + m.
    static func q4_1(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<n {
            let block = src + b * 20
            let d = half(block, 0), m = half(block, 2)
            let qs = (block + 4).assumingMemoryBound(to: UInt8.self)
            let out = y + b * 32
            for j in 0..<16 {
                out[j] = Float(qs[j] & 0x0F) * d + m
                out[j + 16] = Float(qs[j] >> 4) * d + m
            }
        }
    }

    /// Q5_0 (22 bytes): `half d; u8 qh[4]; u8 qs[16]`; y = (q − 16)·d.
    static func q5_0(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<n {
            let block = src + b * 22
            let d = half(block, 0)
            let qh = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
            let qs = (block + 6).assumingMemoryBound(to: UInt8.self)
            let out = y + b * 32
            for j in 0..<16 {
                let h0 = UInt8(truncatingIfNeeded: ((qh >> UInt32(j)) << 4) & 0x10)
                let h1 = UInt8(truncatingIfNeeded: (qh >> UInt32(j + 12)) & 0x10)
                out[j] = Float(Int32((qs[j] & 0x0F) | h0) - 16) * d
                out[j + 16] = Float(Int32((qs[j] >> 4) | h1) - 16) * d
            }
        }
    }

    /// Q5_1 (24 bytes): `half d; half m; u8 qh[4]; u8 qs[16]`; y = q·d + m.
    static func q5_1(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<n {
            let block = src + b * 24
            let d = half(block, 0), m = half(block, 2)
            let qh = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            let qs = (block + 8).assumingMemoryBound(to: UInt8.self)
            let out = y + b * 32
            for j in 0..<16 {
                let h0 = UInt8(truncatingIfNeeded: ((qh >> UInt32(j)) << 4) & 0x10)
                let h1 = UInt8(truncatingIfNeeded: (qh >> UInt32(j + 12)) & 0x10)
                out[j] = Float((qs[j] & 0x0F) | h0) * d + m
                out[j + 16] = Float((qs[j] >> 4) | h1) * d + m
            }
        }
    }

    /// Q8_0 (34 bytes): `half d; i8 qs[32]`; y = q·d.
    static func q8_0(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<n {
            let block = src + b * 34
            let d = half(block, 0)
            let qs = (block + 2).assumingMemoryBound(to: Int8.self)
            let out = y + b * 32
            for j in 0..<32 { out[j] = Float(qs[j]) * d }
        }
    }
}
