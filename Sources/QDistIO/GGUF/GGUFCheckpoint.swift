import Foundation
import QDistTensor

/// A GGUF model seen as a Hugging Face checkpoint: HF tensor names, HF layout, Float32 values,
/// and a `ModelConfiguration` — the same view `CheckpointFolder` gives of safetensors, so the
/// decoder loads either without knowing the file format.
///
/// `tensor(_:)` dequantizes (any type in `GGMLType.dequantizable`), reshapes to the row-major HF
/// shape (ggml dims reversed) and, for the `llama` architecture, undoes the converter's Q/K row
/// permutation (`GGUFRopePermutation`), so `model.layers.0.self_attn.q_proj.weight` comes back
/// exactly as in the original safetensors, up to quantization. Names come from the single
/// `GGUFTensorNames` table; GGUF tensors outside it (`rope_freqs.weight`) are listed in
/// `unmappedTensorNames` and their content is folded into `config` where it matters. With tied
/// embeddings there is no `lm_head.weight`, as in a tied safetensors checkpoint.
public struct GGUFCheckpoint: Sendable {
    /// The underlying file (GGUF names, raw blocks).
    public let file: GGUFFile
    /// Architecture facts from the metadata.
    public let config: ModelConfiguration
    /// Hugging Face names of the mapped tensors, in file order.
    public let tensorNames: [String]
    /// GGUF names of tensors with no Hugging Face counterpart, in file order.
    public let unmappedTensorNames: [String]
    private let lookup: [String: GGUFTensorNames.Match]

    /// Opens and validates the GGUF file at `url` and derives its configuration.
    public init(url: URL) throws(QDistIOError) {
        try self.init(file: GGUFFile(url: url))
    }

    /// Opens the GGUF file at `path`.
    public init(path: String) throws(QDistIOError) {
        try self.init(url: URL(fileURLWithPath: path))
    }

    /// Wraps an opened file; fails when its architecture or hyper-parameters are unsupported.
    public init(file: GGUFFile) throws(QDistIOError) {
        self.file = file
        config = try ModelConfiguration(gguf: file)
        var names: [String] = [], unmapped: [String] = []
        var lookup: [String: GGUFTensorNames.Match] = [:]
        for name in file.tensorNames {
            if let m = GGUFTensorNames.huggingFace(fromGGUF: name) {
                names.append(m.name)
                lookup[m.name] = GGUFTensorNames.Match(name: name, permutation: m.permutation)
            } else {
                unmapped.append(name)
            }
        }
        tensorNames = names
        unmappedTensorNames = unmapped
        self.lookup = lookup
    }

    /// The file's metadata, for keys the configuration does not cover.
    public var metadata: GGUFMetadata { file.metadata }

    /// The `tokenizer.*` metadata, typed (decoded on each call; keep the result).
    public var tokenizer: GGUFTokenizerMetadata { GGUFTokenizerMetadata(file.metadata) }

    /// True when a tensor with this Hugging Face name exists.
    public func contains(_ name: String) -> Bool { lookup[name] != nil }

    /// The GGUF name behind Hugging Face `name`, if the file holds it.
    public func ggufName(for name: String) -> String? { lookup[name]?.name }

    /// The tensor with Hugging Face `name`: dequantized to Float32, HF shape, HF row order.
    /// Throws `.notFound` for an absent name and `.invalidArgument` for a type qdist cannot
    /// dequantize or a Q/K tensor whose rows do not split into the configured heads.
    public func tensor(_ name: String) throws(QDistIOError) -> Tensor {
        guard let match = lookup[name] else {
            throw QDistIOError(.notFound, path: file.url.path,
                               "no tensor named \(JSONSerializer.quoted(name)) (the file maps \(lookup.count) tensors to Hugging Face names)")
        }
        let t = try file.tensor(match.name)
        guard config.modelType == "llama" else { return t }  // qwen2 is stored unpermuted
        let heads: Int
        switch match.permutation {
        case .none: return t
        case .queryHeads: heads = config.numAttentionHeads
        case .keyValueHeads: heads = config.numKeyValueHeads
        }
        let rows = t.shape.first ?? 0
        guard rows % (2 * heads) == 0 else {
            throw QDistIOError(.invalidArgument, path: file.url.path,
                               "tensor \(JSONSerializer.quoted(match.name)) has \(rows) rows, which do not split into \(heads) heads of even size")
        }
        return GGUFRopePermutation.toHuggingFace(t, heads: heads)
    }
}
