import QDistIO
import QDistTensor

/// compressed-tensors' legacy sparse layouts (FORMATS.md §12.4.2–12.4.3): what llm-compressor
/// ≤ 0.10 with compressed-tensors ≤ 0.14 wrote for pruned models, and what current releases no
/// longer read or write. One 2-D weight `<m>.weight` becomes
///
/// - `sparse-bitmask` (`BitmaskCompressor`): `<m>.compressed` `[nnz]` in the weight's dtype
///   (the nonzero values, row-major), `<m>.bitmask` U8 `[rows, ceil(cols/8)]`, `<m>.shape` I64
///   `[2]` and `<m>.row_offsets` I64 `[rows]` (exclusive prefix sum of each row's nonzeros);
/// - `sparse-24-bitmask` (`Sparse24BitMaskCompressor`): `<m>.compressed` `[rows, cols/2]` (the
///   two kept values of every group of four inputs, which may include a zero),
///   `<m>.bitmask` U8 `[rows, ceil(cols/8)]` and `<m>.shape` I64 `[2, 1]`.
///
/// Bitmasks are `numpy.packbits(mask, axis=-1, bitorder="little")`: bit b (LSB = 0) of byte k
/// is column 8k+b, the tail padded with zero bits. Values travel as raw element bytes, so bf16,
/// fp16, f32, int8 codes (int-quantized) and fp8 codes pass through untouched.
///
/// Writing never stores −0.0 (vLLM PR #13198: −0.0 zeros gave garbage; FORMATS.md §12.6 item
/// 11), and never prunes: a weight with three nonzeros in a group of four is refused, where
/// compressed-tensors would silently drop the smallest (§12.6 item 12).
public enum CompressedTensorsSparsity {
    /// `sparsity_config.format`.
    public enum Format: String, Sendable, CaseIterable {
        /// Zeros stored in place; nothing to decompress.
        case dense
        /// Unstructured: every nonzero kept.
        case bitmask = "sparse-bitmask"
        /// Semi-structured: exactly two values kept per group of four inputs.
        case twoOfFour = "sparse-24-bitmask"
    }

    /// The compressed-tensors release whose sparse layout and config this follows (the last one
    /// with the compressors; llm-compressor 0.10 pins it).
    public static let version = "0.14.0"

    /// The key suffixes of one compressed weight in `format`, `shape`, `compressed`, `bitmask`
    /// (and `row_offsets` for sparse-bitmask, which compressed-tensors' `BitmaskTensor` requires).
    public static func parts(_ format: Format) -> [String] {
        format == .bitmask ? ["shape", "compressed", "bitmask", "row_offsets"] : ["shape", "compressed", "bitmask"]
    }

    /// `weight` (2-D) of module `module` in `format`'s tensors, named `<module>.<part>`.
    public static func compress(_ weight: StoredTensor, module: String, format: Format) throws(QuantizedFormatError) -> [String: StoredTensor] {
        guard weight.shape.count == 2 else {
            throw QuantizedFormatError(module, "\(format.rawValue) holds 2-D weights; this one is \(weight.shape)")
        }
        let (rows, cols, size) = (weight.shape[0], weight.shape[1], weight.dtype.byteSize)
        let width = (cols + 7) / 8
        var mask = [UInt8](repeating: 0, count: rows * width)
        var values: [UInt8] = []
        var rowCounts = [Int64](repeating: 0, count: rows)
        switch format {
        case .dense:
            throw QuantizedFormatError(module, "the dense format stores the weight itself")
        case .bitmask:
            values.reserveCapacity(weight.bytes.count / 2)
            for r in 0..<rows {
                for c in 0..<cols where !isZero(weight, element: r * cols + c) {
                    mask[r * width + c / 8] |= 1 << UInt8(c % 8)
                    values += weight.bytes[(r * cols + c) * size..<(r * cols + c + 1) * size]
                    rowCounts[r] += 1
                }
            }
            var offsets = [Int64](repeating: 0, count: rows)
            for r in 1..<max(rows, 1) { offsets[r] = offsets[r - 1] + rowCounts[r - 1] }
            return [
                "\(module).shape": .int64([Int64(rows), Int64(cols)], shape: [2]),
                "\(module).compressed": StoredTensor(dtype: weight.dtype, shape: [values.count / size], bytes: values),
                "\(module).bitmask": StoredTensor(dtype: .u8, shape: [rows, width], bytes: mask),
                "\(module).row_offsets": .int64(offsets, shape: [rows]),
            ]
        case .twoOfFour:
            guard cols % 4 == 0 else {
                throw QuantizedFormatError(module, "sparse-24-bitmask needs the input size (\(cols)) divisible by 4")
            }
            values = [UInt8](repeating: 0, count: rows * cols / 2 * size)  // zero bytes: +0.0
            var next = 0
            for r in 0..<rows {
                for g in stride(from: 0, to: cols, by: 4) {
                    var nonzero: UInt8 = 0
                    for j in 0..<4 where !isZero(weight, element: r * cols + g + j) { nonzero |= 1 << UInt8(j) }
                    guard nonzero.nonzeroBitCount <= 2 else {
                        throw QuantizedFormatError(module, "row \(r), inputs \(g)…\(g + 3) hold \(nonzero.nonzeroBitCount) nonzero values; sparse-24-bitmask keeps 2 of every 4 (the weight is not 2:4)")
                    }
                    let kept = keptInGroup(nonzero: nonzero)
                    mask[r * width + g / 8] |= kept << UInt8(g % 8)
                    for j in 0..<4 where kept & (1 << UInt8(j)) != 0 {
                        // A kept zero (a group with fewer than two nonzeros) stays +0.0.
                        if nonzero & (1 << UInt8(j)) != 0 {
                            let from = (r * cols + g + j) * size
                            for k in 0..<size { values[next * size + k] = weight.bytes[from + k] }
                        }
                        next += 1
                    }
                }
            }
            return [
                "\(module).shape": .int64([Int64(rows), Int64(cols)], shape: [2, 1]),
                "\(module).compressed": StoredTensor(dtype: weight.dtype, shape: [rows, cols / 2], bytes: values),
                "\(module).bitmask": StoredTensor(dtype: .u8, shape: [rows, width], bytes: mask),
            ]
        }
    }

    /// The two positions of a group of four that sparse-24-bitmask keeps, as a 4-bit mask, given
    /// its nonzero positions (at most two). With two nonzeros those are kept. With fewer,
    /// compressed-tensors' `topk(2)` over |values| breaks the tie among zeros in an order torch
    /// leaves unspecified (FORMATS.md §12.6 item 5); on CPU it is libstdc++'s `nth_element`,
    /// whose choice this table copies (it gives the worked example's [9,0,0,0] → columns 0 and 2;
    /// all five cases checked against torch 2.13 CPU by Benchmarks/legacy_sparse_ct014_check.sh).
    /// Readers accept any two positions, so the choice only matters for byte equality.
    static func keptInGroup(nonzero: UInt8) -> UInt8 {
        switch nonzero {
        case 0b0000: return 0b1100
        case 0b0001: return 0b0101
        case 0b0010: return 0b1010
        case 0b0100, 0b1000: return 0b1100
        default: return nonzero
        }
    }

    /// True when element `i` is zero: every bit clear, but for the sign of a float (compressed-
    /// tensors tests `!= 0`, for which −0.0 is zero).
    static func isZero(_ t: StoredTensor, element i: Int) -> Bool {
        let size = t.dtype.byteSize, base = i * size
        for k in 0..<size {
            var byte = t.bytes[base + k]
            if k == size - 1 && t.dtype.isFloatingPoint { byte &= 0x7F }  // little-endian: the sign is in the last byte
            if byte != 0 { return false }
        }
        return true
    }
}
