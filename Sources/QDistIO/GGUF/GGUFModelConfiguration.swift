import Foundation

/// `ModelConfiguration` from a GGUF file's metadata (FORMATS.md §2.6), so a GGUF model builds
/// the same decoder a Hugging Face `config.json` would.
///
/// Hyper-parameters sit under the architecture's prefix (`llama.block_count`,
/// `qwen2.attention.head_count_kv`); `general.architecture` must be `llama` (Llama 1–3,
/// Mistral, SmolLM2, TinyLlama all use it) or `qwen2`. Float32 metadata (`rope.freq_base`,
/// `layer_norm_rms_epsilon`) is converted through its shortest decimal spelling, so the
/// 1e-5 a converter wrote comes back as 1e-5, not 9.99999974737875e-06. Facts the metadata
/// does not hold are read from the tensors: tied embeddings (no `output.weight`), attention
/// and MLP biases (`blk.0.attn_q.bias`, `blk.0.ffn_gate.bias`), and Llama 3.1-style RoPE
/// scaling, which the converter bakes into a `rope_freqs.weight` tensor instead of metadata
/// (see `GGUFRopeScaling`). A missing required key, a wrong type or an impossible head count is
/// a `.config` error naming the file and key.
extension ModelConfiguration {
    /// `general.architecture` values qdist loads, with their Hugging Face `model_type`.
    public static let supportedGGUFArchitectures = ["llama", "qwen2"]

    /// The configuration described by `file`'s metadata and tensor list.
    public init(gguf file: GGUFFile) throws(QDistIOError) {
        let meta = file.metadata, path = file.url.path
        func failure(_ key: String, _ message: String) -> QDistIOError {
            QDistIOError(.config, path: path, "metadata \(JSONSerializer.quoted(key)): \(message)")
        }
        guard let arch = meta.architecture else {
            throw failure("general.architecture", meta.contains("general.architecture") ? "expected a string" : "missing; qdist needs it to find the model's hyper-parameters")
        }
        guard Self.supportedGGUFArchitectures.contains(arch) else {
            throw failure("general.architecture", "unsupported architecture \(JSONSerializer.quoted(arch)) (qdist reads \(Self.supportedGGUFArchitectures.joined(separator: ", ")))")
        }
        func optionalInt(_ suffix: String) throws(QDistIOError) -> Int? {
            let key = "\(arch).\(suffix)"
            guard let value = meta[key] else { return nil }
            guard let v = value.intValue else { throw failure(key, "expected an integer, found \(value.type.name) \(value)") }
            guard v > 0 else { throw failure(key, "must be positive, found \(v)") }
            return v
        }
        func int(_ suffix: String) throws(QDistIOError) -> Int {
            guard let v = try optionalInt(suffix) else { throw failure("\(arch).\(suffix)", "missing required key") }
            return v
        }
        func optionalDouble(_ suffix: String) throws(QDistIOError) -> Double? {
            let key = "\(arch).\(suffix)"
            guard let value = meta[key] else { return nil }
            switch value {
            case .float32(let f): return Double(f.description) ?? Double(f)
            default:
                guard let d = value.doubleValue else { throw failure(key, "expected a number, found \(value.type.name) \(value)") }
                return d
            }
        }

        let hidden = try int("embedding_length")
        let heads = try int("attention.head_count")
        let kvHeads = try optionalInt("attention.head_count_kv") ?? heads
        guard heads % kvHeads == 0 else {
            throw failure("\(arch).attention.head_count_kv", "\(kvHeads) does not divide attention.head_count \(heads)")
        }
        let keyLength = try optionalInt("attention.key_length")
        if let valueLength = try optionalInt("attention.value_length"), valueLength != (keyLength ?? hidden / heads) {
            throw failure("\(arch).attention.value_length", "\(valueLength) differs from the key length \(keyLength ?? hidden / heads); qdist needs equal head sizes")
        }
        guard keyLength != nil || hidden % heads == 0 else {
            throw failure("\(arch).attention.key_length", "absent, and embedding_length \(hidden) is not divisible by attention.head_count \(heads)")
        }
        let headDim = keyLength ?? hidden / heads
        if let rotary = try optionalInt("rope.dimension_count"), rotary != headDim {
            throw failure("\(arch).rope.dimension_count", "\(rotary) rotary dimensions per head of \(headDim); qdist supports full-head RoPE only")
        }
        let vocab: Int
        if let tokens = meta["tokenizer.ggml.tokens"]?.arrayValue, !tokens.isEmpty {
            vocab = tokens.count
        } else if let v = try optionalInt("vocab_size") {
            vocab = v
        } else if let embedding = try? file.info("token_embd.weight"), embedding.dims.count == 2 {
            vocab = embedding.dims[1]
        } else {
            throw failure("tokenizer.ggml.tokens", "missing, as are \(arch).vocab_size and token_embd.weight: the vocabulary size is unknown")
        }
        let theta = try optionalDouble("rope.freq_base") ?? 10000

        self.init(modelType: arch, hiddenSize: hidden, intermediateSize: try int("feed_forward_length"),
                  numHiddenLayers: try int("block_count"), numAttentionHeads: heads, numKeyValueHeads: kvHeads,
                  headDim: headDim, vocabSize: vocab,
                  rmsNormEps: try optionalDouble("attention.layer_norm_rms_epsilon") ?? 1e-6,
                  ropeTheta: theta, maxPositionEmbeddings: try optionalInt("context_length"),
                  tieWordEmbeddings: !file.contains("output.weight"),
                  attentionBias: file.contains("blk.0.attn_q.bias"),
                  mlpBias: file.contains("blk.0.ffn_gate.bias"),
                  architectures: [arch == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"])
        ropeScaling = try GGUFRopeScaling.scaling(of: file, architecture: arch, headDim: headDim, theta: theta)
        bosTokenId = meta.int("tokenizer.ggml.bos_token_id")
        eosTokenIds = meta.int("tokenizer.ggml.eos_token_id").map { [$0] }
    }
}
