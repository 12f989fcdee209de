import QDistIO
import QDistTensor

/// What a checkpoint-format writer produces: every tensor of the model as it will be stored
/// (packed linears plus the untouched rest) and the `quantization_config` for `config.json`.
///
/// Hand `entries` and `tensors` to `ModelFolderWriter` with `configuration(updating:)` as the
/// config; or, when ranks write their own shards, call the format's per-linear `tensors(for:)`
/// on each rank and build the config once from the schemes (`quantizationConfig(schemes:)`).
public struct QuantizedCheckpointTensors: Sendable {
    /// Every tensor by name, in its stored dtype.
    public var tensors: [String: StoredTensor]
    /// The `quantization_config` object for `config.json`.
    public var quantizationConfig: JSONValue

    public init(tensors: [String: StoredTensor], quantizationConfig: JSONValue) {
        self.tensors = tensors
        self.quantizationConfig = quantizationConfig
    }

    /// Names and shapes in checkpoint order (names compared with numbers as numbers, so
    /// `layers.2` precedes `layers.10`), the form `ModelFolderWriter.write(tensors:)` takes.
    public var entries: [(name: String, shape: [Int])] {
        tensors.keys.sorted(by: Self.naturalOrder).map { (name: $0, shape: tensors[$0]!.shape) }
    }

    /// `config` with this checkpoint's `quantization_config` set.
    public func configuration(updating config: ModelConfiguration) -> ModelConfiguration {
        var c = config
        c.quantizationConfig = quantizationConfig
        return c
    }

    /// Total stored bytes (what the safetensors files will hold, headers aside).
    public var byteCount: Int { tensors.values.reduce(0) { $0 + $1.bytes.count } }

    /// Dotted names compared part by part, numeric parts as numbers.
    public static func naturalOrder(_ a: String, _ b: String) -> Bool {
        let pa = a.split(separator: "."), pb = b.split(separator: ".")
        for (x, y) in zip(pa, pb) where x != y {
            if let i = Int(x), let j = Int(y) { return i < j }
            return x < y
        }
        return pa.count < pb.count
    }

    /// Merges the per-linear tensors with the pass-through ones; a name produced twice (a
    /// quantized layer's `.weight` or `.bias` also passed through) is an error naming it.
    static func assemble(linears: [(name: String, tensors: [String: StoredTensor])], otherTensors: [String: StoredTensor],
                         quantizationConfig: JSONValue) throws(QuantizedFormatError) -> QuantizedCheckpointTensors {
        var all = otherTensors
        var seen = Set<String>()
        for (module, produced) in linears {
            guard seen.insert(module).inserted else { throw QuantizedFormatError(module, "quantized twice") }
            if otherTensors["\(module).weight"] != nil {
                throw QuantizedFormatError(module, "\(module).weight is both quantized and passed through unquantized; leave it out of the other tensors")
            }
            for (name, t) in produced {
                guard all[name] == nil else {
                    throw QuantizedFormatError(module, "tensor \(name) is produced by the writer and also passed through")
                }
                all[name] = t
            }
        }
        return QuantizedCheckpointTensors(tensors: all, quantizationConfig: quantizationConfig)
    }

    /// The schemes of `linears`, by module name, for the config builders.
    static func schemes(_ linears: [QuantizedLinearWeights]) -> [(name: String, scheme: QuantizedLinearScheme)] {
        linears.map { (name: $0.name, scheme: $0.scheme) }
    }
}

extension DType {
    /// The dtype a model's floats (and compressed-tensors scales) are stored in, from
    /// `config.json`'s `torch_dtype`: `float16` → F16, `float32` → F32, else BF16.
    public static func modelDType(torchDtype: String?) -> DType {
        switch torchDtype {
        case "float16", "half": return .f16
        case "float32", "float": return .f32
        default: return .bf16
        }
    }
}
