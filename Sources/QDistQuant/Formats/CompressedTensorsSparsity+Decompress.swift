import QDistIO
import QDistTensor

extension CompressedTensorsSparsity {
    /// The stored parts of one compressed weight, as read from a checkpoint.
    public struct CompressedWeight: Sendable {
        public var shape: StoredTensor
        public var compressed: StoredTensor
        public var bitmask: StoredTensor
        /// sparse-bitmask only.
        public var rowOffsets: StoredTensor?

        public init(shape: StoredTensor, compressed: StoredTensor, bitmask: StoredTensor, rowOffsets: StoredTensor? = nil) {
            (self.shape, self.compressed, self.bitmask, self.rowOffsets) = (shape, compressed, bitmask, rowOffsets)
        }
    }

    /// The dense weight of `parts`, every part checked against the others first (so a damaged
    /// file is refused rather than scattered into the wrong places): `fail(part, message)`
    /// makes the one-line error naming the file and tensor. Positions the bitmask leaves out
    /// are +0.0 (all-zero bytes), whatever the dtype.
    public static func decompress(_ parts: CompressedWeight, format: Format,
                                  fail: (_ part: String, _ message: String) -> QDistIOError) throws(QDistIOError) -> StoredTensor {
        let s = parts.shape
        // Bounded so that no size computed from them can overflow (the bitmask must match them anyway).
        guard let dims = s.integerValues, dims.count == 2, s.shape == [2] || s.shape == [2, 1], dims.allSatisfy({ $0 > 0 && $0 < 1 << 40 }) else {
            throw fail("shape", "expected the dense shape as 2 positive integers ([2] or [2, 1]), found \(s.dtype.rawValue) \(s.shape)\(s.integerValues.map { " \($0)" } ?? "")")
        }
        let (rows, cols) = (dims[0], dims[1])
        let width = (cols + 7) / 8
        let mask = parts.bitmask
        guard mask.dtype == .u8, mask.shape == [rows, width] else {
            throw fail("bitmask", "expected U8 [\(rows), \(width)] (rows × ceil(cols/8) for shape [\(rows), \(cols)]), found \(mask.dtype.rawValue) \(mask.shape)")
        }
        let values = parts.compressed
        guard values.dtype.isFloatingPoint || values.dtype == .i8 else {
            throw fail("compressed", "\(values.dtype.rawValue) values: compressed-tensors compresses float weights and int8/fp8 codes")
        }
        // Padding bits past the last column are zero in anything numpy.packbits wrote.
        if cols % 8 != 0 {
            let padding = UInt8(0xFF) << UInt8(cols % 8)
            if let r = (0..<rows).first(where: { mask.bytes[$0 * width + width - 1] & padding != 0 }) {
                throw fail("bitmask", "row \(r) sets bits past column \(cols - 1) (the padding of the last byte must be zero)")
            }
        }
        var rowCounts = [Int](repeating: 0, count: rows)
        for r in 0..<rows {
            for k in 0..<width { rowCounts[r] += mask.bytes[r * width + k].nonzeroBitCount }
        }
        let kept = rowCounts.reduce(0, +)
        switch format {
        case .dense:
            throw fail("bitmask", "the sparsity format is dense, yet the weight is stored compressed")
        case .bitmask:
            guard values.shape == [kept] else {
                throw fail("compressed", "expected [\(kept)] values (the bitmask sets \(kept) bits), found \(values.shape)")
            }
            guard let offsetsTensor = parts.rowOffsets else { throw fail("row_offsets", "missing (sparse-bitmask stores it; compressed-tensors' BitmaskTensor requires it)") }
            guard let offsets = offsetsTensor.integerValues, offsetsTensor.shape == [rows] else {
                throw fail("row_offsets", "expected an integer [\(rows)], found \(offsetsTensor.dtype.rawValue) \(offsetsTensor.shape)")
            }
            var start = 0
            for r in 0..<rows {
                guard offsets[r] == start else {
                    throw fail("row_offsets", "row \(r) starts at \(offsets[r]), but the bitmask's earlier rows hold \(start) values")
                }
                start += rowCounts[r]
            }
        case .twoOfFour:
            guard cols % 4 == 0 else { throw fail("shape", "sparse-24-bitmask needs the input size (\(cols)) divisible by 4") }
            guard values.shape == [rows, cols / 2] else {
                throw fail("compressed", "expected [\(rows), \(cols / 2)] (two values kept of every four), found \(values.shape)")
            }
            for r in 0..<rows {
                for g in stride(from: 0, to: cols, by: 4) {
                    let nibble = (mask.bytes[r * width + g / 8] >> UInt8(g % 8)) & 0x0F
                    guard nibble.nonzeroBitCount == 2 else {
                        throw fail("bitmask", "row \(r), inputs \(g)…\(g + 3) keep \(nibble.nonzeroBitCount) values; sparse-24-bitmask keeps exactly 2 of every 4")
                    }
                }
            }
        }
        let size = values.dtype.byteSize
        var dense = [UInt8](repeating: 0, count: rows * cols * size)
        var next = 0
        mask.bytes.withUnsafeBufferPointer { m in
            values.bytes.withUnsafeBufferPointer { v in
                dense.withUnsafeMutableBufferPointer { out in
                    for r in 0..<rows {
                        for c in 0..<cols where m[r * width + c / 8] & (1 << UInt8(c % 8)) != 0 {
                            for k in 0..<size { out[(r * cols + c) * size + k] = v[next * size + k] }
                            next += 1
                        }
                    }
                }
            }
        }
        return StoredTensor(dtype: values.dtype, shape: [rows, cols], bytes: dense)
    }
}
