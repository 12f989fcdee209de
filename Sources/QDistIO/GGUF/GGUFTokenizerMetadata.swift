/// The tokenizer a GGUF file carries in its `tokenizer.*` metadata (FORMATS.md §2.6), gathered
/// into typed fields for whoever builds a tokenizer from it.
///
/// Nothing here tokenizes; it only saves callers from spelling key names and converting value
/// types (llama.cpp writes ids as UINT32, token types as INT32). Absent keys are nil or empty;
/// a present key of the wrong type is treated as absent, since the tokenizer builder is the
/// one that knows which keys it needs and reports that with the file's name.
public struct GGUFTokenizerMetadata: Sendable, Equatable {
    /// `tokenizer.ggml.model`: "llama" (SentencePiece), "gpt2" (byte-level BPE), …
    public var model: String?
    /// `tokenizer.ggml.pre`: the pre-tokenizer id, e.g. "smollm", "llama-bpe", "default".
    public var preTokenizer: String?
    /// `tokenizer.ggml.tokens`: token strings; the index is the token id.
    public var tokens: [String]
    /// `tokenizer.ggml.merges`: BPE merges, each "left right"; empty for SentencePiece.
    public var merges: [String]
    /// `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    public var tokenTypes: [Int]
    /// `tokenizer.ggml.scores`: SentencePiece scores (empty for BPE).
    public var scores: [Float]
    public var bosTokenId: Int?
    public var eosTokenId: Int?
    /// `tokenizer.ggml.eot_token_id` (end of turn, chat models).
    public var eotTokenId: Int?
    public var unknownTokenId: Int?
    public var paddingTokenId: Int?
    /// `tokenizer.ggml.add_bos_token`.
    public var addBosToken: Bool?
    /// `tokenizer.ggml.add_eos_token`.
    public var addEosToken: Bool?
    /// `tokenizer.ggml.add_space_prefix` (SentencePiece).
    public var addSpacePrefix: Bool?
    /// `tokenizer.chat_template`: the Jinja chat template.
    public var chatTemplate: String?

    /// Reads the `tokenizer.*` keys of `metadata`.
    public init(_ metadata: GGUFMetadata) {
        let p = "tokenizer.ggml."
        model = metadata.string(p + "model")
        preTokenizer = metadata.string(p + "pre")
        tokens = metadata.stringArray(p + "tokens") ?? []
        merges = metadata.stringArray(p + "merges") ?? []
        tokenTypes = metadata.intArray(p + "token_type") ?? []
        scores = metadata.floatArray(p + "scores") ?? []
        bosTokenId = metadata.int(p + "bos_token_id")
        eosTokenId = metadata.int(p + "eos_token_id")
        eotTokenId = metadata.int(p + "eot_token_id")
        unknownTokenId = metadata.int(p + "unknown_token_id")
        paddingTokenId = metadata.int(p + "padding_token_id")
        addBosToken = metadata.bool(p + "add_bos_token")
        addEosToken = metadata.bool(p + "add_eos_token")
        addSpacePrefix = metadata.bool(p + "add_space_prefix")
        chatTemplate = metadata.string("tokenizer.chat_template")
    }
}
