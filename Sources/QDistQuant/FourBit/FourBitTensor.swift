import QDistTensor

/// A float32 tensor stored the way bitsandbytes' `Linear4bit` stores a weight: packed 4-bit
/// codes (NF4 or FP4) with one absmax per block of 64 values, the absmaxes themselves either
/// float32 or double-quantized to 8 bits (QLoRA's default, `bnb_4bit_use_double_quant=True`).
///
/// This is how the frozen base of a QLoRA fine-tune is held: about 4.13 bits per weight
/// instead of 32. Nothing but `dequantized()` and `dequantizedRows(_:)` turns it back into
/// floats, so a caller can hold many of these and expand one at a time.
public struct FourBitTensor: Sendable, Equatable {
    /// How the per-block absmaxes are kept.
    public enum Absmax: Sendable, Equatable {
        /// One float32 per block (`compress_statistics=False`).
        case float32([Float])
        /// 8-bit codes + second-level absmax + offset (`compress_statistics=True`).
        case doubleQuantized(DoubleQuantizedAbsmax)

        /// First-level blocks described.
        public var blockCount: Int {
            switch self {
            case .float32(let a): return a.count
            case .doubleQuantized(let d): return d.codes.count
            }
        }

        /// Bytes held.
        public var storageBytes: Int {
            switch self {
            case .float32(let a): return 4 * a.count
            case .doubleQuantized(let d): return d.storageBytes
            }
        }
    }

    /// bnb's default `blocksize` for 4-bit weights.
    public static let defaultBlockSize = 64

    /// Shape of the original tensor, e.g. (out, in) for a linear weight.
    public let shape: [Int]
    public let quantType: FourBitQuantType
    /// Values per first-level block.
    public let blockSize: Int
    /// `(count + 1) / 2` bytes, first value of each pair in the high nibble.
    public let packed: [UInt8]
    public let absmax: Absmax

    /// Element count (the product of `shape`).
    public var count: Int { shape.reduce(1, *) }

    /// Assembles a tensor from its parts, checking that their sizes agree (what a decoded
    /// payload or a checkpoint reader needs); a mismatch is a one-line error naming `subject`.
    public init(shape: [Int], quantType: FourBitQuantType, blockSize: Int, packed: [UInt8], absmax: Absmax,
                subject: String = "4-bit tensor") throws(QuantizedFormatError) {
        let n = shape.reduce(1, *)
        guard shape.allSatisfy({ $0 >= 0 }) else { throw QuantizedFormatError(subject, "negative dimension in shape \(shape)") }
        guard BlockwiseFourBit.validBlockSizes.contains(blockSize) else {
            throw QuantizedFormatError(subject, "block size \(blockSize) is not one bitsandbytes allows (32…4096, powers of two)")
        }
        guard packed.count == (n + 1) / 2 else {
            throw QuantizedFormatError(subject, "\(packed.count) packed bytes for \(n) values (need \((n + 1) / 2))")
        }
        let blocks = (n + blockSize - 1) / blockSize
        guard absmax.blockCount == blocks else {
            throw QuantizedFormatError(subject, "\(absmax.blockCount) absmax values for \(blocks) blocks of \(blockSize)")
        }
        if case .doubleQuantized(let d) = absmax {
            let second = (blocks + d.blockSize - 1) / max(d.blockSize, 1)
            guard d.blockSize > 0, d.secondLevelAbsmax.count == second else {
                throw QuantizedFormatError(subject, "\(d.secondLevelAbsmax.count) second-level absmax values for \(blocks) blocks in groups of \(d.blockSize)")
            }
        }
        self.shape = shape
        self.quantType = quantType
        self.blockSize = blockSize
        self.packed = packed
        self.absmax = absmax
    }

    /// Quantizes `tensor` as `bitsandbytes.functional.quantize_4bit(tensor, blocksize:,
    /// quant_type:, compress_statistics: doubleQuantize)` does.
    public init(quantizing tensor: Tensor, type: FourBitQuantType = .nf4, blockSize: Int = defaultBlockSize,
                doubleQuantize: Bool = true) {
        let (packed, absmax) = tensor.scalars.withUnsafeBufferPointer {
            BlockwiseFourBit.quantize($0, type: type, blockSize: blockSize)
        }
        self.shape = tensor.shape
        self.quantType = type
        self.blockSize = blockSize
        self.packed = packed
        self.absmax = doubleQuantize ? .doubleQuantized(DoubleQuantizedAbsmax(compressing: absmax)) : .float32(absmax)
    }

    /// The absmax of every first-level block, as dequantization uses them.
    public func blockAbsmax() -> [Float] {
        switch absmax {
        case .float32(let a): return a
        case .doubleQuantized(let d): return d.decompressed()
        }
    }

    /// The whole tensor back in float32 (`dequantize_4bit`), with the original shape.
    public func dequantized() -> Tensor { Tensor(shape: shape, scalars: dequantizedElements(0..<count)) }

    /// Rows `rows` of the tensor (outermost dimension) in float32, without expanding the rest:
    /// what a row-sharded or streaming consumer needs. Ranges may start or end mid-block and,
    /// for odd row lengths, mid-byte.
    public func dequantizedRows(_ rows: Range<Int>) -> Tensor {
        precondition(!shape.isEmpty && rows.lowerBound >= 0 && rows.upperBound <= shape[0],
                     "rows \(rows) out of bounds for shape \(shape)")
        let inner = shape[0] == 0 ? 0 : count / shape[0]
        var newShape = shape
        newShape[0] = rows.count
        return Tensor(shape: newShape, scalars: dequantizedElements(rows.lowerBound * inner..<rows.upperBound * inner))
    }

    /// Flat elements `elements` in float32.
    public func dequantizedElements(_ elements: Range<Int>) -> [Float] {
        precondition(elements.lowerBound >= 0 && elements.upperBound <= count, "elements \(elements) out of 0..<\(count)")
        var out = [Float](repeating: 0, count: elements.count)
        guard !elements.isEmpty else { return out }
        // Expand only the absmaxes of the blocks the range touches.
        let firstBlock = elements.lowerBound / blockSize, lastBlock = (elements.upperBound - 1) / blockSize
        let scales: [Float]
        switch absmax {
        case .float32(let a): scales = Array(a[firstBlock...lastBlock])
        case .doubleQuantized(let d): scales = (firstBlock...lastBlock).map(d.absmax(ofBlock:))
        }
        packed.withUnsafeBufferPointer { p in
            scales.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { o in
                    BlockwiseFourBit.dequantize(packed: p, absmaxOfBlock: { s[$0 - firstBlock] }, type: quantType,
                                                blockSize: blockSize, elements: elements, into: o.baseAddress!)
                }
            }
        }
        return out
    }

    /// Bytes held: packed codes plus absmax storage (what a checkpoint or an all-gather moves).
    public var storageBytes: Int { packed.count + absmax.storageBytes }

    /// Average bits per value, overhead included (4.5 with float32 absmax, ≈4.127 double-quantized
    /// at block size 64).
    public var bitsPerParameter: Double { count == 0 ? 0 : Double(8 * storageBytes) / Double(count) }
}
