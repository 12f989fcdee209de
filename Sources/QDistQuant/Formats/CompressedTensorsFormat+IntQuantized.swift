import QDistIO
import QDistTensor

/// compressed-tensors `int-quantized` (W8A8 int8, FORMATS.md §5.3): what llm-compressor writes
/// when a group quantizes input activations as well as int weights, and what vLLM's
/// `W8A8Int8` scheme loads.
///
/// Per linear `<m>`: `<m>.weight` I8 `(out, in)` holding the *signed* codes unpacked;
/// `<m>.weight_scale` in the model dtype `(out, groups)` (`(out, 1)` per channel);
/// `<m>.weight_zero_point` I8 `(out, groups)` only for asymmetric weights; `<m>.weight_g_idx`
/// I32 `[in]` with act-order groups; for static activations `<m>.input_scale` `[1]` in the
/// model dtype and, when asymmetric, `<m>.input_zero_point` I8 `[1]`; dynamic activations store
/// nothing. The bias passes through as `<m>.bias`.
extension CompressedTensorsFormat {
    /// The `format` value of W8A8 int layers.
    public static let intQuantizedFormatName = "int-quantized"

    /// The format a layer with `scheme` is written in: int-quantized when its activations are
    /// quantized, else pack-quantized (llm-compressor's per-module inference).
    static func format(of scheme: QuantizedLinearScheme) -> String {
        if scheme.codeType == .float { return floatQuantizedFormatName }
        // 8-bit weights with quantized inputs are int-quantized (vLLM's W8A8); narrower ones
        // (ternary W2A8) stay packed, their inputs quantized at run time all the same.
        return scheme.inputActivations == nil || scheme.numBits != 8 ? formatName : intQuantizedFormatName
    }

    /// The int-quantized tensors of one linear and its input parameters.
    static func intQuantizedTensors(for linear: QuantizedLinearWeights, scaleDType: DType,
                                    input: InputActivationParameters) throws(QuantizedFormatError) -> [String: StoredTensor] {
        let (out, inF, groups, m) = (linear.outFeatures, linear.inFeatures, linear.groupCount, linear.name)
        if let gs = linear.groupSize, inF % gs != 0 {
            throw QuantizedFormatError(m, "compressed-tensors needs in_features (\(inF)) divisible by group_size (\(gs))")
        }
        var result: [String: StoredTensor] = [
            "\(m).weight": int8(linear.signedCodes, shape: [out, inF]),
            "\(m).weight_scale": scaleTensor(linear, dtype: scaleDType),
        ]
        if let zeros = linear.signedZeroPoints {
            if let bad = zeros.first(where: { !(-128...127).contains($0) }) {
                throw QuantizedFormatError(m, "zero point \(bad) does not fit in int8")
            }
            result["\(m).weight_zero_point"] = int8(zeros, shape: [out, groups])
        }
        if let gIdx = linear.gIdx { result["\(m).weight_g_idx"] = .int32(gIdx, shape: [inF]) }
        if let scale = input.scale { result["\(m).input_scale"] = StoredTensor(Tensor(shape: [1], scalars: [scale]), as: scaleDType) }
        if let zero = input.zeroPoint { result["\(m).input_zero_point"] = int8([zero], shape: [1]) }
        if let bias = linear.bias { result["\(m).bias"] = StoredTensor(bias, as: scaleDType) }
        return result
    }

    /// Reads `<module>.weight` (I8 signed codes) and its companions back into our convention.
    static func readIntQuantizedLinear(module: String, arguments a: WeightArguments,
                                       source: any StoredTensorSource) throws -> QuantizedLinearWeights {
        let path = source.sourcePath
        let tensors = ModuleTensors(module: module, source: source, missingHint: "compressed-tensors int-quantized needs it")
        let fail = tensors.fail, load = tensors.load
        let weight = try load("weight")
        guard weight.dtype == .i8, weight.shape.count == 2, let codes = weight.integerValues else {
            throw fail("weight", "expected I8 [out, in] codes, found \(weight.dtype.rawValue) \(weight.shape)")
        }
        let (out, inF) = (weight.shape[0], weight.shape[1])
        let groups = QuantizedLinearWeights.groupCount(inFeatures: inF, groupSize: a.groupSize)
        let scale = try load("weight_scale")
        guard scale.dtype.isFloatingPoint, scale.shape == [out, groups] || (a.perTensor && scale.elementCount == 1) else {
            throw fail("weight_scale", "expected a float [\(out), \(groups)], found \(scale.dtype.rawValue) \(scale.shape)")
        }
        var zeros: [Int32]?
        if !a.symmetric {
            guard !a.perTensor else { throw fail("weight_zero_point", "asymmetric per-tensor weights are not supported") }
            let zp = try load("weight_zero_point")
            guard zp.shape == [out, groups], let z = zp.integerValues else {
                throw fail("weight_zero_point", "expected an integer [\(out), \(groups)], found \(zp.dtype.rawValue) \(zp.shape)")
            }
            zeros = z.map { Int32($0) }
        }
        var gIdx: [Int32]?
        if source.contains("\(module).weight_g_idx") {
            let g = try load("weight_g_idx")
            guard let values = g.integerValues, g.shape == [inF] else {
                throw fail("weight_g_idx", "expected an integer [\(inF)], found \(g.dtype.rawValue) \(g.shape)")
            }
            if !values.contains(-1) { gIdx = values.map { Int32($0) } }
        }
        let bias = source.contains("\(module).bias") ? try source.storedTensor("\(module).bias").toTensor() : nil
        do {
            return try QuantizedLinearWeights(name: module, inFeatures: inF, outFeatures: out, numBits: a.numBits, groupSize: a.groupSize,
                                              signedCodes: codes.map { Int32($0) },
                                              scales: a.perTensor ? [Float](repeating: scale.toTensor().scalars[0], count: out) : scale.toTensor().scalars,
                                              signedZeroPoints: zeros, gIdx: gIdx, bias: bias, perTensor: a.perTensor)
        } catch {
            throw QDistIOError(.config, path: path, error.description)
        }
    }

    /// The input parameters of `module`: the scheme, and for static schemes `input_scale` (and
    /// `input_zero_point`) read from the checkpoint.
    static func readInputActivations(module: String, scheme: InputActivationScheme,
                                     source: any StoredTensorSource) throws -> InputActivationParameters {
        let path = source.sourcePath
        func fail(_ tensor: String, _ message: String) -> QDistIOError {
            QDistIOError(.config, path: path, "tensor \(JSONSerializer.quoted("\(module).\(tensor)")): \(message)")
        }
        var scale: Float?, zero: Int32?
        if !scheme.dynamic {
            guard source.contains("\(module).input_scale") else { throw fail("input_scale", "missing (static input_activations need it)") }
            let s = try source.storedTensor("\(module).input_scale")
            guard s.dtype.isFloatingPoint, s.elementCount == 1 else {
                throw fail("input_scale", "expected one float, found \(s.dtype.rawValue) \(s.shape)")
            }
            scale = s.toTensor().scalars[0]
            if !scheme.symmetric {
                guard source.contains("\(module).input_zero_point") else {
                    throw fail("input_zero_point", "missing (static asymmetric input_activations need it)")
                }
                let z = try source.storedTensor("\(module).input_zero_point")
                guard z.elementCount == 1, let v = z.integerValues ?? (z.dtype.isFloatingPoint ? z.toTensor().scalars.map { Int($0) } : nil) else {
                    throw fail("input_zero_point", "expected one integer, found \(z.dtype.rawValue) \(z.shape)")
                }
                zero = Int32(v[0])
            }
        }
        do {
            return try InputActivationParameters(scheme: scheme, scale: scale, zeroPoint: zero, subject: module)
        } catch {
            throw QDistIOError(.config, path: path, error.description)
        }
    }

    /// An `I8` tensor of `values` (each must fit).
    static func int8(_ values: [Int32], shape: [Int]) -> StoredTensor {
        StoredTensor(dtype: .i8, shape: shape, bytes: values.map { UInt8(bitPattern: Int8($0)) })
    }
}

extension InputActivationScheme {
    /// Parses a group's `input_activations` (compressed-tensors `QuantizationArgs`); anything
    /// qdist cannot run is a one-line error naming the key.
    init(_ f: JSONFields) throws(QDistIOError) {
        let type = try f.optionalString("type") ?? "int"
        guard type == "int" || type == "float" else {
            throw f.error("type", "\(JSONSerializer.quoted(type)) activations are not supported (qdist reads \"int\" and \"float\")")
        }
        let bits = try f.optionalInt("num_bits") ?? 8
        let symmetric = try f.optionalBool("symmetric") ?? true
        let strategyName = try f.optionalString("strategy") ?? "tensor"
        guard let strategy = Strategy(rawValue: strategyName) else {
            throw f.error("strategy", "\(JSONSerializer.quoted(strategyName)) is not supported for activations (qdist reads \"tensor\" and \"token\")")
        }
        let dynamic: Bool
        switch f.value("dynamic") {
        case nil, .bool(false)?: dynamic = false
        case .bool(true)?: dynamic = true
        default: throw f.error("dynamic", "only true or false are supported")
        }
        self.init(numBits: bits, symmetric: symmetric, strategy: strategy, dynamic: dynamic, observer: try f.optionalString("observer"),
                  type: type == "float" ? .float : .int)
        if let p = problem { throw f.error(strategy == .token && !dynamic ? "dynamic" : (type == "float" && !symmetric ? "symmetric" : "num_bits"), p) }
    }
}
