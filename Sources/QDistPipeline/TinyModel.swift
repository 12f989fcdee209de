import Foundation
import QDistIO
import QDistModel
import QDistTensor

/// `qdist tiny-model`: a small random Llama or Qwen2 folder with a real tokenizer (byte-level
/// BPE trained on a built-in English text), so tests, CI and the README's first command exercise
/// every path — tokenize, forward, quantize, eval — without downloading a model.
public enum TinyModel {
    /// Sizes of the generated model.
    public struct Options: Sendable {
        public var arch = "llama"
        public var layers = 2
        public var hidden = 64
        public var heads = 4
        public var kvHeads = 2
        public var intermediate: Int?
        public var vocab = 512
        public var seed: UInt64 = 0
        public var tied = false
        public init() {}
    }

    /// The special tokens, in id order: SmolLM2's ChatML set, so `--chat` works too.
    public static let specialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

    /// Writes the folder and returns its configuration.
    @discardableResult
    public static func write(to destination: URL, options o: Options, corpus: String = TinyModelCorpus.text,
                             overwrite: Bool = false) throws -> ModelConfiguration {
        guard ["llama", "qwen2", "mistral"].contains(o.arch) else {
            throw QDistIOError(.invalidArgument, path: destination.path, "--arch must be llama, qwen2 or mistral")
        }
        guard o.hidden % o.heads == 0, o.heads % o.kvHeads == 0, (o.hidden / o.heads) % 2 == 0 else {
            throw QDistIOError(.invalidArgument, path: destination.path,
                               "--hidden must split into --heads of even size, and --heads into --kv-heads groups")
        }
        guard o.vocab >= specialTokens.count + 256 else {
            throw QDistIOError(.invalidArgument, path: destination.path, "--vocab must be at least \(specialTokens.count + 256) (specials + 256 bytes)")
        }
        let trained = ByteLevelBPETrainer.train(text: corpus, vocabularySize: o.vocab, specialTokens: specialTokens)
        let config = RandomModelWeights.configuration(arch: o.arch, layers: o.layers, hidden: o.hidden, heads: o.heads,
                                                      kvHeads: o.kvHeads, intermediate: o.intermediate, vocab: o.vocab, tied: o.tied)
        let weights = RandomModelWeights.make(for: config, seed: o.seed)
        let chatML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
        let tokenizerJSON = try TokenizerJSONBuilder.fromGGUF(
            model: "gpt2", pre: "gpt-2", tokens: trained.tokens, merges: trained.merges, tokenTypes: trained.tokenTypes,
            bosID: 1, eosID: 2, unkID: 0, padID: 2, addBOS: false, source: destination.path)
        let tokenizerConfig = TokenizerJSONBuilder.tokenizerConfigFromGGUF(
            tokens: trained.tokens, bosID: 1, eosID: 2, unkID: 0, padID: 2, addBOS: false, chatTemplate: chatML,
            contextLength: config.maxPositionEmbeddings)
        try ModelFolderWriter(destination: destination, overwrite: overwrite).write(
            config: config, tensors: config.tensorShapes,
            load: { StoredTensor(weights[$0]!, as: .f32) },
            tokenizerJSON: tokenizerJSON, tokenizerConfig: tokenizerConfig,
            generationConfig: ["bos_token_id": 1, "eos_token_id": 2])
        return config
    }
}
