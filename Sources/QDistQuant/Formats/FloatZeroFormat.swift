import QDistIO
import QDistTensor

/// qdist's float-zero layout (`quant_method: "qdist"`, `format: "pack-quantized-float-zero"`):
/// compressed-tensors' pack-quantized tensors with the one thing that format cannot hold, float
/// zero points — what HQQ produces (its optimiser moves each zero point off the integer grid,
/// and rounding it back undoes most of the gain).
///
/// Per linear `<m>`: `<m>.weight_packed` I32 `(out, ceil(in/pf))` (unsigned codes, LSB first,
/// as pack-quantized), `<m>.weight_scale` in the model dtype `(out, groups)`,
/// `<m>.weight_zero_point` **F32** `(out, groups)` in code units (a weight is
/// `(code − zero)·scale`), `<m>.weight_shape` I64 `[out, in]`, the bias as is. The config is
/// compressed-tensors' (config groups, `ignore`) under another `quant_method`, so no tool that
/// cannot run float zero points mistakes the folder for one it can: qdist reads it (`eval`,
/// `generate`, `inspect`, `convert`, which dequantizes it to a float folder any tool loads).
public enum FloatZeroFormat {
    /// `quantization_config.quant_method`.
    public static let quantMethod = "qdist"
    /// `quantization_config.format`.
    public static let formatName = "pack-quantized-float-zero"

    /// The stored tensors of one linear with fractional zero points.
    public static func tensors(for linear: QuantizedLinearWeights, scaleDType: DType) throws(QuantizedFormatError) -> [String: StoredTensor] {
        guard let zeros = linear.fractionalZeroPoints else {
            throw QuantizedFormatError(linear.name, "the float-zero layout holds layers with float zero points (HQQ); write integer grids as compressed-tensors")
        }
        if let gs = linear.groupSize, linear.inFeatures % gs != 0 {
            throw QuantizedFormatError(linear.name, "group_size \(gs) does not divide in_features \(linear.inFeatures)")
        }
        let (out, inF, b, m) = (linear.outFeatures, linear.inFeatures, linear.numBits, linear.name)
        let width = try PackedInt32.packedLength(inF, bits: b, layout: .wordAligned, subject: m)
        var result: [String: StoredTensor] = [
            "\(m).weight_packed": .int32(try PackedInt32.pack(linear.codes, rows: out, columns: inF, bits: b, layout: .wordAligned, subject: m),
                                         shape: [out, width]),
            "\(m).weight_scale": StoredTensor(Tensor(shape: [out, linear.groupCount], scalars: linear.scales), as: scaleDType),
            "\(m).weight_zero_point": StoredTensor(Tensor(shape: [out, linear.groupCount], scalars: zeros), as: .f32),
            "\(m).weight_shape": .int64([Int64(out), Int64(inF)], shape: [2]),
        ]
        if let bias = linear.bias { result["\(m).bias"] = StoredTensor(bias, as: scaleDType) }
        return result
    }

    /// compressed-tensors' config for these schemes, relabelled: `quant_method: "qdist"` and the
    /// float-zero format, globally and in every group.
    public static func quantizationConfig(schemes: [(name: String, scheme: QuantizedLinearScheme)],
                                          options: CompressedTensorsFormat.Options) throws(QuantizedFormatError) -> JSONValue {
        guard case .object(var fields) = try CompressedTensorsFormat.quantizationConfig(schemes: schemes, options: options) else {
            throw QuantizedFormatError("float-zero", "no configuration to relabel")
        }
        for i in fields.indices {
            switch fields[i].key {
            case "quant_method": fields[i].value = .string(quantMethod)
            case "format": fields[i].value = .string(formatName)
            case "version": fields[i].value = "1"
            case "config_groups":
                guard case .object(var groups) = fields[i].value else { continue }
                for g in groups.indices {
                    guard case .object(var group) = groups[g].value else { continue }
                    for k in group.indices where group[k].key == "format" { group[k].value = .string(formatName) }
                    groups[g].value = .object(group)
                }
                fields[i].value = .object(groups)
            default: break
            }
        }
        return .object(fields)
    }
}

/// Reads the float-zero layout back (`quant_method: "qdist"`).
public struct FloatZeroReader: QuantizedFormatReader {
    public var quantMethod: String { FloatZeroFormat.quantMethod }

    public init() {}

    public func open(_ f: JSONFields, tensorNames: [String]) throws(QDistIOError) -> OpenedQuantizedFormat {
        let config = try CompressedTensorsFormat.Configuration(f, readable: [FloatZeroFormat.formatName])
        var modules: [String: QuantizedModuleReader] = [:]
        for name in tensorNames where name.hasSuffix(".weight_packed") {
            let module = String(name.dropLast(".weight_packed".count))
            guard let group = config.group(for: module), var weights = group.weights else {
                throw f.error("config_groups", "no config group with weights targets \(module) (it has weight_packed), or ignore lists it")
            }
            weights.fractionalZeros = true
            modules[module] = QuantizedModuleReader { [weights] m, source in
                try CompressedTensorsFormat.readLinear(module: m, arguments: weights, source: source)
            }
        }
        return OpenedQuantizedFormat(description: "qdist float-zero", modules: modules)
    }
}
