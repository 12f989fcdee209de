/// The ggml tensor types as numbered on disk in GGUF files, with one traits table for all.
///
/// Raw values are the file ABI: a removed type's number is never reused (4, 5, 31–33, 36–38
/// stay unassigned). Every size and name lookup goes through `traits`, the way ggml's
/// `type_traits[]` does, so a new type is one table row.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1
    case q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_XXS = 16, iq2_XS = 17, iq3_XXS = 18, iq1_S = 19, iq4_NL = 20, iq3_S = 21, iq2_S = 22, iq4_XS = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28
    case iq1_M = 29
    case bf16 = 30
    case tq1_0 = 34, tq2_0 = 35

    /// Static facts about a type: its name as llama.cpp prints it, elements per block, bytes
    /// per block, whether it is a quantized block format, and how to decode it to Float32 and
    /// encode Float32 into it.
    public struct Traits: Sendable, Equatable {
        public let name: String
        public let blockSize: Int
        public let typeSize: Int
        public let isQuantized: Bool
        /// Decodes whole blocks to Float32 exactly as ggml does (see `GGMLDequantize`); nil for
        /// types qdist cannot decode yet (the IQ* codebook types, Q8_1, Q8_K).
        public let dequantize: GGMLBlockDecoder?
        /// Encodes rows exactly as llama.cpp does (see `GGMLQuantize`); nil for types qdist
        /// cannot write (the IQ* types, Q8_1, Q8_K, the integer types, F64).
        public let quantize: GGMLBlockEncoder?
        /// Storage bits per weight, block overhead (scales, mins) included.
        public var bitsPerWeight: Double { Double(typeSize * 8) / Double(blockSize) }

        public init(name: String, blockSize: Int, typeSize: Int, isQuantized: Bool, dequantize: GGMLBlockDecoder? = nil,
                    quantize: GGMLBlockEncoder? = nil) {
            self.name = name
            self.blockSize = blockSize
            self.typeSize = typeSize
            self.isQuantized = isQuantized
            self.dequantize = dequantize
            self.quantize = quantize
        }

        /// Equal when the static facts agree (functions have no identity to compare).
        public static func == (a: Traits, b: Traits) -> Bool {
            a.name == b.name && a.blockSize == b.blockSize && a.typeSize == b.typeSize
                && a.isQuantized == b.isQuantized && (a.dequantize == nil) == (b.dequantize == nil)
                && (a.quantize == nil) == (b.quantize == nil)
        }
    }

    /// Elements per super-block of the k-quants.
    public static let superBlockSize = 256

    /// The traits table (FORMATS.md §2.2; ggml `type_traits`).
    public var traits: Traits {
        switch self {
        case .f32: return Traits(name: "F32", blockSize: 1, typeSize: 4, isQuantized: false, dequantize: GGMLDequantize.f32,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.f32))
        case .f16: return Traits(name: "F16", blockSize: 1, typeSize: 2, isQuantized: false, dequantize: GGMLDequantize.f16,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.f16))
        case .bf16: return Traits(name: "BF16", blockSize: 1, typeSize: 2, isQuantized: false, dequantize: GGMLDequantize.bf16,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.bf16))
        case .f64: return Traits(name: "F64", blockSize: 1, typeSize: 8, isQuantized: false, dequantize: GGMLDequantize.f64)
        case .i8: return Traits(name: "I8", blockSize: 1, typeSize: 1, isQuantized: false, dequantize: GGMLDequantize.i8)
        case .i16: return Traits(name: "I16", blockSize: 1, typeSize: 2, isQuantized: false, dequantize: GGMLDequantize.i16)
        case .i32: return Traits(name: "I32", blockSize: 1, typeSize: 4, isQuantized: false, dequantize: GGMLDequantize.i32)
        case .i64: return Traits(name: "I64", blockSize: 1, typeSize: 8, isQuantized: false, dequantize: GGMLDequantize.i64)
        case .q4_0: return Traits(name: "Q4_0", blockSize: 32, typeSize: 18, isQuantized: true, dequantize: GGMLDequantize.q4_0,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.q4_0, weighted: GGMLQuantize.q4_0Weighted))
        case .q4_1: return Traits(name: "Q4_1", blockSize: 32, typeSize: 20, isQuantized: true, dequantize: GGMLDequantize.q4_1,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.q4_1, weighted: GGMLQuantize.q4_1Weighted))
        case .q5_0: return Traits(name: "Q5_0", blockSize: 32, typeSize: 22, isQuantized: true, dequantize: GGMLDequantize.q5_0,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.q5_0, weighted: GGMLQuantize.q5_0Weighted))
        case .q5_1: return Traits(name: "Q5_1", blockSize: 32, typeSize: 24, isQuantized: true, dequantize: GGMLDequantize.q5_1,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.q5_1, weighted: GGMLQuantize.q5_1Weighted))
        case .q8_0: return Traits(name: "Q8_0", blockSize: 32, typeSize: 34, isQuantized: true, dequantize: GGMLDequantize.q8_0,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.q8_0))
        case .q8_1: return Traits(name: "Q8_1", blockSize: 32, typeSize: 36, isQuantized: true)
        case .q2_K: return Traits(name: "Q2_K", blockSize: 256, typeSize: 84, isQuantized: true, dequantize: GGMLDequantize.q2_K,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.q2_K, weighted: GGMLQuantize.q2_KWeighted))
        case .q3_K: return Traits(name: "Q3_K", blockSize: 256, typeSize: 110, isQuantized: true, dequantize: GGMLDequantize.q3_K,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.q3_K, weighted: GGMLQuantize.q3_KWeighted))
        case .q4_K: return Traits(name: "Q4_K", blockSize: 256, typeSize: 144, isQuantized: true, dequantize: GGMLDequantize.q4_K,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.q4_K, weighted: GGMLQuantize.q4_KWeighted))
        case .q5_K: return Traits(name: "Q5_K", blockSize: 256, typeSize: 176, isQuantized: true, dequantize: GGMLDequantize.q5_K,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.q5_K, weighted: GGMLQuantize.q5_KWeighted))
        case .q6_K: return Traits(name: "Q6_K", blockSize: 256, typeSize: 210, isQuantized: true, dequantize: GGMLDequantize.q6_K,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.q6_KReference, weighted: GGMLQuantize.q6_KWeighted))
        case .q8_K: return Traits(name: "Q8_K", blockSize: 256, typeSize: 292, isQuantized: true)
        case .iq2_XXS: return Traits(name: "IQ2_XXS", blockSize: 256, typeSize: 66, isQuantized: true)
        case .iq2_XS: return Traits(name: "IQ2_XS", blockSize: 256, typeSize: 74, isQuantized: true)
        case .iq3_XXS: return Traits(name: "IQ3_XXS", blockSize: 256, typeSize: 98, isQuantized: true)
        case .iq1_S: return Traits(name: "IQ1_S", blockSize: 256, typeSize: 50, isQuantized: true)
        case .iq4_NL: return Traits(name: "IQ4_NL", blockSize: 32, typeSize: 18, isQuantized: true)
        case .iq3_S: return Traits(name: "IQ3_S", blockSize: 256, typeSize: 110, isQuantized: true)
        case .iq2_S: return Traits(name: "IQ2_S", blockSize: 256, typeSize: 82, isQuantized: true)
        case .iq4_XS: return Traits(name: "IQ4_XS", blockSize: 256, typeSize: 136, isQuantized: true)
        case .iq1_M: return Traits(name: "IQ1_M", blockSize: 256, typeSize: 56, isQuantized: true)
        case .tq1_0: return Traits(name: "TQ1_0", blockSize: 256, typeSize: 54, isQuantized: true, dequantize: GGMLDequantize.tq1_0,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.tq1_0))
        case .tq2_0: return Traits(name: "TQ2_0", blockSize: 256, typeSize: 66, isQuantized: true, dequantize: GGMLDequantize.tq2_0,
                                    quantize: GGMLBlockEncoder(GGMLQuantize.tq2_0))
        }
    }

    /// The type named `name` (case-insensitive, as llama.cpp spells it: "Q4_K", "f16").
    public init?(name: String) {
        guard let t = GGMLType.allCases.first(where: { $0.traits.name.uppercased() == name.uppercased() })
        else { return nil }
        self = t
    }

    /// Bytes needed for `elements` values; nil when `elements` is not a whole number of blocks.
    public func byteCount(elements: Int) -> Int? {
        let t = traits
        guard elements % t.blockSize == 0 else { return nil }
        return elements / t.blockSize * t.typeSize
    }
}
