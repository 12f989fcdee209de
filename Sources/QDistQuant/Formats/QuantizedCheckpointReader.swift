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
    /// The layout in words (`compressed-tensors`, `gptq v1`, `gptq v2`).
    public let format: String
    /// Where tensors come from.
    public let source: any StoredTensorSource
    /// Module paths of the quantized linears, in checkpoint order.
    public let modules: [String]
    private let readers: [String: QuantizedModuleReader]

    /// Reads `quantizationConfig` (`nil` → returns `nil`: not quantized) with the reader of its
    /// `quant_method` in `QuantizedFormatReaders.all`; `configPath` names the file in errors.
    public init?(quantizationConfig: JSONValue?, configPath: String, source: any StoredTensorSource) throws(QDistIOError) {
        guard let quantizationConfig, !quantizationConfig.isNull else { return nil }
        // A pruned, unquantized model's compressed-tensors config (legacy sparse formats, read
        // through `SparseDecompressedTensors`) quantizes nothing.
        if CompressedTensorsSparsityConfig.describesOnlySparsity(quantizationConfig) { return nil }
        let f = try JSONFields(quantizationConfig, path: configPath, keyPath: "quantization_config")
        let method = try f.string("quant_method")
        guard let reader = QuantizedFormatReaders.reader(for: method) else {
            let known = QuantizedFormatReaders.all.map { JSONSerializer.quoted($0.quantMethod) }.joined(separator: " and ")
            throw f.error("quant_method", "unsupported quantization method \(JSONSerializer.quoted(method)) (qdist reads \(known))")
        }
        let opened = try reader.open(f, tensorNames: source.tensorNames)
        self.format = opened.description
        self.source = source
        self.readers = opened.modules
        self.modules = opened.modules.keys.sorted(by: QuantizedCheckpointTensors.naturalOrder)
    }

    /// The reader for a model folder whose configuration is `config`; `nil` when the folder is
    /// not quantized.
    /// `source` replaces the folder's own tensors (its legacy-sparse weights decompressed).
    public static func open(folder: CheckpointFolder, config: ModelConfiguration,
                            source: (any StoredTensorSource)? = nil) throws(QDistIOError) -> QuantizedCheckpointReader? {
        try QuantizedCheckpointReader(quantizationConfig: config.quantizationConfig, configPath: configPath(of: folder), source: source ?? folder)
    }

    /// The folder's config.json, for errors (whether or not it exists).
    public static func configPath(of folder: CheckpointFolder) -> String {
        folder.configURL?.path ?? folder.folder.appendingPathComponent("config.json").path
    }

    /// True when `module` is a quantized linear of this checkpoint.
    public func isQuantized(_ module: String) -> Bool { readers[module] != nil }

    /// The module whose dequantized weight `tensorName` names (`<m>.weight` of a quantized
    /// linear), else `nil`.
    public func quantizedModule(forWeight tensorName: String) -> String? {
        guard tensorName.hasSuffix(".weight") else { return nil }
        let module = String(tensorName.dropLast(".weight".count))
        return readers[module] == nil ? nil : module
    }

    /// The quantized linear `module`, read and unpacked.
    public func linear(_ module: String) throws -> QuantizedLinearWeights {
        guard let reader = readers[module] else {
            throw QDistIOError(.notFound, path: source.sourcePath, "\(JSONSerializer.quoted(module)) is not a quantized linear of this checkpoint")
        }
        return try reader.linear(module, source)
    }

    /// How `module`'s input activations are quantized (scheme, and the stored scale when
    /// static); nil for weight-only layers and for modules that are not quantized linears.
    public func inputActivations(_ module: String) throws -> InputActivationParameters? {
        try readers[module]?.inputActivations(module, source)
    }

    /// Every quantized linear, in checkpoint order.
    public func linears() throws -> [QuantizedLinearWeights] { try modules.map(linear) }
}
