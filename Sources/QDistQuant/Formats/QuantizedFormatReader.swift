import Foundation
import QDistIO
import QDistTensor

/// How one checkpoint format is read back: the `quant_method` of config.json it answers to,
/// and, from its `quantization_config`, the quantized linears of a folder with how to read each.
/// `QuantizedCheckpointReader` dispatches through `QuantizedFormatReaders.all`; the write side's
/// format table (QDistPipeline's `CheckpointFormatTable`) names each row's reader, so a new
/// format is one reader here plus one row there.
public protocol QuantizedFormatReader: Sendable {
    /// config.json's `quantization_config.quant_method`.
    var quantMethod: String { get }
    /// Parses `fields` (throwing one line naming the key on anything this reader cannot load)
    /// and finds the quantized linears among `tensorNames`.
    func open(_ fields: JSONFields, tensorNames: [String]) throws(QDistIOError) -> OpenedQuantizedFormat
}

/// What a format reader found in one checkpoint.
public struct OpenedQuantizedFormat: Sendable {
    /// The layout in words (`compressed-tensors`, `gptq v2`), for reports and tests.
    public var description: String
    /// Each quantized linear's module path and its reader.
    public var modules: [String: QuantizedModuleReader]

    public init(description: String, modules: [String: QuantizedModuleReader]) {
        (self.description, self.modules) = (description, modules)
    }
}

/// Reads one quantized linear (and, for W8A8 layers, its input activation parameters).
public struct QuantizedModuleReader: Sendable {
    let linear: @Sendable (_ module: String, _ source: any StoredTensorSource) throws -> QuantizedLinearWeights
    let inputActivations: @Sendable (_ module: String, _ source: any StoredTensorSource) throws -> InputActivationParameters?

    public init(linear: @escaping @Sendable (String, any StoredTensorSource) throws -> QuantizedLinearWeights,
                inputActivations: @escaping @Sendable (String, any StoredTensorSource) throws -> InputActivationParameters? = { _, _ in nil }) {
        (self.linear, self.inputActivations) = (linear, inputActivations)
    }
}

/// Every format qdist reads.
public enum QuantizedFormatReaders {
    public static let all: [any QuantizedFormatReader] = [CompressedTensorsReader(), GPTQReader(), FloatZeroReader(), BitsAndBytesReader()]

    /// The reader answering to `quantMethod`.
    public static func reader(for quantMethod: String) -> (any QuantizedFormatReader)? {
        all.first { $0.quantMethod == quantMethod }
    }
}

/// compressed-tensors `pack-quantized` (`<m>.weight_packed`), `int-quantized` (`<m>.weight`
/// int8 codes marked by `<m>.weight_scale` in an int-quantized group) and `float-quantized`
/// (`<m>.weight` FP8 E4M3 in a float-quantized group).
public struct CompressedTensorsReader: QuantizedFormatReader {
    public var quantMethod: String { "compressed-tensors" }

    public init() {}

    public func open(_ f: JSONFields, tensorNames: [String]) throws(QDistIOError) -> OpenedQuantizedFormat {
        let config = try CompressedTensorsFormat.Configuration(f)
        var modules: [String: QuantizedModuleReader] = [:]
        for name in tensorNames where name.hasSuffix(".weight_packed") {
            let module = String(name.dropLast(".weight_packed".count))
            guard let group = config.group(for: module) else {
                throw f.error("config_groups", "no config group targets \(module) (it has weight_packed), or ignore lists it")
            }
            guard let weights = group.weights else {
                throw f.error("config_groups.\(group.name).weights", "absent, yet \(module) has quantized weights")
            }
            let input = group.inputActivations
            modules[module] = QuantizedModuleReader(
                linear: { m, source in try CompressedTensorsFormat.readLinear(module: m, arguments: weights, source: source) },
                inputActivations: { m, source in
                    guard let input else { return nil }
                    return try CompressedTensorsFormat.readInputActivations(module: m, scheme: input, source: source)
                })
        }
        for name in tensorNames where name.hasSuffix(".weight_scale") {
            let module = String(name.dropLast(".weight_scale".count))
            guard modules[module] == nil, let group = config.group(for: module),
                  group.format != CompressedTensorsFormat.formatName else { continue }
            guard let weights = group.weights else {
                throw f.error("config_groups.\(group.name).weights", "absent, yet \(module) has quantized weights")
            }
            let input = group.inputActivations
            let isFloat = group.format == CompressedTensorsFormat.floatQuantizedFormatName
            guard isFloat == weights.isFloat else {
                throw f.error("config_groups.\(group.name).format", "\(group.format) with \(weights.isFloat ? "float" : "int") weights")
            }
            modules[module] = QuantizedModuleReader(
                linear: { m, source in
                    isFloat ? try CompressedTensorsFormat.readFloatQuantizedLinear(module: m, arguments: weights, source: source)
                        : try CompressedTensorsFormat.readIntQuantizedLinear(module: m, arguments: weights, source: source)
                },
                inputActivations: { m, source in
                    guard let input else { return nil }
                    return try CompressedTensorsFormat.readInputActivations(module: m, scheme: input, source: source)
                })
        }
        return OpenedQuantizedFormat(description: quantMethod, modules: modules)
    }
}

/// AutoGPTQ / GPTQModel `qweight, qzeros, scales, g_idx`, checkpoint format v1 or v2.
public struct GPTQReader: QuantizedFormatReader {
    public var quantMethod: String { "gptq" }

    public init() {}

    public func open(_ f: JSONFields, tensorNames: [String]) throws(QDistIOError) -> OpenedQuantizedFormat {
        let config = try GPTQFormat.Configuration(f)
        var modules: [String: QuantizedModuleReader] = [:]
        for name in tensorNames where name.hasSuffix(".qweight") {
            modules[String(name.dropLast(".qweight".count))] = QuantizedModuleReader { m, source in
                try GPTQFormat.readLinear(module: m, config: config, source: source)
            }
        }
        return OpenedQuantizedFormat(description: "gptq \(config.checkpointFormat.rawValue)", modules: modules)
    }
}
