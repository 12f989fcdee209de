import Foundation
import QDistIO
import QDistModel

/// A model as a user names it on the command line — a Hugging Face folder or a `.gguf` file —
/// opened into what every job needs: its configuration, a source of its weights (read lazily
/// through mmap), and its tokenizer.
public struct ModelBundle {
    public let path: String
    public let config: ModelConfiguration
    public let weights: any WeightSource
    public let tokenizer: BPETokenizer
    /// For a GGUF input: the `tokenizer.json` and `tokenizer_config.json` contents built from
    /// its `tokenizer.ggml.*` metadata (what `qdist convert` writes next to the weights).
    public let tokenizerFiles: (tokenizerJSON: JSONValue, tokenizerConfig: JSONValue)?
    /// For a GGUF input: the checkpoint itself (metadata, original tensor types).
    public let gguf: GGUFCheckpoint?

    /// The chat template of the tokenizer config, when the model ships one.
    public var chatTemplate: String? { tokenizer.chatTemplate }

    /// Opens `path`: a folder with config.json + safetensors + tokenizer.json, or a .gguf file.
    public static func open(_ path: String) throws -> ModelBundle {
        let url = URL(fileURLWithPath: path)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else {
            throw QDistIOError(.io, path: path, "no such file or folder")
        }
        if !isFolder.boolValue && url.pathExtension.lowercased() == "gguf" { return try openGGUF(url) }
        guard isFolder.boolValue else {
            throw QDistIOError(.invalidArgument, path: path, "expected a model folder (config.json, *.safetensors, tokenizer.json) or a .gguf file")
        }
        let config = try ModelConfiguration.load(from: url)
        let tokenizerURL = url.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: tokenizerURL.path) else {
            throw QDistIOError(.io, path: tokenizerURL.path, "missing: qdist needs the model's tokenizer.json")
        }
        // A quantized folder (compressed-tensors or GPTQ) dequantizes its linears on request.
        let folder = try CheckpointFolder(url: url)
        let weights = try QuantizedWeightSource.open(folder: folder, config: config) ?? folder
        let tokenizer = try BPETokenizer(folder: url)
        try checkVocabulary(tokenizer, config: config, path: tokenizerURL.path)
        return ModelBundle(path: path, config: config, weights: weights,
                           tokenizer: tokenizer, tokenizerFiles: nil, gguf: nil)
    }

    static func openGGUF(_ url: URL) throws -> ModelBundle {
        let checkpoint = try GGUFCheckpoint(url: url)
        let t = checkpoint.tokenizer
        guard let model = t.model else {
            throw QDistIOError(.config, path: url.path, "tokenizer.ggml.model: missing (qdist needs the tokenizer inside the GGUF)")
        }
        let tokenizerJSON = try TokenizerJSONBuilder.fromGGUF(
            model: model, pre: t.preTokenizer, tokens: t.tokens, merges: t.merges, tokenTypes: t.tokenTypes,
            bosID: t.bosTokenId, eosID: t.eosTokenId, unkID: t.unknownTokenId, padID: t.paddingTokenId,
            addBOS: t.addBosToken, addEOS: t.addEosToken, source: url.path)
        let tokenizerConfig = TokenizerJSONBuilder.tokenizerConfigFromGGUF(
            tokens: t.tokens, bosID: t.bosTokenId, eosID: t.eosTokenId, unkID: t.unknownTokenId, padID: t.paddingTokenId,
            addBOS: t.addBosToken, addEOS: t.addEosToken, chatTemplate: t.chatTemplate,
            contextLength: checkpoint.config.maxPositionEmbeddings)
        let tokenizer = try BPETokenizer(json: tokenizerJSON, path: url.path,
                                         config: TokenizerConfig(json: tokenizerConfig, path: url.path))
        try checkVocabulary(tokenizer, config: checkpoint.config, path: url.path)
        return ModelBundle(path: url.path, config: checkpoint.config, weights: checkpoint, tokenizer: tokenizer,
                           tokenizerFiles: (tokenizerJSON, tokenizerConfig), gguf: checkpoint)
    }

    /// A token id past the embedding would index outside it in every forward: refuse the pair
    /// when the model is opened, naming both sizes.
    static func checkVocabulary(_ tokenizer: BPETokenizer, config: ModelConfiguration, path: String) throws {
        let largest = tokenizer.largestID
        guard largest < config.vocabSize else {
            throw QDistIOError(.config, path: path,
                               "the tokenizer has token ids up to \(largest), but vocab_size is \(config.vocabSize): the embedding has no row for them")
        }
    }

    /// The tokenizer.json, tokenizer_config.json and generation_config.json contents an output
    /// folder made from this model should carry.
    public func tokenizerFileContents() throws -> (tokenizer: JSONValue, tokenizerConfig: JSONValue?, generationConfig: JSONValue) {
        var pairs: [(key: String, value: JSONValue)] = []
        if let bos = tokenizer.bosTokenID { pairs.append((key: "bos_token_id", value: .integer(bos))) }
        if let eos = tokenizer.eosTokenID { pairs.append((key: "eos_token_id", value: .integer(eos))) }
        if let pad = tokenizer.padTokenID { pairs.append((key: "pad_token_id", value: .integer(pad))) }
        if let files = tokenizerFiles { return (files.tokenizerJSON, files.tokenizerConfig, .object(pairs)) }
        let folder = URL(fileURLWithPath: path)
        let configURL = folder.appendingPathComponent("tokenizer_config.json")
        return (try JSONParser.parseFile(at: folder.appendingPathComponent("tokenizer.json")),
                FileManager.default.fileExists(atPath: configURL.path) ? try JSONParser.parseFile(at: configURL) : nil,
                .object(pairs))
    }

    /// Every weight in memory as Float32, names and shapes verified against the config.
    public func loadModel() throws -> LlamaModel {
        try LlamaModel.load(config: config, from: weights)
    }
}
