/// The per-block absmaxes of a 4-bit tensor, double-quantized as QLoRA's
/// `bnb_4bit_use_double_quant=True` stores them (FORMATS.md §6.4): 8 bits per 64-value block
/// instead of 32, i.e. 0.127 bits per weight instead of 0.5.
///
/// ```
/// offset = mean(absmax)                                  // one float32 per tensor
/// codes, secondLevelAbsmax = 8-bit blockwise(absmax − offset, dynamic map, blocks of 256)
/// absmax[i] ≈ map[codes[i]] · secondLevelAbsmax[i / 256] + offset
/// ```
/// The offset centres the (all positive) absmaxes so the signed dynamic map's resolution is
/// spent on their spread. bnb takes the mean with torch's float32 reduction, whose last bit
/// depends on the reduction order; here it is the float64 mean rounded once to float32, a fixed
/// definition the numpy reference (Tests/Reference/nf4_reference.py) repeats bit for bit.
public struct DoubleQuantizedAbsmax: Sendable, Equatable {
    /// bnb's `nested_blocksize`: absmaxes per second-level block.
    public static let defaultBlockSize = 256

    /// One dynamic-map index per first-level block (`absmax` in a bnb checkpoint, dtype U8).
    public var codes: [UInt8]
    /// One float32 per `blockSize` codes (`nested_absmax`).
    public var secondLevelAbsmax: [Float]
    /// The mean subtracted before quantizing (`nested_offset`).
    public var offset: Float
    /// Codes per second-level block (`nested_blocksize`, 256).
    public var blockSize: Int

    public init(codes: [UInt8], secondLevelAbsmax: [Float], offset: Float, blockSize: Int = defaultBlockSize) {
        self.codes = codes
        self.secondLevelAbsmax = secondLevelAbsmax
        self.offset = offset
        self.blockSize = blockSize
    }

    /// Compresses first-level absmaxes.
    public init(compressing absmax: [Float], blockSize: Int = defaultBlockSize) {
        var sum = 0.0
        for a in absmax { sum += Double(a) }
        let offset = absmax.isEmpty ? 0 : Float(sum / Double(absmax.count))
        let centred = absmax.map { $0 - offset }
        let (codes, second) = centred.withUnsafeBufferPointer {
            BlockwiseEightBit.quantize($0, code: DynamicQuantizationMap.signed8Bit, blockSize: blockSize)
        }
        self.init(codes: codes, secondLevelAbsmax: second, offset: offset, blockSize: blockSize)
    }

    /// The absmax of first-level block `index`: `map[code] · secondLevelAbsmax + offset`, two
    /// float32 roundings, as bnb's `dequantize_blockwise` followed by `absmax += offset`.
    @inline(__always)
    public func absmax(ofBlock index: Int) -> Float {
        DynamicQuantizationMap.signed8Bit[Int(codes[index])] * secondLevelAbsmax[index / blockSize] + offset
    }

    /// Every first-level absmax.
    public func decompressed() -> [Float] { codes.indices.map(absmax(ofBlock:)) }

    /// Bytes held: codes, second-level absmaxes and the offset.
    public var storageBytes: Int { codes.count + 4 * secondLevelAbsmax.count + 4 }
}
