import QDistIO
import QDistTensor

/// The GPTQ checkpoint format of AutoGPTQ / GPTQModel, read by transformers, optimum and vLLM
/// (FORMATS.md §4).
///
/// Per quantized linear `<m>`: `<m>.qweight` I32 `(in·b/32, out)` — codes packed along the
/// input dim as one LSB-first bit stream (3-bit codes straddle words); `<m>.qzeros` I32
/// `(groups, out·b/32)` — zero points packed along the output dim, stored as `zero − 1` in the
/// v1 `"gptq"` format and as `zero` in `"gptq_v2"`; `<m>.scales` F16 `(groups, out)`;
/// `<m>.g_idx` I32 `[in]` (always written, `i / group_size` without act-order); `<m>.bias` F16.
///
/// GPTQ carries a shorter last group (`groups = ceil(in / group_size)`) and any act-order map.
/// It cannot carry `in·b` or `out·b` that are not multiples of 32 (2/4/8-bit: in and out
/// multiples of 32/b; 3-bit: multiples of 32), nor — in v1 — an asymmetric zero point of 0,
/// which `zero − 1` would turn into −1 and corrupt the neighbouring zero points (the bug v2
/// fixes); each is a one-line error naming the layer. The config is global, so every layer must
/// share bits, symmetry and group size.
public enum GPTQFormat {
    /// How zero points are stored (`checkpoint_format`).
    public enum CheckpointFormat: String, Sendable, Equatable {
        /// `"gptq"`: stored zero = zero − 1 (AutoGPTQ; what every loader expects by default).
        case v1 = "gptq"
        /// `"gptq_v2"`: stored zero = zero (GPTQModel's internal format).
        case v2 = "gptq_v2"
    }

    /// Config-level choices that are not in the weights (`quantize_config` keys).
    public struct Options: Sendable {
        public var checkpointFormat: CheckpointFormat
        /// Dtype of `scales` and biases; loaders' kernels expect F16.
        public var scaleDType: DType
        /// `desc_act`; `nil` says true exactly when some layer has an act-order `g_idx`.
        public var descAct: Bool?
        public var dampPercent: Double
        public var staticGroups: Bool
        public var trueSequential: Bool

        public init(checkpointFormat: CheckpointFormat = .v1, scaleDType: DType = .f16, descAct: Bool? = nil,
                    dampPercent: Double = 0.01, staticGroups: Bool = false, trueSequential: Bool = true) {
            self.checkpointFormat = checkpointFormat
            self.scaleDType = scaleDType
            self.descAct = descAct
            self.dampPercent = dampPercent
            self.staticGroups = staticGroups
            self.trueSequential = trueSequential
        }
    }

    /// The whole checkpoint: packed tensors for `linears`, `otherTensors` passed through, and
    /// the `quantization_config`.
    public static func write(_ linears: [QuantizedLinearWeights], otherTensors: [String: StoredTensor],
                             options: Options = Options()) throws(QuantizedFormatError) -> QuantizedCheckpointTensors {
        let config = try quantizationConfig(schemes: QuantizedCheckpointTensors.schemes(linears), options: options)
        var produced: [(name: String, tensors: [String: StoredTensor])] = []
        for linear in linears { produced.append((linear.name, try tensors(for: linear, options: options))) }
        return try QuantizedCheckpointTensors.assemble(linears: produced, otherTensors: otherTensors, quantizationConfig: config)
    }

    /// Checks that GPTQ (in `format`) can carry `linear` (see the type's documentation).
    public static func validate(_ linear: QuantizedLinearWeights, format: CheckpointFormat) throws(QuantizedFormatError) {
        func fail(_ m: String) -> QuantizedFormatError { QuantizedFormatError(linear.name, m) }
        guard linear.fractionalZeroPoints == nil, linear.codeType == .int else {
            throw fail("GPTQ stores integer codes and zero points; this layer has \(linear.codeType == .float ? "FP8 codes" : "float zero points (HQQ)")")
        }
        let b = linear.numBits, unit = b == 3 ? 32 : 32 / b
        guard linear.inFeatures % unit == 0, linear.outFeatures % unit == 0 else {
            throw fail("GPTQ \(b)-bit packing needs in_features and out_features divisible by \(unit), got (\(linear.outFeatures), \(linear.inFeatures))")
        }
        guard let zeros = linear.zeroPoints else { return }
        let limit: Int32 = format == .v1 ? 1 << b : (1 << b) - 1
        if format == .v1, zeros.contains(0) {
            throw fail("a zero point of 0 cannot be stored in GPTQ v1 (\"gptq\" stores zero − 1); write checkpoint_format \"gptq_v2\", or quantize with zero points ≥ 1")
        }
        if let bad = zeros.first(where: { $0 > limit }) {
            throw fail("zero point \(bad) cannot be stored in GPTQ \(format.rawValue) (\(b) bits)")
        }
    }

    /// The stored tensors of one linear, named `<module>.qweight` etc.
    public static func tensors(for linear: QuantizedLinearWeights, options: Options = Options()) throws(QuantizedFormatError) -> [String: StoredTensor] {
        try validate(linear, format: options.checkpointFormat)
        let (out, inF, b, groups, m) = (linear.outFeatures, linear.inFeatures, linear.numBits, linear.groupCount, linear.name)
        // qweight: pack each output row's codes along in, then put in first: (in·b/32, out).
        let rowWords = try PackedInt32.packedLength(inF, bits: b, layout: .bitStream, subject: m)
        let byRow = try PackedInt32.pack(linear.codes, rows: out, columns: inF, bits: b, layout: .bitStream, subject: m)
        // qzeros: (groups, out) packed along out.
        let offset: Int32 = options.checkpointFormat == .v1 ? 1 : 0
        let stored = PackedInt32.transpose(linear.effectiveZeroPoints, rows: out, columns: groups).map { $0 - offset }
        let zeroWords = try PackedInt32.packedLength(out, bits: b, layout: .bitStream, subject: m)
        let qzeros = try PackedInt32.pack(stored, rows: groups, columns: out, bits: b, layout: .bitStream, subject: m)
        let scales = PackedFloats.transpose(linear.scales, rows: out, columns: groups)
        var result: [String: StoredTensor] = [
            "\(m).qweight": .int32(PackedInt32.transpose(byRow, rows: out, columns: rowWords), shape: [rowWords, out]),
            "\(m).qzeros": .int32(qzeros, shape: [groups, zeroWords]),
            "\(m).scales": StoredTensor(Tensor(shape: [groups, out], scalars: scales), as: options.scaleDType),
            "\(m).g_idx": .int32(linear.effectiveGIdx, shape: [inF]),
        ]
        if let bias = linear.bias { result["\(m).bias"] = StoredTensor(bias, as: options.scaleDType) }
        return result
    }

    /// The `quantization_config` (AutoGPTQ's `quantize_config` keys, which transformers and
    /// vLLM read) for layers with these schemes; they must all share bits, symmetry and group size.
    public static func quantizationConfig(schemes: [(name: String, scheme: QuantizedLinearScheme)],
                                          options: Options = Options()) throws(QuantizedFormatError) -> JSONValue {
        guard let first = schemes.first else { throw QuantizedFormatError("gptq", "no quantized linear layers to describe") }
        for (name, s) in schemes where (s.numBits, s.symmetric, s.groupSize) != (first.scheme.numBits, first.scheme.symmetric, first.scheme.groupSize) {
            throw QuantizedFormatError(name, "GPTQ has one config for all layers: \(s) differs from \(first.name)'s \(first.scheme)")
        }
        let s = first.scheme
        return [
            "bits": .integer(s.numBits),
            "group_size": .integer(s.groupSize ?? -1),
            "damp_percent": .number(options.dampPercent),
            "desc_act": .bool(options.descAct ?? schemes.contains { $0.scheme.actOrder }),
            "static_groups": .bool(options.staticGroups),
            "sym": .bool(s.symmetric),
            "true_sequential": .bool(options.trueSequential),
            "lm_head": false,
            "quant_method": "gptq",
            "checkpoint_format": .string(options.checkpointFormat.rawValue),
            "model_name_or_path": nil,
            "model_file_base_name": nil,
            "meta": ["quantizer": ["qdist"]],
        ]
    }
}

/// Float matrix helpers for the format writers.
enum PackedFloats {
    /// The transpose of a row-major `(rows, columns)` Float matrix.
    static func transpose(_ m: [Float], rows: Int, columns: Int) -> [Float] {
        var out = [Float](repeating: 0, count: m.count)
        for r in 0..<rows { for c in 0..<columns { out[c * rows + r] = m[r * columns + c] } }
        return out
    }
}
