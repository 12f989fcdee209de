import QDistIO

/// The storage a linear of a given shape takes under a candidate scheme, in bits, exactly as the
/// writers lay it out — what a size budget is charged before anything is written, so that the
/// written model's `bits_per_weight` (`qdist inspect`) is the plan's.
///
/// compressed-tensors `pack-quantized` (FORMATS.md §5): `weight_packed` int32 words of ⌊32/b⌋
/// codes along each row; `weight_scale` (out, groups) — or one value per tensor — in the scale
/// dtype; `weight_shape` two int64; asymmetric adds `weight_zero_point` packed along the output
/// (⌈out/⌊32/b⌋⌉ words per group). Dynamic act-order (a `weight_g_idx`) is not costed: qdist
/// writes compressed-tensors with static act-order only.
/// GGUF: the block type's bytes per block of its row (`GGMLType.traits`). Biases are not counted
/// (they stay in float whatever the scheme).
public enum SchemeStorageCost {
    /// Why a scheme cannot be costed (the layout is not one the budget plans over).
    public struct Unsupported: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// Bits of one (out, in) linear in compressed-tensors `pack-quantized` with `scheme`;
    /// `scaleBits` is the scale dtype's width (16 for fp16/bf16 scales).
    public static func compressedTensorsBits(_ scheme: QuantizedLinearScheme, outFeatures out: Int, inFeatures inF: Int,
                                             scaleBits: Int = 16) throws -> Int {
        guard scheme.codeType == .int, scheme.inputActivations == nil, !scheme.fractionalZeros, !scheme.actOrder,
              (1...8).contains(scheme.numBits) else {
            throw Unsupported(description: "\(scheme): only weight-only integer schemes of 1–8 bits without a g_idx are costed (pack-quantized)")
        }
        let b = scheme.numBits
        let words = { (n: Int) throws -> Int in try PackedInt32.packedLength(n, bits: b, layout: .wordAligned) }
        let groups: Int
        if scheme.perTensor {
            groups = 0
        } else if let g = scheme.groupSize {
            guard g > 0 else { throw Unsupported(description: "\(scheme): group size must be positive") }
            groups = (inF + g - 1) / g
        } else {
            groups = 1
        }
        var bits = try out * words(inF) * 32                       // weight_packed
        bits += (scheme.perTensor ? 1 : out * groups) * scaleBits  // weight_scale
        bits += 2 * 64                                          // weight_shape
        if !scheme.symmetric { bits += try words(out) * max(groups, 1) * 32 }  // weight_zero_point
        return bits
    }

    /// Bits of one (out, in) linear stored as ggml `type` (rows of `in` in whole blocks).
    public static func ggufBits(_ type: GGMLType, outFeatures out: Int, inFeatures inF: Int) throws -> Int {
        let t = type.traits
        guard inF % t.blockSize == 0 else {
            throw Unsupported(description: "\(t.name) needs rows that are a multiple of \(t.blockSize); this linear's are \(inF)")
        }
        return out * (inF / t.blockSize) * t.typeSize * 8
    }
}
