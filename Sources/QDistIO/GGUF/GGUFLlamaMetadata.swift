import Foundation

/// The metadata of a `llama`-architecture GGUF file for a Hugging Face model folder, key for key
/// and type for type as llama.cpp's `convert_hf_to_gguf.py` writes it (FORMATS.md §2.6): the
/// general block, the hyper-parameters, `general.file_type`, `general.quantization_version`,
/// then the tokenizer (`GGUFTokenizerExport`).
///
/// The order matters beyond looks: `llama-quantize` copies the input's keys in order and only
/// replaces `general.file_type`, so a file qdist writes directly in a quantized type and the
/// file llama.cpp makes from qdist's F32 export carry the same header. The `general.name`
/// family differs from the converter's (it guesses names from the model card and folder name
/// with heuristics qdist does not copy): qdist writes the folder's name.
public enum GGUFLlamaMetadata {
    /// Metadata for a model described by `config` (`rawConfig`: its config.json as written,
    /// which says whether `head_dim` was given), named `name`, stored as `fileType`
    /// (`llama_ftype`), with the tokenizer of `tokenizerJSON` / `tokenizerConfig`. `path` names
    /// the model in errors. Throws for what the `llama` architecture cannot express.
    public static func metadata(config: ModelConfiguration, rawConfig: JSONValue?, name: String, fileType: UInt32,
                                tokenizerJSON: JSONValue, tokenizerConfig: JSONValue?, tokenizer: BPETokenizer? = nil,
                                path: String) throws(QDistIOError) -> GGUFMetadata {
        func unsupported(_ message: String) -> QDistIOError { QDistIOError(.config, path: path, message) }
        guard config.modelType == "llama" else {
            throw unsupported("model_type \(JSONSerializer.quoted(config.modelType)): GGUF export writes the llama architecture only")
        }
        if config.attentionBias || config.mlpBias {
            throw unsupported("attention or MLP biases: llama.cpp's llama architecture has none")
        }
        if let scaling = config.ropeScaling {
            throw unsupported("rope_scaling \(JSONSerializer.quoted(scaling.ropeType)) is not exported to GGUF yet")
        }
        let raw = rawConfig ?? config.jsonValue
        var m = GGUFMetadata()
        m["general.architecture"] = .string("llama")
        m["general.type"] = .string("model")
        m["general.name"] = .string(name)
        m["llama.block_count"] = .uint32(UInt32(config.numHiddenLayers))
        m["llama.context_length"] = .uint32(UInt32(config.maxPositionEmbeddings))
        m["llama.embedding_length"] = .uint32(UInt32(config.hiddenSize))
        m["llama.feed_forward_length"] = .uint32(UInt32(config.intermediateSize))
        m["llama.attention.head_count"] = .uint32(UInt32(config.numAttentionHeads))
        m["llama.attention.head_count_kv"] = .uint32(UInt32(config.numKeyValueHeads))
        m["llama.rope.freq_base"] = .float32(Float(config.ropeTheta))
        m["llama.attention.layer_norm_rms_epsilon"] = .float32(Float(config.rmsNormEps))
        // The converter writes key/value lengths only when config.json names head_dim.
        if raw["head_dim"]?.intValue != nil {
            m["llama.attention.key_length"] = .uint32(UInt32(config.headDim))
            m["llama.attention.value_length"] = .uint32(UInt32(config.headDim))
        }
        m["general.file_type"] = .uint32(fileType)
        m["llama.vocab_size"] = .uint32(UInt32(config.vocabSize))
        m["llama.rope.dimension_count"] = .uint32(UInt32(config.headDim))
        m["general.quantization_version"] = .uint32(2)
        try GGUFTokenizerExport.append(tokenizerJSON: tokenizerJSON, tokenizerConfig: tokenizerConfig, modelConfig: raw,
                                       vocabSize: config.vocabSize, path: path, tokenizer: tokenizer, to: &m)
        return m
    }

    /// GGUF tensor names in the order the converter writes them: the Hugging Face names sorted
    /// as Python's safetensors stores them (byte order), each mapped through `GGUFTensorNames`;
    /// names outside the table are errors (the llama architecture has no place for them).
    public static func tensorOrder(huggingFaceNames: [String], path: String) throws(QDistIOError) -> [(huggingFace: String, gguf: GGUFTensorNames.Match)] {
        var out: [(String, GGUFTensorNames.Match)] = []
        for name in huggingFaceNames.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            if name.hasSuffix(".rotary_emb.inv_freq") { continue }
            guard let match = GGUFTensorNames.gguf(fromHuggingFace: name) else {
                throw QDistIOError(.config, path: path, "tensor \(JSONSerializer.quoted(name)) has no GGUF llama name")
            }
            out.append((name, match))
        }
        return out
    }
}
