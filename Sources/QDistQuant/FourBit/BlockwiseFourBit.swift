/// bitsandbytes' blockwise 4-bit quantization (`quantize_4bit` / `dequantize_4bit`,
/// FORMATS.md §6.3) on a flat run of float32 values.
///
/// The tensor is flattened row-major and cut into blocks of `blockSize` consecutive values
/// (default 64; the last block may be short). Each block stores its absmax in float32 and each
/// value the code nearest to `x · (1/absmax)` — the reciprocal is taken once per block and
/// multiplied, as the CUDA kernel does. Codes pack two to a byte, the first value of a pair in
/// the **high** nibble; an odd count pads the last low nibble with the code of 0.0 (the kernel
/// loads out-of-range elements as zero). Dequantization is `codeBook[code] · absmax` in float32.
///
/// One deliberate choice where bnb's backends disagree: an all-zero block stores the code of 0
/// (bnb's CPU/default backend, which clamps absmax to 1e-38 before the reciprocal). The CUDA
/// kernel computes 0·(1/0) = NaN there and stores code 0 (−1.0), which after double quantization
/// — the absmax comes back as a small nonzero number — would turn those zeros into −absmax.
///
/// The bulk encoder counts the thresholds below x with a branch-free binary search instead of
/// walking `FourBitQuantType.code(forScaled:)`'s tree: with ascending thresholds, "how many is x
/// above" is the same index (NaN is above none, so it still lands on code 0), and the loop has
/// no data-dependent branch to mispredict.
public enum BlockwiseFourBit {
    /// Block sizes bitsandbytes accepts (even, so a block never shares a byte with the next).
    public static let validBlockSizes: Set<Int> = [32, 64, 128, 256, 512, 1024, 2048, 4096]

    /// Codes and per-block absmax of `values`: `(count + 1) / 2` bytes and `ceil(count / blockSize)`
    /// floats. Block sizes outside `validBlockSizes` trap (a programming error).
    public static func quantize(_ values: UnsafeBufferPointer<Float>, type: FourBitQuantType,
                                blockSize: Int) -> (packed: [UInt8], absmax: [Float]) {
        precondition(validBlockSizes.contains(blockSize), "4-bit block size \(blockSize) is not one bitsandbytes allows")
        let n = values.count
        let blocks = (n + blockSize - 1) / blockSize
        var absmax = [Float](repeating: 0, count: blocks)
        var packed = [UInt8](repeating: 0, count: (n + 1) / 2)
        let thresholds = encodingThresholds(type)
        let order = codeOrder(type)
        packed.withUnsafeMutableBufferPointer { out in
            absmax.withUnsafeMutableBufferPointer { am in
                thresholds.withUnsafeBufferPointer { t in
                    order.withUnsafeBufferPointer { ord in
                        for b in 0..<blocks {
                            let start = b * blockSize, end = min(start + blockSize, n)
                            var m: Float = 0
                            for i in start..<end { m = max(m, abs(values[i])) }
                            am[b] = m
                            // An all-zero block stores the code of 0, so it dequantizes to 0 under any absmax.
                            let inverse: Float = m > 0 ? 1 / m : 0
                            var i = start
                            while i + 1 < end {
                                let hi = encode(values[i] * inverse, type: type, thresholds: t, order: ord)
                                let lo = encode(values[i + 1] * inverse, type: type, thresholds: t, order: ord)
                                out[i >> 1] = hi << 4 | lo
                                i += 2
                            }
                            if i < end {  // the tensor's odd last value; its partner is a zero pad
                                let hi = encode(values[i] * inverse, type: type, thresholds: t, order: ord)
                                let lo = encode(0 * inverse, type: type, thresholds: t, order: ord)
                                out[i >> 1] = hi << 4 | lo
                            }
                        }
                    }
                }
            }
        }
        return (packed, absmax)
    }

    /// Writes the dequantized values of flat elements `elements` into `output` (which holds
    /// `elements.count` floats), reading block absmaxes through `absmaxOfBlock`.
    @inline(__always)
    public static func dequantize(packed: UnsafeBufferPointer<UInt8>, absmaxOfBlock: (Int) -> Float,
                                  type: FourBitQuantType, blockSize: Int, elements: Range<Int>,
                                  into output: UnsafeMutablePointer<Float>) {
        type.codeBook.withUnsafeBufferPointer { code in
            var i = elements.lowerBound
            var o = output
            while i < elements.upperBound {
                let block = i / blockSize
                let end = min((block + 1) * blockSize, elements.upperBound)
                let a = absmaxOfBlock(block)
                if i & 1 == 1 {  // a range starting on a low nibble
                    o.pointee = code[Int(packed[i >> 1] & 0x0F)] * a
                    o += 1; i += 1
                }
                while i + 1 < end {
                    let byte = packed[i >> 1]
                    o[0] = code[Int(byte >> 4)] * a
                    o[1] = code[Int(byte & 0x0F)] * a
                    o += 2; i += 2
                }
                if i < end {  // a range (or the tensor) ending on a high nibble
                    o.pointee = code[Int(packed[i >> 1] >> 4)] * a
                    o += 1; i += 1
                }
            }
        }
    }

    /// The 15 (NF4) or 7 (FP4, on |x|) ascending thresholds of the CUDA decision tree, each list
    /// padded with one +inf for the branch-free search.
    static func encodingThresholds(_ type: FourBitQuantType) -> [Float] {
        switch type {
        case .nf4:
            return [0xBF59_1CD9, 0xBF1C_5270, 0xBEEB_8480, 0xBEAD_EA76, 0xBE70_3CEC, 0xBE0D_38BC, 0xBD3A_7871,
                    0x3D22_FAFF, 0x3DF6_4863, 0x3E50_67E0, 0x3E95_82D4, 0x3EC7_53F9, 0x3F00_6D03, 0x3F24_8DAF,
                    0x3F5C_89D9].map { Float(bitPattern: $0) } + [.infinity]
        case .fp4:
            return [0x3B2A_AAB9, 0x3DB0_0000, 0x3E55_5555, 0x3E95_5555, 0x3ED5_5556, 0x3F15_5550,
                    0x3F55_5555].map { Float(bitPattern: $0) } + [.infinity]
        }
    }

    /// Rank of the threshold count → stored code: identity for NF4 (its code book ascends);
    /// for FP4, the code of the k-th smallest magnitude (0, 1/192, 1/6, 1/4, 1/3, 1/2, 2/3, 1).
    static func codeOrder(_ type: FourBitQuantType) -> [UInt8] {
        switch type {
        case .nf4: return Array(0..<16)
        case .fp4: return [0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011]
        }
    }

    /// The threshold count as a branch-free binary search: four compares instead of fifteen
    /// (NF4), three instead of seven (FP4 magnitudes). `thresholds` is padded to 16 (NF4) or 8
    /// (FP4) entries with +inf, which no value exceeds.
    @inline(__always)
    static func encode(_ x: Float, type: FourBitQuantType, thresholds t: UnsafeBufferPointer<Float>,
                       order: UnsafeBufferPointer<UInt8>) -> UInt8 {
        switch type {
        case .nf4:
            var r = x > t[7] ? 8 : 0
            r += x > t[r + 3] ? 4 : 0
            r += x > t[r + 1] ? 2 : 0
            r += x > t[r] ? 1 : 0
            return UInt8(truncatingIfNeeded: r)
        case .fp4:
            let a = abs(x)
            var r = a > t[3] ? 4 : 0
            r += a > t[r + 1] ? 2 : 0
            r += a > t[r] ? 1 : 0
            return order[r] | (x < 0 ? 0b1000 : 0)
        }
    }
}
