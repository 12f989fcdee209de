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
    /// The element type the tensor is stored in, where the source knows it (nil: decoded
    /// already, or not a stored file).
    func storedDType(of name: String) -> DType?
}

/// Why a model could not be built from its weights.
public struct ModelLoadError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension WeightSource {
    /// Float checkpoints quantize no activations.
    public func inputQuantizer(forLinear module: String) throws -> InputQuantizer? { nil }

    public func storedDType(of name: String) -> DType? { nil }

    /// The tensor, checked to have `expectedShape` (a mismatch names the tensor and both
    /// shapes), to be stored as floats (an integer "weight" would load as nonsense) and to hold
    /// only finite values — a NaN weight would otherwise surface as "ppl nan" or as a trap deep
    /// inside a quantizer. The check is one pass over values the decoder reads anyway.
    public func tensor(_ name: String, expectedShape: [Int]) throws -> Tensor {
        guard contains(name) else { throw ModelLoadError("missing tensor \(name)") }
        if let dtype = storedDType(of: name), !dtype.isFloatingPoint {
            throw ModelLoadError("tensor \(name) is stored as \(dtype.rawValue); model weights must be floats (F32, F16, BF16)")
        }
        let t = try tensor(name)
        guard t.shape == expectedShape else {
            throw ModelLoadError("tensor \(name) has shape \(t.shape), config.json implies \(expectedShape)")
        }
        if let bad = t.firstNonFiniteIndex {
            throw ModelLoadError("tensor \(name) holds a non-finite value (\(t.scalars[bad]) at element \(bad)); the model file is damaged")
        }
        return t
    }
}

extension CheckpointFolder: WeightSource {
    public func storedDType(of name: String) -> DType? { try? info(name).dtype }
}

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
