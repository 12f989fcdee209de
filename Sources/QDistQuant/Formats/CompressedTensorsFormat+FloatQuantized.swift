import QDistIO
import QDistTensor

/// compressed-tensors `float-quantized` (FP8 E4M3, FORMATS.md §10.3): what llm-compressor writes
/// for the `FP8` and `FP8_DYNAMIC` presets, and what vLLM's FP8 scheme and transformers +
/// compressed-tensors load.
///
/// Per linear `<m>`: `<m>.weight` F8_E4M3 `(out, in)`; `<m>.weight_scale` in the model dtype,
/// `[1]` per tensor or `(out, 1)` per channel (`absmax / 448`); for static activations
/// `<m>.input_scale` `[1]`; the bias passes through. A weight is `e4m3(code) · scale`.
extension CompressedTensorsFormat {
    /// The `format` value of FP8 layers.
    public static let floatQuantizedFormatName = "float-quantized"

    /// The float-quantized tensors of one FP8 linear (and its input scale, when static).
    static func floatQuantizedTensors(for linear: QuantizedLinearWeights, scaleDType: DType,
                                      input: InputActivationParameters?) throws(QuantizedFormatError) -> [String: StoredTensor] {
        let (out, inF, m) = (linear.outFeatures, linear.inFeatures, linear.name)
        guard linear.codeType == .float, linear.groupSize == nil else {
            throw QuantizedFormatError(m, "float-quantized holds FP8 weights per tensor or per channel")
        }
        let scales = linear.perTensor ? [linear.scales[0]] : linear.scales
        var result: [String: StoredTensor] = [
            "\(m).weight": StoredTensor(dtype: .f8E4M3, shape: [out, inF], bytes: linear.codes.map { UInt8(truncatingIfNeeded: $0) }),
            "\(m).weight_scale": StoredTensor(Tensor(shape: linear.perTensor ? [1] : [out, 1], scalars: scales), as: scaleDType),
        ]
        if let scale = input?.scale { result["\(m).input_scale"] = StoredTensor(Tensor(shape: [1], scalars: [scale]), as: scaleDType) }
        if let bias = linear.bias { result["\(m).bias"] = StoredTensor(bias, as: scaleDType) }
        return result
    }

    /// Reads `<module>.weight` (F8_E4M3) and its scale back.
    static func readFloatQuantizedLinear(module: String, arguments a: WeightArguments,
                                         source: any StoredTensorSource) throws -> QuantizedLinearWeights {
        let tensors = ModuleTensors(module: module, source: source, missingHint: "compressed-tensors float-quantized needs it")
        let fail = tensors.fail, load = tensors.load
        let weight = try load("weight")
        guard weight.dtype == .f8E4M3, weight.shape.count == 2, weight.shape[0] > 0, weight.shape[1] > 0 else {
            throw fail("weight", "expected F8_E4M3 [out, in], found \(weight.dtype.rawValue) \(weight.shape)")
        }
        let (out, inF) = (weight.shape[0], weight.shape[1])
        let scale = try load("weight_scale")
        guard scale.dtype.isFloatingPoint, scale.shape == (a.perTensor ? [1] : [out, 1]) || (a.perTensor && scale.shape == []) else {
            throw fail("weight_scale", "expected a float \(a.perTensor ? "[1]" : "[\(out), 1]"), found \(scale.dtype.rawValue) \(scale.shape)")
        }
        let values = scale.toTensor().scalars
        let bias = source.contains("\(module).bias") ? try source.storedTensor("\(module).bias").toTensor() : nil
        do {
            return try QuantizedLinearWeights(
                name: module, inFeatures: inF, outFeatures: out, numBits: 8, groupSize: nil,
                codes: weight.bytes.map { Int32($0) }, scales: a.perTensor ? [Float](repeating: values[0], count: out) : values,
                zeroPoints: nil, bias: bias, codeType: .float, perTensor: a.perTensor)
        } catch {
            throw QDistIOError(.config, path: source.sourcePath, error.description)
        }
    }
}
