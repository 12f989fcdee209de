import Foundation
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor

/// A folder in one of compressed-tensors' legacy sparse layouts (`sparse-bitmask`,
/// `sparse-24-bitmask`; llm-compressor ≤ 0.10) seen as ordinary Float32 weights: each
/// compressed `<m>.weight` is decompressed on request (`SparseDecompressedTensors`), every other
/// tensor passes through. A quantized one (W8A8 int8 + sparse-24) reads through
/// `QuantizedWeightSource` on top of the same decompressed tensors, so `qdist eval`, `generate`,
/// `inspect --sparsity` and `convert` load these folders like any other.
public struct LegacySparseWeightSource: WeightSource {
    public let folder: CheckpointFolder
    public let tensors: SparseDecompressedTensors

    public init(folder: CheckpointFolder, tensors: SparseDecompressedTensors) {
        (self.folder, self.tensors) = (folder, tensors)
    }

    /// The decompressing source for `folder`, or nil when `quantizationConfig` declares no
    /// legacy sparse layout (none, an empty or a `dense` `sparsity_config`).
    public static func open(folder: CheckpointFolder, quantizationConfig: JSONValue?) throws -> LegacySparseWeightSource? {
        guard let format = try CompressedTensorsSparsityConfig.storedFormat(
            quantizationConfig: quantizationConfig, configPath: QuantizedCheckpointReader.configPath(of: folder)) else { return nil }
        return LegacySparseWeightSource(folder: folder, tensors: try SparseDecompressedTensors(base: folder, format: format))
    }

    public func contains(_ name: String) -> Bool { tensors.contains(name) }

    /// The stored dtype of a compressed weight is its values'.
    public func storedDType(of name: String) -> DType? {
        folder.storedDType(of: tensors.storedName(of: "compressed", forWeight: name) ?? name)
    }

    /// A compressed float weight; its values must be floats (int8 or fp8 codes belong to a
    /// quantized module, which `QuantizedWeightSource` reads before this is asked).
    public func tensor(_ name: String) throws -> Tensor {
        let t = try tensors.storedTensor(name)
        if let part = tensors.storedName(of: "compressed", forWeight: name), !t.dtype.isFloatingPoint || t.dtype.byteSize == 1 {
            throw QDistIOError(.config, path: tensors.filePath(of: name),
                               "tensor \(JSONSerializer.quoted(part)): \(t.dtype.rawValue) values, but no config group quantizes this module (an unquantized weight is stored as F32, F16 or BF16)")
        }
        return t.toTensor()
    }
}
