import QDistIO
import QDistTensor

/// compressed-tensors `pack-quantized` (what llm-compressor writes for W4A16 / W4A16_ASYM /
/// W8A16, and vLLM and transformers load), FORMATS.md §5.
///
/// Per quantized linear `<m>`: `<m>.weight_packed` I32 `(out, ceil(in/pf))` (codes packed along
/// the input dim, `pf = 32/b` per word, LSB first: the stored value is our unsigned code, i.e.
/// compressed-tensors' signed code + 2^(b−1)); `<m>.weight_scale` in the model dtype `(out,
/// groups)` (`(out, 1)` per channel); `<m>.weight_shape` I64 `[out, in]` (as
/// `torch.tensor(weight.shape)` makes it); for asymmetric grids `<m>.weight_zero_point` I32
/// `(ceil(out/pf), groups)`, packed along the *output* dim the same way; with act-order groups
/// `<m>.weight_g_idx` I32 `[in]`; the bias unchanged as `<m>.bias`.
///
/// compressed-tensors reshapes each row into `groups × group_size`, so it cannot carry a shorter
/// last group, and act-order groups must each hold exactly `group_size` columns; such layers are
/// rejected with a one-line error naming them (write them as GPTQ, or pick a dividing group size).
/// 2- and 3-bit layers pack (3-bit: 10 codes per word) and compressed-tensors decompresses them,
/// but vLLM's WNA16 kernels take only 4 and 8 bits.
///
/// Layers whose input activations are quantized (W8A8) are written `int-quantized` instead
/// (`CompressedTensorsFormat+IntQuantized.swift`); the config then names that format, per group
/// and globally (`mixed-precision` when both kinds occur).
public enum CompressedTensorsFormat {
    /// The compressed-tensors release whose layout this writer follows, checked by loading its
    /// outputs with that release's validators and compressors (pack-quantized and int-quantized
    /// rows: `CurrentStackLoadTests`, with transformers 5.23).
    public static let version = "0.20.1"
    /// The `format` value this writer and reader handle.
    public static let formatName = "pack-quantized"

    /// Config-level choices that are not in the weights.
    public struct Options: Sendable {
        /// Dtype of `weight_scale` and biases: the model's dtype (`DType.modelDType(torchDtype:)`).
        public var scaleDType: DType
        /// Module names (or `re:` regexes) left unquantized; every Linear not quantized must be
        /// listed, since a single group targets the class `Linear`.
        public var ignore: [String]
        /// Recorded in each group's `weights.observer` (`minmax`, `mse`, …).
        public var observer: String
        /// Records `actorder: "static"` for grouped layers without a `g_idx` (GPTQ ran in
        /// activation order but kept groups in column order, llm-compressor's default); the
        /// weights are stored the same either way.
        public var staticActOrder: Bool

        public init(scaleDType: DType = .bf16, ignore: [String] = ["lm_head"], observer: String = "minmax",
                    staticActOrder: Bool = false) {
            self.scaleDType = scaleDType
            self.ignore = ignore
            self.observer = observer
            self.staticActOrder = staticActOrder
        }
    }

    /// The whole checkpoint: packed tensors for `linears`, `otherTensors` passed through, and
    /// the `quantization_config`; linears named in `inputActivations` are written int-quantized
    /// with their activation parameters.
    public static func write(_ linears: [QuantizedLinearWeights], otherTensors: [String: StoredTensor],
                             options: Options = Options(),
                             inputActivations: [String: InputActivationParameters] = [:]) throws(QuantizedFormatError) -> QuantizedCheckpointTensors {
        var produced: [(name: String, tensors: [String: StoredTensor])] = []
        var schemes: [(name: String, scheme: QuantizedLinearScheme)] = []
        for linear in linears {
            let input = inputActivations[linear.name]
            produced.append((linear.name, try tensors(for: linear, scaleDType: options.scaleDType, input: input)))
            var scheme = linear.scheme
            scheme.inputActivations = input?.scheme
            schemes.append((linear.name, scheme))
        }
        let config = try quantizationConfig(schemes: schemes, options: options)
        return try QuantizedCheckpointTensors.assemble(linears: produced, otherTensors: otherTensors, quantizationConfig: config)
    }

    /// Checks that compressed-tensors can carry `linear` (see the type's documentation).
    public static func validate(_ linear: QuantizedLinearWeights) throws(QuantizedFormatError) {
        func fail(_ m: String) -> QuantizedFormatError { QuantizedFormatError(linear.name, m) }
        if linear.fractionalZeroPoints != nil {
            throw fail("compressed-tensors stores integer zero points; this layer has float ones (HQQ): write --format float-zero")
        }
        if let gs = linear.groupSize {
            guard linear.inFeatures % gs == 0 else {
                throw fail("compressed-tensors needs in_features (\(linear.inFeatures)) divisible by group_size (\(gs)): it cannot store a shorter last group (write GPTQ, or choose a dividing group size)")
            }
        }
        if let gIdx = linear.gIdx, let gs = linear.groupSize {
            var counts = [Int](repeating: 0, count: linear.groupCount)
            for g in gIdx { counts[Int(g)] += 1 }
            if let g = counts.firstIndex(where: { $0 != gs }) {
                throw fail("compressed-tensors act-order needs every group to hold group_size (\(gs)) columns; g_idx gives group \(g) \(counts[g])")
            }
        }
        if let zeros = linear.zeroPoints, let bad = zeros.first(where: { $0 >= Int32(1) << linear.numBits }) {
            throw fail("zero point \(bad) does not fit in \(linear.numBits) bits")
        }
    }

    /// The stored tensors of one linear, named `<module>.weight_packed` etc. — or, with `input`
    /// activation parameters, the int-quantized `<module>.weight`, `weight_scale`, `input_scale` ….
    public static func tensors(for linear: QuantizedLinearWeights, scaleDType: DType,
                               input: InputActivationParameters? = nil) throws(QuantizedFormatError) -> [String: StoredTensor] {
        if linear.codeType == .float { return try floatQuantizedTensors(for: linear, scaleDType: scaleDType, input: input) }
        if let input, linear.numBits == 8 {
            try validate(linear)
            return try intQuantizedTensors(for: linear, scaleDType: scaleDType, input: input)
        }
        try validate(linear)
        let (out, inF, b, groups, m) = (linear.outFeatures, linear.inFeatures, linear.numBits, linear.groupCount, linear.name)
        let packedWidth = try PackedInt32.packedLength(inF, bits: b, layout: .wordAligned, subject: m)
        let packed = try PackedInt32.pack(linear.codes, rows: out, columns: inF, bits: b, layout: .wordAligned, subject: m)
        var result: [String: StoredTensor] = [
            "\(m).weight_packed": .int32(packed, shape: [out, packedWidth]),
            "\(m).weight_scale": scaleTensor(linear, dtype: scaleDType),
            "\(m).weight_shape": .int64([Int64(out), Int64(inF)], shape: [2]),
        ]
        if let zeros = linear.zeroPoints {
            // (out, groups) packed along out: transpose, pack rows, transpose back.
            let height = try PackedInt32.packedLength(out, bits: b, layout: .wordAligned, subject: m)
            let byGroup = try PackedInt32.pack(PackedInt32.transpose(zeros, rows: out, columns: groups), rows: groups,
                                               columns: out, bits: b, layout: .wordAligned, subject: m)
            result["\(m).weight_zero_point"] = .int32(PackedInt32.transpose(byGroup, rows: groups, columns: height), shape: [height, groups])
        }
        if let gIdx = linear.gIdx { result["\(m).weight_g_idx"] = .int32(gIdx, shape: [inF]) }
        if let bias = linear.bias { result["\(m).bias"] = StoredTensor(bias, as: scaleDType) }
        if let scale = input?.scale { result["\(m).input_scale"] = StoredTensor(Tensor(shape: [1], scalars: [scale]), as: scaleDType) }
        if let zero = input?.zeroPoint { result["\(m).input_zero_point"] = int8([zero], shape: [1]) }
        return result
    }

    /// The `quantization_config` for layers with these schemes, as compressed-tensors'
    /// `ModelCompressor.update_config` writes it: one config group per distinct scheme
    /// (targets `["Linear"]` when there is one, else the exact module names).
    public static func quantizationConfig(schemes: [(name: String, scheme: QuantizedLinearScheme)],
                                          options: Options = Options()) throws(QuantizedFormatError) -> JSONValue {
        guard !schemes.isEmpty else { throw QuantizedFormatError("compressed-tensors", "no quantized linear layers to describe") }
        var distinct: [QuantizedLinearScheme] = []
        var members: [QuantizedLinearScheme: [String]] = [:]
        for (name, scheme) in schemes {
            if members[scheme] == nil { distinct.append(scheme) }
            members[scheme, default: []].append(name)
        }
        var groups: [(key: String, value: JSONValue)] = []
        for (i, scheme) in distinct.enumerated() {
            let targets: [JSONValue] = distinct.count == 1 ? ["Linear"] : members[scheme]!.map { .string($0) }
            groups.append((key: "group_\(i)", value: [
                "targets": .array(targets),
                "weights": weightsArguments(scheme, observer: options.observer, staticActOrder: options.staticActOrder),
                "input_activations": scheme.inputActivations?.compressedTensorsArguments ?? .null,
                "output_activations": nil,
                "format": .string(format(of: scheme)),
            ]))
        }
        let formats = Set(distinct.map(format(of:)))
        let globalFormat = formats.count == 1 ? formats.first! : "mixed-precision"
        return [
            "version": .string(version),
            "quant_method": "compressed-tensors",
            "sparsity_config": [:],
            "transform_config": [:],
            "config_groups": .object(groups),
            "kv_cache_scheme": nil,
            "format": .string(globalFormat),
            "quantization_status": "compressed",
            "global_compression_ratio": nil,
            "ignore": .array(options.ignore.map { .string($0) }),
        ]
    }

    /// `weight_scale`: `[1]` for a per-tensor scale, else `(out, groups)`, in the model dtype.
    static func scaleTensor(_ linear: QuantizedLinearWeights, dtype: DType) -> StoredTensor {
        linear.perTensor ? StoredTensor(Tensor(shape: [1], scalars: [linear.scales[0]]), as: dtype)
            : StoredTensor(Tensor(shape: [linear.outFeatures, linear.groupCount], scalars: linear.scales), as: dtype)
    }

    /// `QuantizationArgs.model_dump()` for a scheme (field order as the pydantic model's).
    static func weightsArguments(_ s: QuantizedLinearScheme, observer: String, staticActOrder: Bool) -> JSONValue {
        let actorder: JSONValue = s.actOrder ? "group" : (staticActOrder && s.groupSize != nil ? "static" : nil)
        return [
            "num_bits": .integer(s.numBits),
            "type": .string(s.codeType.rawValue),
            "symmetric": .bool(s.symmetric),
            "group_size": s.groupSize.map { .integer($0) } ?? .null,
            "strategy": .string(s.strategyName),
            "block_structure": nil,
            "dynamic": false,
            "actorder": actorder,
            "observer": .string(observer),
            "observer_kwargs": [:],
        ]
    }
}
