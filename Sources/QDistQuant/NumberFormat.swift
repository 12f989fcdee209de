import QDistIO

/// A number format a weight can be stored in, with the facts a user weighs when choosing one:
/// bits per weight (scale overhead included), representable range, and resolution.
///
/// Scaled formats (int-N, NF4, FP4, ternary, GGUF blocks) store codes that a per-group or
/// per-block scale multiplies; their range and step are in units of that scale (`isScaled`).
public struct NumberFormat: Sendable, Equatable {
    /// What kind of format this is, which decides how overhead is counted.
    public enum Family: String, Sendable {
        /// IEEE-like floats: no scale needed.
        case float
        /// Uniform integer grids; a scale (and optionally a zero point) per group of weights.
        case integer
        /// 16-entry code books (NF4, FP4) with an absmax per block of weights.
        case codebook
        /// {-1, 0, +1} times a scale (BitNet b1.58).
        case ternary
        /// llama.cpp's self-describing blocks: the block bytes already hold scales and mins.
        case ggufBlock = "gguf-block"
    }

    /// Lower-case name used on the command line: "fp16", "int4", "nf4", "q4_k".
    public let name: String
    public let family: Family
    /// Bits of one stored code, without any scale.
    public let codeBits: Double
    /// Scale overhead in bits per weight that the format itself fixes (block absmax, GGUF
    /// block headers); integer formats instead take a user-chosen group size.
    public let fixedOverheadBits: Double
    /// Smallest and largest representable value (in units of the scale when `isScaled`).
    public let minimum: Double
    public let maximum: Double
    /// Smallest positive representable value (for floats: the least subnormal).
    public let smallestPositive: Double
    /// Gap between 1.0 and the next value up, for floats; one code step for grids.
    public let stepAtOne: Double
    /// One line on what the format is and where it comes from.
    public let summary: String

    /// True when values are codes multiplied by a scale.
    public var isScaled: Bool { family != .float }

    /// Bits per weight including scale overhead. For integer formats `groupSize` adds one fp16
    /// scale per group (and `zeroPoint` one packed zero of `codeBits` per group); nil counts
    /// codes only.
    public func bitsPerWeight(groupSize: Int? = nil, zeroPoint: Bool = false) -> Double {
        var bits = codeBits + fixedOverheadBits
        if family == .integer, let g = groupSize, g > 0 {
            bits += 16 / Double(g) + (zeroPoint ? codeBits / Double(g) : 0)
        }
        return bits
    }

    /// Bytes to store `parameters` weights in this format (see `bitsPerWeight`).
    public func bytes(parameters: Double, groupSize: Int? = nil, zeroPoint: Bool = false) -> Double {
        parameters * bitsPerWeight(groupSize: groupSize, zeroPoint: zeroPoint) / 8
    }
}

extension NumberFormat {
    /// The group size `qdist formats` uses when it lists integer formats (llm-compressor's W4A16).
    public static let defaultListingGroupSize = 128

    /// Every format qdist knows, in the order `qdist formats` lists them.
    public static let all: [NumberFormat] = floats + integers + codebooks + [ternary] + ggufBlocks

    /// The format named `name` (case-insensitive; "e4m3" and "fp8" are accepted aliases).
    public static func named(_ name: String) -> NumberFormat? {
        let key = name.lowercased()
        let aliases = ["fp8": "fp8_e4m3", "e4m3": "fp8_e4m3", "e5m2": "fp8_e5m2", "float32": "fp32",
                       "f32": "fp32", "float16": "fp16", "f16": "fp16", "half": "fp16", "bfloat16": "bf16",
                       "1.58": "ternary", "b1.58": "ternary", "int1.58": "ternary", "nf4-dq": "nf4_dq"]
        let resolved = aliases[key] ?? key
        return all.first { $0.name == resolved }
    }

    static let floats: [NumberFormat] = [
        NumberFormat(name: "fp32", family: .float, codeBits: 32, fixedOverheadBits: 0,
                     minimum: -Double(Float.greatestFiniteMagnitude), maximum: Double(Float.greatestFiniteMagnitude),
                     smallestPositive: Double(Float.leastNonzeroMagnitude), stepAtOne: Double(Float.ulpOfOne),
                     summary: "IEEE binary32: the compute type"),
        NumberFormat(name: "fp16", family: .float, codeBits: 16, fixedOverheadBits: 0,
                     minimum: -65504, maximum: 65504, smallestPositive: 0x1p-24, stepAtOne: 0x1p-10,
                     summary: "IEEE binary16; overflows above 65504"),
        NumberFormat(name: "bf16", family: .float, codeBits: 16, fixedOverheadBits: 0,
                     minimum: -0x1.FEp127, maximum: 0x1.FEp127, smallestPositive: 0x1p-133, stepAtOne: 0x1p-7,
                     summary: "bfloat16: fp32's range with 8 bits of precision"),
        NumberFormat(name: "fp8_e4m3", family: .float, codeBits: 8, fixedOverheadBits: 0,
                     minimum: -448, maximum: 448, smallestPositive: 0x1p-9, stepAtOne: 0x1p-3,
                     summary: "OCP fp8 E4M3FN (no inf): FP8 weights/activations with a scale"),
        NumberFormat(name: "fp8_e5m2", family: .float, codeBits: 8, fixedOverheadBits: 0,
                     minimum: -57344, maximum: 57344, smallestPositive: 0x1p-16, stepAtOne: 0x1p-2,
                     summary: "OCP fp8 E5M2: wider range, 2 mantissa bits (gradients)"),
    ]

    static let integers: [NumberFormat] = [8, 4, 3, 2].map { (bits: Int) -> NumberFormat in
        let half = Double(1 << (bits - 1))
        return NumberFormat(name: "int\(bits)", family: .integer, codeBits: Double(bits), fixedOverheadBits: 0,
                     minimum: -half, maximum: half - 1,
                     smallestPositive: 1, stepAtOne: 1,
                     summary: "signed \(bits)-bit grid × scale per channel or group (RTN, GPTQ, AWQ)")
    }

    static let codebooks: [NumberFormat] = [
        // bitsandbytes: absmax fp32 per 64-weight block (FORMATS.md §6.3).
        NumberFormat(name: "nf4", family: .codebook, codeBits: 4, fixedOverheadBits: 32.0 / 64,
                     minimum: -1, maximum: 1, smallestPositive: 0.07958029955625534, stepAtOne: 1 - 0.7229568362236023,
                     summary: "NormalFloat4 (QLoRA): 16 normal quantiles × absmax per 64 weights"),
        // Double quantization: 8-bit absmax per 64, fp32 second-level scale per 256 blocks (§6.4).
        NumberFormat(name: "nf4_dq", family: .codebook, codeBits: 4, fixedOverheadBits: 8.0 / 64 + 32.0 / (64 * 256),
                     minimum: -1, maximum: 1, smallestPositive: 0.07958029955625534, stepAtOne: 1 - 0.7229568362236023,
                     summary: "NF4 with double-quantized absmax (bnb_4bit_use_double_quant)"),
        NumberFormat(name: "fp4", family: .codebook, codeBits: 4, fixedOverheadBits: 32.0 / 64,
                     minimum: -1, maximum: 1, smallestPositive: 0.0625 / 12, stepAtOne: 1.0 / 3,
                     summary: "bitsandbytes FP4 (E2M1-like) × absmax per 64 weights"),
    ]

    static let ternary = NumberFormat(
        name: "ternary", family: .ternary, codeBits: 1.584962500721156, fixedOverheadBits: 0,
        minimum: -1, maximum: 1, smallestPositive: 1, stepAtOne: 1,
        summary: "BitNet b1.58: {-1, 0, +1} × absmean scale; log2(3) bits (TQ1_0 stores 1.69)")

    /// GGUF block formats: bits come from the block size in the ggml traits table; codes are
    /// what one block scale multiplies (K-quants add sub-block scales and mins).
    static let ggufBlocks: [NumberFormat] = [
        gguf(.q4_0, -8, 7, "32 × 4-bit, fp16 scale"),
        gguf(.q4_1, 0, 15, "32 × 4-bit, fp16 scale and min"),
        gguf(.q5_0, -16, 15, "32 × 5-bit, fp16 scale"),
        gguf(.q5_1, 0, 31, "32 × 5-bit, fp16 scale and min"),
        gguf(.q8_0, -128, 127, "32 × 8-bit, fp16 scale"),
        gguf(.q2_K, 0, 3, "k-quant: 16 × 16 × 2-bit, 4-bit sub-scales and mins"),
        gguf(.q3_K, -4, 3, "k-quant: 16 × 16 × 3-bit, 6-bit sub-scales"),
        gguf(.q4_K, 0, 15, "k-quant: 8 × 32 × 4-bit, 6-bit sub-scales and mins"),
        gguf(.q5_K, 0, 31, "k-quant: 8 × 32 × 5-bit, 6-bit sub-scales and mins"),
        gguf(.q6_K, -32, 31, "k-quant: 16 × 16 × 6-bit, 8-bit sub-scales"),
        gguf(.tq1_0, -1, 1, "ternary, 5 trits per byte, fp16 scale"),
        gguf(.tq2_0, -1, 1, "ternary, 2 bits per weight, fp16 scale"),
    ]

    /// One GGUF block format: the code range `lo...hi` one block scale multiplies.
    static func gguf(_ type: GGMLType, _ lo: Int, _ hi: Int, _ what: String) -> NumberFormat {
        let t = type.traits
        let codeBits = bitWidth(levels: hi - lo + 1)
        return NumberFormat(name: t.name.lowercased(), family: .ggufBlock, codeBits: codeBits,
                            fixedOverheadBits: t.bitsPerWeight - codeBits, minimum: Double(lo), maximum: Double(hi),
                            smallestPositive: 1, stepAtOne: 1, summary: "GGUF \(t.name): \(what)")
    }

    /// Bits needed to index `levels` codes (TQ1_0 packs 3 levels in log2(3) bits).
    static func bitWidth(levels: Int) -> Double {
        levels == 3 ? 1.584962500721156 : Double(Int.bitWidth - (levels - 1).leadingZeroBitCount)
    }
}
