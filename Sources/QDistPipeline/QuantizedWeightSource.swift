import Foundation
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor

/// A quantized checkpoint folder (GPTQ v1/v2 or compressed-tensors pack-quantized or
/// int-quantized) seen as ordinary Float32 weights: `tensor("<m>.weight")` of a quantized linear
/// unpacks and dequantizes it on request; every other name (embeddings, norms, biases,
/// `lm_head`) passes through to the folder; a W8A8 linear also gets its input quantizer
/// (`inputQuantizer(forLinear:)`). So `qdist eval` / `generate` load quantized folders through
/// `LlamaModel.load` unchanged.
///
/// Nothing is cached: the decoder asks for each weight once, and a layer's packed tensors are
/// memory-mapped, so peak memory is the Float32 model plus one layer being unpacked.
public struct QuantizedWeightSource: WeightSource {
    public let folder: CheckpointFolder
    public let reader: QuantizedCheckpointReader

    public init(folder: CheckpointFolder, reader: QuantizedCheckpointReader) {
        self.folder = folder
        self.reader = reader
    }

    /// The dequantizing source for `folder`, or `nil` when `config` has no
    /// `quantization_config` (use the folder itself). An unsupported configuration is a
    /// one-line error naming config.json and the key.
    public static func open(folder: CheckpointFolder, config: ModelConfiguration) throws -> (any WeightSource)? {
        guard let reader = try QuantizedCheckpointReader.open(folder: folder, config: config) else { return nil }
        return QuantizedWeightSource(folder: folder, reader: reader)
    }

    public func contains(_ name: String) -> Bool {
        reader.quantizedModule(forWeight: name) != nil || folder.contains(name)
    }

    public func tensor(_ name: String) throws -> Tensor {
        if let module = reader.quantizedModule(forWeight: name) { return try reader.linear(module).dequantize() }
        return try folder.tensor(name)
    }

    public func inputQuantizer(forLinear module: String) throws -> InputQuantizer? {
        try reader.inputActivations(module)?.inputQuantizer
    }
}

extension InputActivationParameters {
    /// The fake quantizer the decoder runs for these parameters (static scale, or dynamic per
    /// token / per tensor).
    public var inputQuantizer: InputQuantizer {
        let mode: InputQuantizer.Mode
        if let threshold = scheme.outlierThreshold {
            return InputQuantizer(numBits: 8, symmetric: true, mode: .llmInt8(threshold: threshold))
        }
        if scheme.dynamic {
            mode = scheme.strategy == .token ? .dynamicToken : .dynamicTensor
        } else {
            mode = .staticTensor(scale: scale ?? 1, zeroPoint: Float(zeroPoint ?? 0))
        }
        return InputQuantizer(numBits: scheme.numBits, symmetric: scheme.symmetric, mode: mode, float8: scheme.type == .float)
    }
}
