/// Bit-packing of small unsigned integers into int32 words, LSB first, the two ways quantized
/// checkpoints do it (FORMATS.md §4.2, §5.3).
///
/// Both pack along the *last* dimension of a row-major matrix; a format that packs along the
/// first dimension (GPTQ `qweight`, compressed-tensors `weight_zero_point`) transposes around
/// the call. Words are built as `UInt32` and stored as their `Int32` bit pattern, as
/// `numpy.astype(int32)` and torch's wrapping int32 sum do. Packing checks every value fits in
/// `bits` (a wider value would silently corrupt its neighbours), and unpacking checks the word
/// count, so a mismatch is a one-line error rather than a wrong weight.
public enum PackedInt32 {
    /// How values sit in the words.
    public enum Layout: Sendable, Equatable {
        /// compressed-tensors `pack_to_int32`: `floor(32 / bits)` values per word (3-bit: 10,
        /// leaving the top 2 bits zero); value `k` at word `k / pf`, bit `bits · (k % pf)`. The
        /// last word of a row is zero-padded, so any length packs.
        case wordAligned
        /// GPTQ: one contiguous LSB-first bit stream per row, value `k` at stream bits
        /// `[bits·k, bits·k + bits)`; 3-bit values straddle words (32 values fill 3 words exactly).
        /// For 2/4/8 bits this equals `wordAligned`. The row length times `bits` must be a
        /// multiple of 32.
        case bitStream
    }

    /// Values per word in the word-aligned layout (`32 / bits`, rounded down).
    public static func valuesPerWord(bits: Int) -> Int { 32 / bits }

    /// Words needed for a row of `count` values.
    public static func packedLength(_ count: Int, bits: Int, layout: Layout, subject: String = "packing") throws(QuantizedFormatError) -> Int {
        guard (1...8).contains(bits) else { throw QuantizedFormatError(subject, "cannot pack \(bits)-bit values (1...8)") }
        switch layout {
        case .wordAligned:
            let pf = valuesPerWord(bits: bits)
            return (count + pf - 1) / pf
        case .bitStream:
            guard (count * bits) % 32 == 0 else {
                let unit = 32 / gcd(bits, 32)
                throw QuantizedFormatError(subject, "\(count) values of \(bits) bits do not fill whole int32 words (GPTQ needs a multiple of \(unit))")
            }
            return count * bits / 32
        }
    }

    /// Packs a row-major `(rows, columns)` matrix of values in `0 ..< 2^bits` along its
    /// columns into `(rows, packedLength(columns))` words.
    public static func pack(_ values: [Int32], rows: Int, columns: Int, bits: Int, layout: Layout,
                            subject: String = "packing") throws(QuantizedFormatError) -> [Int32] {
        let width = try packedLength(columns, bits: bits, layout: layout, subject: subject)
        guard values.count == rows * columns else {
            throw QuantizedFormatError(subject, "\(values.count) values for a (\(rows), \(columns)) matrix")
        }
        let mask = UInt32((1 << bits) - 1)
        if let bad = values.firstIndex(where: { UInt32(bitPattern: $0) > mask }) {
            throw QuantizedFormatError(subject, "value \(values[bad]) at (\(bad / max(columns, 1)), \(bad % max(columns, 1))) does not fit in \(bits) unsigned bits")
        }
        var words = [UInt32](repeating: 0, count: rows * width)
        let pf = valuesPerWord(bits: bits)
        values.withUnsafeBufferPointer { v in
            words.withUnsafeMutableBufferPointer { w in
                for r in 0..<rows {
                    let src = r * columns, dst = r * width
                    for k in 0..<columns {
                        let u = UInt32(bitPattern: v[src + k])
                        switch layout {
                        case .wordAligned:
                            w[dst + k / pf] |= u << UInt32(bits * (k % pf))
                        case .bitStream:
                            let bit = k * bits, word = dst + (bit >> 5), offset = bit & 31
                            w[word] |= u << UInt32(offset)
                            if offset + bits > 32 { w[word + 1] |= u >> UInt32(32 - offset) }
                        }
                    }
                }
            }
        }
        return words.map { Int32(bitPattern: $0) }
    }

    /// Inverse of `pack`: `(rows, packedLength(columns))` words to `(rows, columns)` values in
    /// `0 ..< 2^bits` (padding bits are ignored).
    public static func unpack(_ words: [Int32], rows: Int, columns: Int, bits: Int, layout: Layout,
                              subject: String = "packing") throws(QuantizedFormatError) -> [Int32] {
        let width = try packedLength(columns, bits: bits, layout: layout, subject: subject)
        guard words.count == rows * width else {
            throw QuantizedFormatError(subject, "\(words.count) words, but (\(rows), \(columns)) \(bits)-bit values pack into (\(rows), \(width))")
        }
        let mask = UInt32((1 << bits) - 1)
        let pf = valuesPerWord(bits: bits)
        var values = [Int32](repeating: 0, count: rows * columns)
        words.withUnsafeBufferPointer { w in
            values.withUnsafeMutableBufferPointer { v in
                for r in 0..<rows {
                    let src = r * width, dst = r * columns
                    for k in 0..<columns {
                        let u: UInt32
                        switch layout {
                        case .wordAligned:
                            u = UInt32(bitPattern: w[src + k / pf]) >> UInt32(bits * (k % pf))
                        case .bitStream:
                            let bit = k * bits, word = src + (bit >> 5), offset = bit & 31
                            var x = UInt32(bitPattern: w[word]) >> UInt32(offset)
                            if offset + bits > 32 { x |= UInt32(bitPattern: w[word + 1]) << UInt32(32 - offset) }
                            u = x
                        }
                        v[dst + k] = Int32(u & mask)
                    }
                }
            }
        }
        return values
    }

    /// The transpose of a row-major `(rows, columns)` matrix.
    public static func transpose(_ m: [Int32], rows: Int, columns: Int) -> [Int32] {
        precondition(m.count == rows * columns, "transpose: \(m.count) elements for (\(rows), \(columns))")
        var out = [Int32](repeating: 0, count: m.count)
        m.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows {
                    for c in 0..<columns { dst[c * rows + r] = src[r * columns + c] }
                }
            }
        }
        return out
    }

    /// compressed-tensors `pack_to_int32(value, num_bits, packed_dim)`: signed values in
    /// `−2^(b−1) ..< 2^(b−1)` are offset by `2^(b−1)` and packed word-aligned along `packedDim`
    /// (1: along columns → `(rows, ceil(columns/pf))`; 0: along rows → `(ceil(rows/pf), columns)`).
    public static func packToInt32(signed values: [Int32], rows: Int, columns: Int, bits: Int,
                                   packedDim: Int = 1) throws(QuantizedFormatError) -> (words: [Int32], shape: [Int]) {
        let offset = Int32(1) << Int32(max(bits, 1) - 1)
        let unsigned = values.map { $0 &+ offset }
        if packedDim == 1 {
            let words = try pack(unsigned, rows: rows, columns: columns, bits: bits, layout: .wordAligned)
            return (words, [rows, try packedLength(columns, bits: bits, layout: .wordAligned)])
        }
        let packed = try pack(transpose(unsigned, rows: rows, columns: columns), rows: columns, columns: rows,
                              bits: bits, layout: .wordAligned)
        let height = try packedLength(rows, bits: bits, layout: .wordAligned)
        return (transpose(packed, rows: columns, columns: height), [height, columns])
    }

    /// compressed-tensors `unpack_from_int32(value, num_bits, shape, packed_dim)`: the signed
    /// values of an original `(rows, columns)` matrix (padding dropped).
    public static func unpackFromInt32(_ words: [Int32], rows: Int, columns: Int, bits: Int,
                                       packedDim: Int = 1) throws(QuantizedFormatError) -> [Int32] {
        let offset = Int32(1) << Int32(max(bits, 1) - 1)
        let unsigned: [Int32]
        if packedDim == 1 {
            unsigned = try unpack(words, rows: rows, columns: columns, bits: bits, layout: .wordAligned)
        } else {
            let height = try packedLength(rows, bits: bits, layout: .wordAligned)
            guard words.count == height * columns else {
                throw QuantizedFormatError("packing", "\(words.count) words, but (\(rows), \(columns)) \(bits)-bit values pack into (\(height), \(columns))")
            }
            let byColumn = try unpack(transpose(words, rows: height, columns: columns), rows: columns, columns: rows,
                                      bits: bits, layout: .wordAligned)
            unsigned = transpose(byColumn, rows: columns, columns: rows)
        }
        return unsigned.map { $0 - offset }
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
}
