import Foundation
import QDistIO
import QDistTensor

/// Opens a quantized checkpoint: detects the format from `config.json`'s `quantization_config`
/// (compressed-tensors `pack-quantized` or `int-quantized`, or GPTQ v1/v2), finds the quantized
/// linears by their tensors (`<m>.weight_packed`, `<m>.weight_scale` of an int-quantized group,
/// `<m>.qweight`), and rebuilds each as `QuantizedLinearWeights` — plus, for W8A8 layers, the
/// input activation parameters (`inputActivations(_:)`).
///
/// Everything about the configuration is checked at open, so an AWQ, FP8, Marlin or 5-bit
/// checkpoint fails at once with one line naming `config.json` and the key (e.g.
/// `config.json: key "quantization_config.quant_method": unsupported quantization method "awq" …`)
/// rather than part way through loading. Tensors are read only when a linear is asked for.
public struct QuantizedCheckpointReader {
    /// The checkpoint formats qdist reads.
    public enum Format: Sendable, Equatable {
        case compressedTensors
        case gptq(GPTQFormat.CheckpointFormat)
    }

    enum Arguments {
        case compressedTensors(CompressedTensorsFormat.WeightArguments)
        case compressedTensorsInt(CompressedTensorsFormat.WeightArguments, input: InputActivationScheme?)
        case gptq(GPTQFormat.Configuration)
    }

    public let format: Format
    /// Where tensors come from.
    public let source: any StoredTensorSource
    /// Module paths of the quantized linears, in checkpoint order.
    public let modules: [String]
    private let arguments: [String: Arguments]

    /// Reads `quantizationConfig` (`nil` → returns `nil`: not quantized); `configPath` names the
    /// file in errors.
    public init?(quantizationConfig: JSONValue?, configPath: String, source: any StoredTensorSource) throws(QDistIOError) {
        guard let quantizationConfig, !quantizationConfig.isNull else { return nil }
        let f = try JSONFields(quantizationConfig, path: configPath, keyPath: "quantization_config")
        let method = try f.string("quant_method")
        var args: [String: Arguments] = [:]
        switch method {
        case "gptq":
            let config = try GPTQFormat.Configuration(f)
            format = .gptq(config.checkpointFormat)
            for name in source.tensorNames where name.hasSuffix(".qweight") {
                args[String(name.dropLast(".qweight".count))] = .gptq(config)
            }
        case "compressed-tensors":
            let config = try CompressedTensorsFormat.Configuration(f)
            format = .compressedTensors
            for name in source.tensorNames where name.hasSuffix(".weight_packed") {
                let module = String(name.dropLast(".weight_packed".count))
                guard let group = config.group(for: module) else {
                    throw f.error("config_groups", "no config group targets \(module) (it has weight_packed), or ignore lists it")
                }
                guard let weights = group.weights else {
                    throw f.error("config_groups.\(group.name).weights", "absent, yet \(module) has quantized weights")
                }
                args[module] = .compressedTensors(weights)
            }
            // int-quantized layers keep the name `<m>.weight` (int8 codes); `weight_scale` marks them.
            for name in source.tensorNames where name.hasSuffix(".weight_scale") {
                let module = String(name.dropLast(".weight_scale".count))
                guard args[module] == nil, let group = config.group(for: module),
                      group.format == CompressedTensorsFormat.intQuantizedFormatName else { continue }
                guard let weights = group.weights else {
                    throw f.error("config_groups.\(group.name).weights", "absent, yet \(module) has quantized weights")
                }
                args[module] = .compressedTensorsInt(weights, input: group.inputActivations)
            }
        default:
            throw f.error("quant_method", "unsupported quantization method \(JSONSerializer.quoted(method)) (qdist reads \"gptq\" and \"compressed-tensors\" pack-quantized)")
        }
        self.source = source
        self.arguments = args
        self.modules = args.keys.sorted(by: QuantizedCheckpointTensors.naturalOrder)
    }

    /// The reader for a model folder whose configuration is `config`; `nil` when the folder is
    /// not quantized.
    public static func open(folder: CheckpointFolder, config: ModelConfiguration) throws(QDistIOError) -> QuantizedCheckpointReader? {
        let configPath = folder.configURL?.path ?? folder.folder.appendingPathComponent("config.json").path
        return try QuantizedCheckpointReader(quantizationConfig: config.quantizationConfig, configPath: configPath, source: folder)
    }

    /// True when `module` is a quantized linear of this checkpoint.
    public func isQuantized(_ module: String) -> Bool { arguments[module] != nil }

    /// The module whose dequantized weight `tensorName` names (`<m>.weight` of a quantized
    /// linear), else `nil`.
    public func quantizedModule(forWeight tensorName: String) -> String? {
        guard tensorName.hasSuffix(".weight") else { return nil }
        let module = String(tensorName.dropLast(".weight".count))
        return arguments[module] == nil ? nil : module
    }

    /// The quantized linear `module`, read and unpacked.
    public func linear(_ module: String) throws -> QuantizedLinearWeights {
        switch arguments[module] {
        case .compressedTensors(let a)?: return try CompressedTensorsFormat.readLinear(module: module, arguments: a, source: source)
        case .compressedTensorsInt(let a, _)?: return try CompressedTensorsFormat.readIntQuantizedLinear(module: module, arguments: a, source: source)
        case .gptq(let c)?: return try GPTQFormat.readLinear(module: module, config: c, source: source)
        case nil:
            throw QDistIOError(.notFound, path: source.sourcePath, "\(JSONSerializer.quoted(module)) is not a quantized linear of this checkpoint")
        }
    }

    /// How `module`'s input activations are quantized (scheme, and the stored scale when
    /// static); nil for weight-only layers and for modules that are not quantized linears.
    public func inputActivations(_ module: String) throws -> InputActivationParameters? {
        guard case .compressedTensorsInt(_, let scheme?)? = arguments[module] else { return nil }
        return try CompressedTensorsFormat.readInputActivations(module: module, scheme: scheme, source: source)
    }

    /// Every quantized linear, in checkpoint order.
    public func linears() throws -> [QuantizedLinearWeights] { try modules.map(linear) }
}
