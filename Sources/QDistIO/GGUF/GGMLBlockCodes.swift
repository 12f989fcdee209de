/// The integer codes and the per-sub-block grid inside ggml's block types, for solvers that keep
/// the scales a reference encoder chose and pick their own codes (GPTQ writing GGUF).
///
/// Every supported type stores, per sub-block j of `subBlock` consecutive weights, a value
/// `a_j · q + b_j` for an integer code q in `codeMin ... codeMax`, where `a_j` and `b_j` are
/// what ggml's dequantizer computes from the block's scale fields (Float32, in its order:
/// `dl = d·sc`, `ml = dmin·m`, `b = −ml`), so `a·q + b` is bit-identical to `dequantize_row_*`.
/// Codes are given in the signed form the dequantizer multiplies (Q4_0: −8…7, Q3_K: −4…3,
/// Q6_K: −32…31, Q8_0: −128…127) and unsigned where the type has a min (Q4_1, Q2_K, Q4_K …).
/// `setCode` rewrites one weight's code bits in place and leaves every scale byte as it was, so
/// a block encoded by `GGMLQuantize` with its codes replaced is a valid block of the same type.
/// The code positions are those of `quantize_row_*_ref` (ggml-quants.c), checked by the tests
/// against the dequantizer and by re-packing reference blocks byte for byte.
public enum GGMLBlockCodes {
    /// The grid shape of one type.
    public struct Layout: Sendable, Equatable {
        /// Weights sharing one (a, b).
        public var subBlock: Int
        public var codeMin: Int
        public var codeMax: Int
        /// Bits per code (the codes span 2^bits values).
        public var bits: Int { (codeMax - codeMin + 1).trailingZeroBitCount }
    }

    /// The layout of `type`; nil for the float types and the ternary ones (no per-weight
    /// integer code on an affine grid).
    public static func layout(_ type: GGMLType) -> Layout? {
        switch type {
        case .q4_0: return Layout(subBlock: 32, codeMin: -8, codeMax: 7)
        case .q4_1: return Layout(subBlock: 32, codeMin: 0, codeMax: 15)
        case .q5_0: return Layout(subBlock: 32, codeMin: -16, codeMax: 15)
        case .q5_1: return Layout(subBlock: 32, codeMin: 0, codeMax: 31)
        case .q8_0: return Layout(subBlock: 32, codeMin: -128, codeMax: 127)
        case .q2_K: return Layout(subBlock: 16, codeMin: 0, codeMax: 3)
        case .q3_K: return Layout(subBlock: 16, codeMin: -4, codeMax: 3)
        case .q4_K: return Layout(subBlock: 32, codeMin: 0, codeMax: 15)
        case .q5_K: return Layout(subBlock: 32, codeMin: 0, codeMax: 31)
        case .q6_K: return Layout(subBlock: 16, codeMin: -32, codeMax: 31)
        default: return nil
        }
    }

    /// `a_j` and `b_j` of every sub-block of the block at `block` (`blockSize / subBlock`
    /// entries written to each).
    public static func grid(_ type: GGMLType, block p: UnsafeRawPointer, scales a: UnsafeMutablePointer<Float>,
                            offsets b: UnsafeMutablePointer<Float>) {
        let h = GGMLDequantize.half
        let u8 = p.assumingMemoryBound(to: UInt8.self)
        switch type {
        case .q4_0, .q5_0, .q8_0:
            (a[0], b[0]) = (h(p, 0), 0)
        case .q4_1, .q5_1:
            (a[0], b[0]) = (h(p, 0), h(p, 2))
        case .q2_K:
            let d = h(p, 80), dmin = h(p, 82)
            for j in 0..<16 { (a[j], b[j]) = (d * Float(u8[j] & 0x0F), -(dmin * Float(u8[j] >> 4))) }
        case .q3_K:
            let d = h(p, 108), packed = u8 + 96
            for k in 0..<16 {
                let low = k < 8 ? packed[k] & 0x0F : packed[k - 8] >> 4
                let high = (packed[8 + k % 4] >> UInt8(2 * (k / 4))) & 3
                (a[k], b[k]) = (d * Float(Int(low | high << 4) - 32), 0)
            }
        case .q4_K, .q5_K:
            let d = h(p, 0), dmin = h(p, 2)
            for j in 0..<8 {
                let (sc, m) = GGMLDequantize.scaleMinK4(j, u8 + 4)
                (a[j], b[j]) = (d * sc, -(dmin * m))
            }
        case .q6_K:
            let d = h(p, 208), sc = (p + 192).assumingMemoryBound(to: Int8.self)
            for j in 0..<16 { (a[j], b[j]) = (d * Float(sc[j]), 0) }
        default:
            preconditionFailure("GGMLBlockCodes.grid: \(type.traits.name) has no code layout")
        }
    }

    /// Where weight `e` of a block keeps its code: the low bits (`lowBits` of them at `lowByte`,
    /// from `lowShift`), and for split codes one high bit (or Q6_K's two) at `highByte`.
    struct Slot {
        var lowByte: Int, lowShift: Int, lowBits: Int
        var highByte: Int = -1, highShift: Int = 0, highBits: Int = 0
        /// Added to the signed code to get the stored unsigned one.
        var bias: Int
    }

    static func slot(_ type: GGMLType, _ e: Int) -> Slot {
        switch type {
        case .q4_0: return Slot(lowByte: 2 + e % 16, lowShift: e < 16 ? 0 : 4, lowBits: 4, bias: 8)
        case .q4_1: return Slot(lowByte: 4 + e % 16, lowShift: e < 16 ? 0 : 4, lowBits: 4, bias: 0)
        case .q5_0: return Slot(lowByte: 6 + e % 16, lowShift: e < 16 ? 0 : 4, lowBits: 4, highByte: 2 + e / 8, highShift: e % 8, highBits: 1, bias: 16)
        case .q5_1: return Slot(lowByte: 8 + e % 16, lowShift: e < 16 ? 0 : 4, lowBits: 4, highByte: 4 + e / 8, highShift: e % 8, highBits: 1, bias: 0)
        case .q8_0: return Slot(lowByte: 2 + e, lowShift: 0, lowBits: 8, bias: 256)
        case .q2_K:
            let w = e % 128
            return Slot(lowByte: 16 + (e / 128) * 32 + w % 32, lowShift: 2 * (w / 32), lowBits: 2, bias: 0)
        case .q3_K:
            let w = e % 128
            return Slot(lowByte: 32 + (e / 128) * 32 + w % 32, lowShift: 2 * (w / 32), lowBits: 2,
                        highByte: e % 32, highShift: e / 32, highBits: 1, bias: 4)
        case .q4_K:
            let w = e % 64
            return Slot(lowByte: 16 + (e / 64) * 32 + w % 32, lowShift: w < 32 ? 0 : 4, lowBits: 4, bias: 0)
        case .q5_K:
            let w = e % 64
            return Slot(lowByte: 48 + (e / 64) * 32 + w % 32, lowShift: w < 32 ? 0 : 4, lowBits: 4,
                        highByte: 16 + w % 32, highShift: 2 * (e / 64) + (w < 32 ? 0 : 1), highBits: 1, bias: 0)
        case .q6_K:
            let half = e / 128, w = e % 128, t = w / 32, l = w % 32
            return Slot(lowByte: half * 64 + l + (t % 2 == 1 ? 32 : 0), lowShift: t >= 2 ? 4 : 0, lowBits: 4,
                        highByte: 128 + half * 32 + l, highShift: 2 * t, highBits: 2, bias: 32)
        default:
            preconditionFailure("GGMLBlockCodes: \(type.traits.name) has no code layout")
        }
    }

    /// The signed (or, for types with a min, unsigned) code of weight `e` of the block.
    public static func code(_ type: GGMLType, block p: UnsafeRawPointer, element e: Int) -> Int {
        let s = slot(type, e), u8 = p.assumingMemoryBound(to: UInt8.self)
        var v = Int(u8[s.lowByte] >> UInt8(s.lowShift)) & ((1 << s.lowBits) - 1)
        if s.highBits > 0 { v |= (Int(u8[s.highByte] >> UInt8(s.highShift)) & ((1 << s.highBits) - 1)) << s.lowBits }
        // Q8_0 stores int8: its "bias" folds the two's complement back.
        return type == .q8_0 ? Int(Int8(truncatingIfNeeded: v)) : v - s.bias
    }

    /// Stores `code` (in `layout(type).codeMin ... codeMax`) as weight `e`'s code.
    public static func setCode(_ type: GGMLType, block p: UnsafeMutableRawPointer, element e: Int, _ code: Int) {
        let s = slot(type, e), u8 = p.assumingMemoryBound(to: UInt8.self)
        let v = type == .q8_0 ? Int(UInt8(bitPattern: Int8(code))) : code + s.bias
        let lowMask = UInt8((1 << s.lowBits) - 1)
        u8[s.lowByte] = (u8[s.lowByte] & ~(lowMask << UInt8(s.lowShift))) | (UInt8(v & Int(lowMask)) << UInt8(s.lowShift))
        if s.highBits > 0 {
            let highMask = UInt8((1 << s.highBits) - 1)
            u8[s.highByte] = (u8[s.highByte] & ~(highMask << UInt8(s.highShift))) | (UInt8((v >> s.lowBits) & Int(highMask)) << UInt8(s.highShift))
        }
    }
}
