/// The ternary formats TQ1_0 and TQ2_0 (ggml-quants.c `dequantize_row_tq1_0`/`tq2_0`;
/// FORMATS.md §2.3): 256 weights in {−1, 0, 1} times one fp16 scale per block, as BitNet
/// b1.58 models are stored.
extension GGMLDequantize {
    /// TQ1_0 (54 bytes): `u8 qs[48]; u8 qh[4]; half d`, five trits per byte (four in `qh`),
    /// stored as a fixed-point fraction of 243 so trit `n` is `((byte·3ⁿ mod 256)·3) >> 8`.
    /// Elements: `qs[0..<32]` hold `m + 32n`, `qs[32..<48]` hold `160 + m + 16n`, `qh` holds
    /// `240 + 4n + j`.
    static func tq1_0(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        @inline(__always) func trit(_ byte: UInt8, _ power: UInt8) -> Float {
            let shifted = byte &* power
            return Float(Int16((UInt16(shifted) * 3) >> 8) - 1)
        }
        for b in 0..<n {
            let block = src + b * 54
            let qs = block.assumingMemoryBound(to: UInt8.self)
            let qh = (block + 48).assumingMemoryBound(to: UInt8.self)
            let d = half(block, 52)
            var out = y + b * 256
            var power: UInt8 = 1  // 3ⁿ for trit n
            for _ in 0..<5 {
                for m in 0..<32 { out[m] = trit(qs[m], power) * d }
                out += 32
                power &*= 3
            }
            power = 1
            for _ in 0..<5 {
                for m in 0..<16 { out[m] = trit(qs[32 + m], power) * d }
                out += 16
                power &*= 3
            }
            power = 1
            for _ in 0..<4 {
                for j in 0..<4 { out[j] = trit(qh[j], power) * d }
                out += 4
                power &*= 3
            }
        }
    }

    /// TQ2_0 (66 bytes): `u8 qs[64]; half d`, four 2-bit codes per byte (0, 1, 2 → −1, 0, 1).
    /// Each 32 bytes hold 128 elements: bits `2l..2l+1` of byte `m` are element `32l + m`.
    static func tq2_0(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<n {
            let block = src + b * 66
            let qs = block.assumingMemoryBound(to: UInt8.self)
            let d = half(block, 64)
            var out = y + b * 256
            for j in stride(from: 0, to: 64, by: 32) {
                for l in 0..<4 {
                    let shift = UInt8(2 * l)
                    for m in 0..<32 { out[m] = Float(Int8(bitPattern: (qs[j + m] >> shift) & 3) - 1) * d }
                    out += 32
                }
            }
        }
    }
}
