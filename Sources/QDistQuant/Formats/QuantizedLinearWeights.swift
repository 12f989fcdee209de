import QDistIO
import QDistTensor

/// One quantized `nn.Linear` as the checkpoint formats see it: integer codes on a uniform grid,
/// a scale (and, for asymmetric grids, a zero point) per output row and input group, an
/// optional act-order group map, and the bias.
///
/// **The one code convention** (every format converts to and from it at its boundary):
/// codes are *unsigned*, `0 ... 2^b − 1`, and a weight is `scale · (code − zero)`, where `zero`
/// is `zeroPoints[o][g]` for an asymmetric grid and the implicit midpoint `2^(b−1)` for a
/// symmetric one (`zeroPoints == nil`). This is GPTQ's own convention (quant.py), and it is
/// also what both packings store bit for bit: compressed-tensors' signed code `q` packs as
/// `q + 2^(b−1)`, which is our code. Use `init(signedCodes:…)` for a quantizer that thinks in
/// compressed-tensors' signed range `−2^(b−1) ... 2^(b−1) − 1` with signed zero points.
///
/// Groups run along the input dimension: column `i` belongs to group `gIdx[i]` when an act-order
/// map is given, else `i / groupSize` (`groupSize == nil` is per channel: one group). The group
/// count is `ceil(inFeatures / groupSize)`, so a shorter last group is representable; whether a
/// format can carry it is the writer's business. A `gIdx` equal to the default map is stored as
/// `nil`, so two values describing the same weights compare equal.
///
/// **Fractional zero points** (`fractionalZeroPoints`, HQQ): an asymmetric grid whose zero
/// points are floats in the unsigned convention (`scale · (code − z)`, z not a whole number); then
/// `zeroPoints` is nil, and only a format that stores float zeros can carry the layer.
///
/// **FP8** (`codeType == .float`): codes are E4M3FN bit patterns `0 ... 255` (the NaN patterns
/// 0x7F/0xFF excluded), the grid is symmetric with no zero points, `numBits` is 8, and a weight is
/// `scale · e4m3(code)`. `perTensor` marks one scale for the whole weight (stored once, as
/// compressed-tensors' `strategy: tensor`); the scales array still holds it once per row.
///
/// **NF4 / FP4** (`codeType == .nf4 / .fp4`, bitsandbytes 4-bit): codes are code-book indices
/// `0 ... 15`, the grid is symmetric and grouped, `scales` are each group's absmax, and a weight
/// is `absmax · codeBook[code]`. With `doubleQuantizedAbsmax` the absmaxes are read back through
/// QLoRA's double quantization of the whole weight's `scales` (`effectiveScales`); `scales` keep
/// the exact values the codes were chosen with, so row blocks can be joined before compressing.
///
/// **ggml blocks** (`ggml != nil`, GGUF output): the rows are stored as llama.cpp encodes them —
/// one ggml block type, `outFeatures × type.byteCount(inFeatures)` bytes — because k-quant super
/// blocks (an fp16 `d`, packed 6-bit sub-block scales) are not a uniform grid with one scale per
/// group. Then `codes` and `scales` are empty, `numBits` and `groupSize` describe the type's codes
/// and sub-blocks for reports, and `dequantize()` is ggml's dequantizer. Only the gguf output
/// takes such layers; every other format's plan validation refuses them first.
///
/// Invalid values (a code out of range, a scale array of the wrong size, a group index past the
/// last group) are rejected by the initializer with a one-line `QuantizedFormatError` naming the
/// layer, since a packer would otherwise silently write garbage bits.
public struct QuantizedLinearWeights: Sendable, Equatable {
    /// The bit widths both checkpoint formats can pack.
    public static let supportedBits = [2, 3, 4, 8]

    /// Module path without `.weight`, e.g. `model.layers.0.self_attn.q_proj`.
    public let name: String
    public let inFeatures: Int
    public let outFeatures: Int
    /// Bits per code: 2, 3, 4 or 8.
    public let numBits: Int
    /// Input columns per group; `nil` is per channel (one group per output row).
    public let groupSize: Int?
    /// Unsigned codes, row-major `(outFeatures, inFeatures)`, each in `0 ... 2^numBits − 1`.
    public let codes: [Int32]
    /// Scales, row-major `(outFeatures, groupCount)`.
    public let scales: [Float]
    /// Unsigned zero points `(outFeatures, groupCount)`, each in `0 ... 2^numBits`; `nil` for a
    /// symmetric grid (zero `2^(numBits−1)`). `2^numBits` only arises reading a GPTQ v1 file.
    public let zeroPoints: [Int32]?
    /// Group of each input column (`g_idx`), for act-order with dynamic groups; `nil` when it is
    /// the default `i / groupSize`.
    public let gIdx: [Int32]?
    /// The layer's bias `[outFeatures]`, when it has one.
    public let bias: Tensor?
    /// Integer grid codes or FP8 E4M3 bit patterns.
    public let codeType: QuantizationArgs.ValueType
    /// One scale for the whole weight (every row's scale is the same value).
    public let perTensor: Bool
    /// Float zero points `(outFeatures, groupCount)` in the unsigned convention (HQQ); nil for
    /// integer or symmetric grids.
    public let fractionalZeroPoints: [Float]?
    /// NF4/FP4 only: the absmaxes (`scales`) are stored double-quantized (FORMATS.md §6.4).
    public let doubleQuantizedAbsmax: Bool
    /// The rows as ggml blocks (GGUF), instead of codes and scales; nil for a uniform grid.
    public let ggml: GGMLRows?

    /// Rows of a linear encoded in one ggml block type, as a GGUF tensor stores them.
    public struct GGMLRows: Sendable, Equatable {
        public var type: GGMLType
        /// `rows × type.byteCount(elements: columns)` bytes, row after row.
        public var bytes: [UInt8]
        public init(type: GGMLType, bytes: [UInt8]) { (self.type, self.bytes) = (type, bytes) }
    }

    /// A linear stored as ggml blocks (see the type's documentation).
    public init(name: String, inFeatures: Int, outFeatures: Int, ggml: GGMLRows, bias: Tensor? = nil) throws(QuantizedFormatError) {
        func fail(_ message: String) -> QuantizedFormatError { QuantizedFormatError(name, message) }
        guard ggml.type.traits.isQuantized, ggml.type.canDequantize else { throw fail("\(ggml.type.traits.name) is not a ggml block type qdist reads") }
        let layout = GGMLBlockCodes.layout(ggml.type)
        guard inFeatures > 0, outFeatures > 0, let rowBytes = ggml.type.byteCount(elements: inFeatures),
              ggml.bytes.count == outFeatures * rowBytes else {
            throw fail("\(ggml.bytes.count) bytes of \(ggml.type.traits.name) do not hold (\(outFeatures), \(inFeatures)) weights")
        }
        if let bias, bias.shape != [outFeatures] { throw fail("bias has shape \(bias.shape), expected [\(outFeatures)]") }
        (self.name, self.inFeatures, self.outFeatures) = (name, inFeatures, outFeatures)
        // The ternary types' codes are 2-bit, one scale per block.
        numBits = layout?.bits ?? 2
        groupSize = layout?.subBlock ?? ggml.type.traits.blockSize
        (codes, scales, zeroPoints, gIdx) = ([], [], nil, nil)
        self.bias = bias
        (codeType, perTensor, fractionalZeroPoints, doubleQuantizedAbsmax) = (.int, false, nil, false)
        self.ggml = ggml
    }

    /// Validates and stores the parts (see the type's documentation for the convention).
    public init(name: String, inFeatures: Int, outFeatures: Int, numBits: Int, groupSize: Int?,
                codes: [Int32], scales: [Float], zeroPoints: [Int32]?, gIdx: [Int32]? = nil,
                bias: Tensor? = nil, codeType: QuantizationArgs.ValueType = .int, perTensor: Bool = false,
                fractionalZeroPoints: [Float]? = nil, doubleQuantizedAbsmax: Bool = false) throws(QuantizedFormatError) {
        func fail(_ message: String) -> QuantizedFormatError { QuantizedFormatError(name, message) }
        if codeType.fourBitType != nil {
            guard numBits == 4, zeroPoints == nil, fractionalZeroPoints == nil, gIdx == nil, groupSize != nil, !perTensor else {
                throw fail("\(codeType.rawValue) weights are 4-bit code-book indices with one absmax per group, without zero points or g_idx")
            }
        } else if doubleQuantizedAbsmax {
            throw fail("only nf4/fp4 absmaxes are double-quantized")
        }
        if let f = fractionalZeroPoints {
            guard zeroPoints == nil, codeType == .int else { throw fail("fractional zero points replace integer ones (int codes only)") }
            let expected = outFeatures * Self.groupCount(inFeatures: inFeatures, groupSize: groupSize)
            guard f.count == expected else { throw fail("\(f.count) fractional zero points, expected \(expected)") }
            if let bad = f.firstIndex(where: { !$0.isFinite }) { throw fail("fractional zero point \(f[bad]) at \(bad) is not finite") }
        }
        if codeType == .float {
            guard numBits == 8, zeroPoints == nil, gIdx == nil, groupSize == nil else {
                throw fail("FP8 weights are 8-bit, symmetric, per tensor or per channel, without g_idx")
            }
            if let bad = codes.firstIndex(where: { $0 & 0x7F == 0x7F }) {
                throw fail("FP8 code at (\(bad / max(inFeatures, 1)), \(bad % max(inFeatures, 1))) is NaN")
            }
        }
        if perTensor {
            guard groupSize == nil, let first = scales.first, scales.allSatisfy({ $0 == first }) else {
                throw fail("a per-tensor scale must be one value for every row")
            }
        }
        guard Self.supportedBits.contains(numBits) else {
            throw fail("num_bits \(numBits) is not supported (2, 3, 4 or 8)")
        }
        guard inFeatures > 0, outFeatures > 0 else {
            throw fail("shape (\(outFeatures), \(inFeatures)) must be positive")
        }
        if let groupSize, groupSize <= 0 { throw fail("group_size \(groupSize) must be positive (nil is per channel)") }
        let groups = Self.groupCount(inFeatures: inFeatures, groupSize: groupSize)
        let maxCode = Int32(1 << numBits) - 1
        guard codes.count == outFeatures * inFeatures else {
            throw fail("\(codes.count) codes for shape (\(outFeatures), \(inFeatures))")
        }
        if let bad = codes.firstIndex(where: { $0 < 0 || $0 > maxCode }) {
            throw fail("code \(codes[bad]) at (\(bad / inFeatures), \(bad % inFeatures)) is outside 0...\(maxCode) (codes are unsigned; see init(signedCodes:))")
        }
        guard scales.count == outFeatures * groups else {
            throw fail("\(scales.count) scales, expected (\(outFeatures), \(groups)) = \(outFeatures * groups)")
        }
        if let bad = scales.firstIndex(where: { !$0.isFinite }) {
            throw fail("scale \(scales[bad]) at (\(bad / groups), \(bad % groups)) is not finite")
        }
        if let zeroPoints {
            guard zeroPoints.count == outFeatures * groups else {
                throw fail("\(zeroPoints.count) zero points, expected (\(outFeatures), \(groups)) = \(outFeatures * groups)")
            }
            if let bad = zeroPoints.firstIndex(where: { $0 < 0 || $0 > maxCode + 1 }) {
                throw fail("zero point \(zeroPoints[bad]) at (\(bad / groups), \(bad % groups)) is outside 0...\(maxCode + 1)")
            }
        }
        var normalizedGIdx = gIdx
        if let gIdx {
            guard gIdx.count == inFeatures else { throw fail("g_idx has \(gIdx.count) entries for \(inFeatures) input features") }
            if let bad = gIdx.firstIndex(where: { $0 < 0 || Int($0) >= groups }) {
                throw fail("g_idx[\(bad)] = \(gIdx[bad]) is outside 0..<\(groups)")
            }
            if gIdx == Self.defaultGIdx(inFeatures: inFeatures, groupSize: groupSize) { normalizedGIdx = nil }
        }
        if let bias, bias.shape != [outFeatures] {
            throw fail("bias has shape \(bias.shape), expected [\(outFeatures)]")
        }
        self.name = name
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.numBits = numBits
        self.groupSize = groupSize
        self.codes = codes
        self.scales = scales
        self.zeroPoints = zeroPoints
        self.gIdx = normalizedGIdx
        self.bias = bias
        self.codeType = codeType
        self.perTensor = perTensor
        self.fractionalZeroPoints = fractionalZeroPoints
        self.doubleQuantizedAbsmax = doubleQuantizedAbsmax
        ggml = nil
    }

    /// From compressed-tensors' signed convention: codes in `−2^(b−1) ... 2^(b−1) − 1` and signed
    /// zero points (`nil` = symmetric, zero point 0); both are shifted by `+2^(b−1)`.
    public init(name: String, inFeatures: Int, outFeatures: Int, numBits: Int, groupSize: Int?,
                signedCodes: [Int32], scales: [Float], signedZeroPoints: [Int32]?, gIdx: [Int32]? = nil,
                bias: Tensor? = nil, perTensor: Bool = false) throws(QuantizedFormatError) {
        let offset: Int32 = (1...16).contains(numBits) ? Int32(1) << Int32(numBits - 1) : 0
        try self.init(name: name, inFeatures: inFeatures, outFeatures: outFeatures, numBits: numBits, groupSize: groupSize,
                      codes: signedCodes.map { $0 &+ offset }, scales: scales,
                      zeroPoints: signedZeroPoints.map { $0.map { $0 &+ offset } }, gIdx: gIdx, bias: bias, perTensor: perTensor)
    }

    /// `ceil(inFeatures / groupSize)`, or 1 per channel.
    public static func groupCount(inFeatures: Int, groupSize: Int?) -> Int {
        guard let groupSize, groupSize > 0 else { return 1 }
        return (inFeatures + groupSize - 1) / groupSize
    }

    /// The group map without act-order: `i / groupSize` (all zeros per channel).
    public static func defaultGIdx(inFeatures: Int, groupSize: Int?) -> [Int32] {
        guard let groupSize, groupSize > 0 else { return [Int32](repeating: 0, count: inFeatures) }
        return (0..<inFeatures).map { Int32($0 / groupSize) }
    }

    /// Scale (and zero point) columns per output row.
    public var groupCount: Int { Self.groupCount(inFeatures: inFeatures, groupSize: groupSize) }
    /// True when the grid is symmetric (no stored zero points).
    public var symmetric: Bool { zeroPoints == nil && fractionalZeroPoints == nil }
    /// The implicit zero of a symmetric grid, `2^(numBits−1)`.
    public var symmetricZero: Int32 { Int32(1) << Int32(numBits - 1) }
    /// The group of every input column (`gIdx`, or the default map).
    public var effectiveGIdx: [Int32] { gIdx ?? Self.defaultGIdx(inFeatures: inFeatures, groupSize: groupSize) }
    /// Zero points `(outFeatures, groupCount)` with the symmetric midpoint filled in.
    public var effectiveZeroPoints: [Int32] {
        zeroPoints ?? [Int32](repeating: symmetricZero, count: outFeatures * groupCount)
    }
    /// Codes in compressed-tensors' signed range (`code − 2^(b−1)`).
    public var signedCodes: [Int32] { codes.map { $0 - symmetricZero } }
    /// Zero points in compressed-tensors' signed range; `nil` when symmetric.
    public var signedZeroPoints: [Int32]? { zeroPoints.map { $0.map { $0 - symmetricZero } } }

    /// What a checkpoint's configuration must say about this layer.
    public var scheme: QuantizedLinearScheme {
        QuantizedLinearScheme(numBits: numBits, symmetric: symmetric, groupSize: groupSize, actOrder: gIdx != nil,
                              codeType: codeType, perTensor: perTensor, fractionalZeros: fractionalZeroPoints != nil,
                              doubleQuantized: doubleQuantizedAbsmax)
    }

    /// NF4/FP4 absmaxes double-quantized over the whole weight (`doubleQuantizedAbsmax`); nil
    /// otherwise.
    public var compressedAbsmax: DoubleQuantizedAbsmax? {
        doubleQuantizedAbsmax ? DoubleQuantizedAbsmax(compressing: scales) : nil
    }

    /// The scales a reader multiplies by: `scales`, or the double-quantized absmaxes read back.
    public var effectiveScales: [Float] { compressedAbsmax?.decompressed() ?? scales }

    /// The Float32 weight `(outFeatures, inFeatures)`: `scale · (code − zero)` per element.
    /// Exact for fp16/bf16 scales (an 11-bit mantissa times a ≤ 9-bit integer fits in Float32).
    public func dequantize() -> Tensor {
        if let ggml { return Tensor(shape: [outFeatures, inFeatures], scalars: ggml.type.dequantize(ggml.bytes)) }
        let groups = groupCount, columns = inFeatures
        let groupOf = effectiveGIdx.map(Int.init)
        let zeros = effectiveZeroPoints
        var out = [Float](repeating: 0, count: outFeatures * columns)
        if codeType == .float {
            let value = (0..<256).map { FloatBits.float(fromFP8E4M3: UInt8($0)) }
            for o in 0..<outFeatures {
                for i in 0..<columns { out[o * columns + i] = scales[o] * value[Int(codes[o * columns + i])] }
            }
            return Tensor(shape: [outFeatures, inFeatures], scalars: out)
        }
        if let book = codeType.fourBitType?.codeBook {
            let absmax = effectiveScales
            for o in 0..<outFeatures {
                for i in 0..<columns {
                    out[o * columns + i] = book[Int(codes[o * columns + i])] * absmax[o * groups + groupOf[i]]
                }
            }
            return Tensor(shape: [outFeatures, inFeatures], scalars: out)
        }
        if let f = fractionalZeroPoints {
            for o in 0..<outFeatures {
                for i in 0..<columns {
                    let g = o * groups + groupOf[i]
                    out[o * columns + i] = (Float(codes[o * columns + i]) - f[g]) * scales[g]
                }
            }
            return Tensor(shape: [outFeatures, inFeatures], scalars: out)
        }
        codes.withUnsafeBufferPointer { q in
            out.withUnsafeMutableBufferPointer { w in
                for o in 0..<outFeatures {
                    let row = o * columns, sRow = o * groups
                    for i in 0..<columns {
                        let g = sRow + groupOf[i]
                        w[row + i] = scales[g] * Float(q[row + i] - zeros[g])
                    }
                }
            }
        }
        return Tensor(shape: [outFeatures, inFeatures], scalars: out)
    }

    /// The same layer with scales (and bias) rounded through `dtype`, i.e. exactly what a reader
    /// gets back from a file that stores them as `dtype`.
    public func roundingScales(to dtype: DType) throws(QuantizedFormatError) -> QuantizedLinearWeights {
        if ggml != nil { return self }  // the blocks hold their own fp16 scales
        let rounded = StoredTensor(Tensor(shape: [scales.count], scalars: scales), as: dtype).toTensor().scalars
        return try QuantizedLinearWeights(name: name, inFeatures: inFeatures, outFeatures: outFeatures, numBits: numBits,
                                          groupSize: groupSize, codes: codes, scales: rounded, zeroPoints: zeroPoints,
                                          gIdx: gIdx, bias: bias.map { StoredTensor($0, as: dtype).toTensor() },
                                          codeType: codeType, perTensor: perTensor, fractionalZeroPoints: fractionalZeroPoints,
                                          doubleQuantizedAbsmax: doubleQuantizedAbsmax)
    }
}

/// The configuration-level facts of one quantized linear: what `quantization_config` records.
/// Layers with equal schemes share one compressed-tensors config group; GPTQ needs one for all.
public struct QuantizedLinearScheme: Sendable, Hashable, CustomStringConvertible {
    public var numBits: Int
    public var symmetric: Bool
    /// `nil` is per channel.
    public var groupSize: Int?
    /// True when the layer carries a non-default `g_idx` (act-order with dynamic groups).
    public var actOrder: Bool
    /// How the layer's input is quantized (W8A8); nil for weight-only layers.
    public var inputActivations: InputActivationScheme?
    /// Integer codes or FP8 E4M3.
    public var codeType: QuantizationArgs.ValueType
    /// One scale for the whole weight (`strategy: tensor`).
    public var perTensor: Bool
    /// Float zero points (HQQ).
    public var fractionalZeros: Bool
    /// NF4/FP4 absmaxes stored double-quantized.
    public var doubleQuantized: Bool

    public init(numBits: Int, symmetric: Bool, groupSize: Int?, actOrder: Bool, inputActivations: InputActivationScheme? = nil,
                codeType: QuantizationArgs.ValueType = .int, perTensor: Bool = false, fractionalZeros: Bool = false,
                doubleQuantized: Bool = false) {
        self.doubleQuantized = doubleQuantized
        self.fractionalZeros = fractionalZeros
        self.numBits = numBits
        self.symmetric = symmetric
        self.groupSize = groupSize
        self.actOrder = actOrder
        self.inputActivations = inputActivations
        self.codeType = codeType
        self.perTensor = perTensor
    }

    /// compressed-tensors' `strategy` of the weights.
    public var strategyName: String { groupSize != nil ? "group" : (perTensor ? "tensor" : "channel") }

    public var description: String {
        if codeType.fourBitType != nil {
            return "\(codeType.rawValue) block \(groupSize ?? 0)\(doubleQuantized ? " double-quantized absmax" : "")"
        }
        return (codeType == .float ? "fp8 e4m3 per-\(perTensor ? "tensor" : "channel")" :
        "\(numBits)-bit \(symmetric ? "sym" : (fractionalZeros ? "asym float-zero" : "asym")) \(groupSize.map { "group \($0)" } ?? (perTensor ? "per-tensor" : "per-channel"))\(actOrder ? " act-order" : "")")
            + (inputActivations.map { ", activations \($0)" } ?? "")
    }
}
