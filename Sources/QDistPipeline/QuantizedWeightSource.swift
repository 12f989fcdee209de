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
///
/// A folder in a legacy sparse layout (`sparse-24-bitmask` on int8 weights) is read through
/// `LegacySparseWeightSource`: the reader sees its weights decompressed, and so does every
/// tensor that passes through.
public struct QuantizedWeightSource: WeightSource {
    public let folder: CheckpointFolder
    public let reader: QuantizedCheckpointReader
    /// Where tensors that are not quantized linears come from: the folder, or its decompressing view.
    let passThrough: any WeightSource

    public init(folder: CheckpointFolder, reader: QuantizedCheckpointReader, passThrough: (any WeightSource)? = nil) {
        self.folder = folder
        self.reader = reader
        self.passThrough = passThrough ?? folder
    }

    /// The dequantizing (or decompressing) source for `folder`, or `nil` when `config` has no
    /// `quantization_config` (use the folder itself). An unsupported configuration is a
    /// one-line error naming config.json and the key.
    public static func open(folder: CheckpointFolder, config: ModelConfiguration) throws -> (any WeightSource)? {
        try open(folder: folder, quantizationConfig: config.quantizationConfig)
    }

    /// As `open(folder:config:)`, for a `quantization_config` not (yet) in the folder's config.json.
    public static func open(folder: CheckpointFolder, quantizationConfig: JSONValue?) throws -> (any WeightSource)? {
        let sparse = try LegacySparseWeightSource.open(folder: folder, quantizationConfig: quantizationConfig)
        guard let reader = try QuantizedCheckpointReader(quantizationConfig: quantizationConfig, configPath: QuantizedCheckpointReader.configPath(of: folder),
                                                         source: sparse?.tensors ?? folder) else { return sparse }
        // pack-quantized has no `weight` for a sparse compressor to touch (FORMATS.md §12.4.7).
        if let sparse, let packed = sparse.tensors.compressedWeights.first(where: { folder.contains(String($0.dropLast("weight".count)) + "weight_packed") }) {
            throw QDistIOError(.config, path: sparse.tensors.filePath(of: packed),
                               "tensor \(JSONSerializer.quoted(packed)): stored both sparse-compressed and pack-quantized; compressed-tensors never compresses packed weights")
        }
        return QuantizedWeightSource(folder: folder, reader: reader, passThrough: sparse)
    }

    public func contains(_ name: String) -> Bool {
        reader.quantizedModule(forWeight: name) != nil || passThrough.contains(name)
    }

    public func tensor(_ name: String) throws -> Tensor {
        if let module = reader.quantizedModule(forWeight: name) { return try reader.linear(module).dequantize() }
        return try passThrough.tensor(name)
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
