import QDistIO
import QDistTensor

/// Anything that hands out named Float32 tensors: a safetensors folder, a GGUF file, a map in
/// memory. The decoder loads through this, so it never knows which file format it came from.
public protocol WeightSource {
    /// True when a tensor of this (Hugging Face) name exists.
    func contains(_ name: String) -> Bool
    /// The tensor, decoded to Float32.
    func tensor(_ name: String) throws -> Tensor
    /// The input (activation) quantizer of linear `module` (e.g. `model.layers.0.mlp.up_proj`),
    /// for checkpoints that quantize activations; nil (the default) for everything else.
    func inputQuantizer(forLinear module: String) throws -> InputQuantizer?
}

/// Why a model could not be built from its weights.
public struct ModelLoadError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension WeightSource {
    /// Float checkpoints quantize no activations.
    public func inputQuantizer(forLinear module: String) throws -> InputQuantizer? { nil }

    /// The tensor, checked to have `expectedShape` (a mismatch names the tensor and both shapes).
    public func tensor(_ name: String, expectedShape: [Int]) throws -> Tensor {
        guard contains(name) else { throw ModelLoadError("missing tensor \(name)") }
        let t = try tensor(name)
        guard t.shape == expectedShape else {
            throw ModelLoadError("tensor \(name) has shape \(t.shape), config.json implies \(expectedShape)")
        }
        return t
    }
}

extension CheckpointFolder: WeightSource {}

/// Tensors held in memory by name (tests, converted or freshly quantized models).
public struct InMemoryWeights: WeightSource, Sendable {
    public var tensors: [String: Tensor]
    public init(_ tensors: [String: Tensor]) { self.tensors = tensors }
    public func contains(_ name: String) -> Bool { tensors[name] != nil }
    public func tensor(_ name: String) throws -> Tensor {
        guard let t = tensors[name] else { throw ModelLoadError("missing tensor \(name)") }
        return t
    }
}

extension GGUFCheckpoint: WeightSource {}
