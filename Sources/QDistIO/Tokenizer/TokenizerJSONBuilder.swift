// port of transformers' GGUF tokenizer conversion for `tokenizer.ggml.model = "gpt2"`
// (src/transformers/integrations/gguf/gguf_tokenizer_mapping.py: byte_level_tokenizer,
// add_gguf_special_tokens, set_split_regex, GGUF_PRE_TOKENIZER_SPLITS; and
// TokenizersBackend.update_post_processor for add_bos_token / add_eos_token)

/// Writes the `tokenizer.json` (and `tokenizer_config.json`) that transformers builds from a
/// GGUF file's `tokenizer.ggml.*` metadata, so `qdist convert` can hand a GGUF model to any
/// Hugging Face tool and get the same ids transformers would.
///
/// Inputs are plain values (token strings, merges, types, ids), not a GGUF reader, so this
/// works from whatever read the file. Only byte-level BPE (`tokenizer.ggml.model == "gpt2"`)
/// is supported; anything else is refused with an error naming `source` and the key.
///
/// Choices follow transformers (4.5x–5.x) exactly, including where it differs from llama.cpp:
/// - the vocabulary keeps each token as spelled, unless it uses a scalar outside the
///   byte-level alphabet, in which case its UTF-8 bytes are respelled (`<|a b|>` → `<|aĠb|>`);
///   a repeated token keeps its last id;
/// - `pre` picks a `Split` regex from transformers' table (Llama 3 for "llama-bpe",
///   "llama3", "smaug-bpe", …; Qwen2 for "qwen2", "deepseek-r1-qwen", …), followed by
///   `ByteLevel` without regex; every other name (e.g. "smollm", "gpt-2", "default") gets
///   transformers' GPT-2 `ByteLevel`. llama.cpp additionally isolates digits for "smollm",
///   which changes nothing for SmolLM2 (its vocabulary has no multi-digit token);
/// - control tokens (type 3) spelled in the alphabet become special added tokens,
///   user-defined tokens (type 4) plain added tokens, and the BOS/EOS/UNK/PAD tokens and
///   `<|endoftext|>` (transformers' GPT-2 default) special ones;
/// - `add_bos_token` / `add_eos_token` become a TemplateProcessing post-processor.
/// One deliberate difference: where transformers would give a special token that the
/// vocabulary lacks a new id past the end (its `<|endoftext|>` default on a Llama 3 file),
/// the token is left out, since that id has no embedding row in the model.
public enum TokenizerJSONBuilder {
    /// transformers' `GGUF_PRE_TOKENIZER_SPLITS`: `tokenizer.ggml.pre` → `Split` regex.
    public static let splitRegexForPre: [String: String] = {
        let llama3 = SplitPattern.llama3Regex, qwen2 = SplitPattern.qwen2Regex
        let tekken = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"#
            + #"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"#
            + #"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let gpt4o = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"#
            + #"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"#
            + #"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let qwen35 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        var table: [String: String] = [:]
        for name in ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                     "jina-v5-nano", "dbrx", "smaug-bpe"] { table[name] = llama3 }
        for name in ["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"] { table[name] = qwen2 }
        table["tekken"] = tekken
        for name in ["gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"] { table[name] = gpt4o }
        table["qwen35"] = qwen35
        return table
    }()

    /// The `tokenizer.json` transformers builds from these GGUF values. `source` (the GGUF
    /// file's path) names the origin in errors, which also name the metadata key.
    public static func fromGGUF(model: String, pre: String?, tokens: [String], merges: [String], tokenTypes: [Int],
                                bosID: Int?, eosID: Int?, unkID: Int?, padID: Int?, addBOS: Bool?, addEOS: Bool? = nil,
                                source: String = "GGUF metadata") throws(QDistIOError) -> JSONValue {
        func failure(_ key: String, _ message: String) -> QDistIOError {
            QDistIOError(.config, path: source, "tokenizer.ggml.\(key): \(message)")
        }
        guard model == "gpt2" else {
            throw failure("model", "\(JSONSerializer.quoted(model)) is not supported (only \"gpt2\", byte-level BPE)")
        }
        guard !tokens.isEmpty else { throw failure("tokens", "no tokens") }
        guard tokenTypes.isEmpty || tokenTypes.count == tokens.count else {
            throw failure("token_type", "\(tokenTypes.count) types for \(tokens.count) tokens")
        }
        for (key, id) in [("bos_token_id", bosID), ("eos_token_id", eosID), ("unknown_token_id", unkID), ("padding_token_id", padID)] {
            if let id, !tokens.indices.contains(id) {
                throw failure(key, "id \(id) is outside the \(tokens.count) tokens")
            }
        }

        // Vocabulary: spelled tokens kept, others respelled; a repeated token keeps its last id.
        var vocabulary: [String: Int] = [:]
        vocabulary.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() {
            vocabulary[ByteLevelAlphabet.isSpelled(token) ? token : ByteLevelAlphabet.spell(Array(token.utf8))] = id
        }
        let vocabEntries = vocabulary.sorted { $0.value < $1.value }.map { (key: $0.key, value: JSONValue.integer($0.value)) }

        var mergeValues: [JSONValue] = []
        mergeValues.reserveCapacity(merges.count)
        for (index, merge) in merges.enumerated() {
            let parts = merge.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2 else {
                throw failure("merges[\(index)]", "expected \"left right\", found \(JSONSerializer.quoted(merge))")
            }
            for part in [parts[0], parts[1], parts[0] + parts[1]] where vocabulary[part] == nil {
                throw failure("merges[\(index)]", "token \(JSONSerializer.quoted(part)) is not in the vocabulary")
            }
            mergeValues.append(.array([.string(parts[0]), .string(parts[1])]))
        }

        // Added tokens: control → special, user-defined → plain, then the named special tokens.
        var added: [Int: (content: String, special: Bool)] = [:]
        for (index, token) in tokens.enumerated() where index < tokenTypes.count {
            if tokenTypes[index] == 3 && ByteLevelAlphabet.isSpelled(token), let id = vocabulary[token] {
                added[id] = (token, true)
            }
        }
        for (index, token) in tokens.enumerated() where index < tokenTypes.count {
            if tokenTypes[index] == 4, let id = vocabulary[token] { added[id] = (token, false) }
        }
        let named = [bosID, eosID, unkID, padID].compactMap { $0.map { tokens[$0] } } + ["<|endoftext|>"]
        for content in named {
            if let id = vocabulary[content] { added[id] = (content, true) }
        }
        let addedValues: [JSONValue] = added.keys.sorted().map { id in
            let token = added[id]!
            return ["id": .integer(id), "content": .string(token.content), "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": .bool(token.special)]
        }

        let byteLevelDefaults: JSONValue = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        var preTokenizer = byteLevelDefaults
        if let pre, let regex = splitRegexForPre[pre] {
            preTokenizer = ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": .string(regex)], "behavior": "Isolated", "invert": false],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false],
            ]]
        }

        func lookup(_ id: Int?) -> (String, Int)? {
            guard let id, let resolved = vocabulary[tokens[id]] else { return nil }
            return (tokens[id], resolved)
        }
        let postProcessor = template(bos: addBOS == true ? lookup(bosID) : nil, eos: addEOS == true ? lookup(eosID) : nil)

        return [
            "version": "1.0",
            "truncation": nil,
            "padding": nil,
            "added_tokens": .array(addedValues),
            "normalizer": nil,
            "pre_tokenizer": preTokenizer,
            "post_processor": postProcessor,
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": [
                "type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
                "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": .object(vocabEntries), "merges": .array(mergeValues),
            ],
        ]
    }

    /// transformers' `update_post_processor`: `bos:0 $A:0 eos:0` and, for pairs,
    /// `… bos:1 $B:1 eos:1`, with whichever of BOS/EOS is asked for.
    static func template(bos: (String, Int)?, eos: (String, Int)?) -> JSONValue {
        func special(_ token: (String, Int)?, _ typeID: Int) -> [JSONValue] {
            guard let token else { return [] }
            return [["SpecialToken": ["id": .string(token.0), "type_id": .integer(typeID)]]]
        }
        let single = special(bos, 0) + [["Sequence": ["id": "A", "type_id": 0]]] + special(eos, 0)
        let pair = single + special(bos, 1) + [["Sequence": ["id": "B", "type_id": 1]]] + special(eos, 1)
        var specials: [(key: String, value: JSONValue)] = []
        for token in [bos, eos].compactMap({ $0 }) where !specials.contains(where: { $0.key == token.0 }) {
            specials.append((key: token.0, value: ["id": .string(token.0), "ids": [.integer(token.1)], "tokens": [.string(token.0)]]))
        }
        return ["type": "TemplateProcessing", "single": .array(single), "pair": .array(pair), "special_tokens": .object(specials)]
    }

    /// A `tokenizer_config.json` that transformers 4.x and 5.x both load as a fast tokenizer
    /// over the `tokenizer.json` beside it. Absent values are left out (tokens: written `null`).
    public static func tokenizerConfig(bosToken: String?, eosToken: String?, unkToken: String? = nil,
                                       padToken: String? = nil, addBOSToken: Bool?, addEOSToken: Bool? = nil,
                                       chatTemplate: String?, modelMaxLength: Int?) -> JSONValue {
        var pairs: [(key: String, value: JSONValue)] = []
        if let addBOSToken { pairs.append((key: "add_bos_token", value: .bool(addBOSToken))) }
        if let addEOSToken { pairs.append((key: "add_eos_token", value: .bool(addEOSToken))) }
        pairs.append((key: "bos_token", value: bosToken.map(JSONValue.string) ?? .null))
        if let chatTemplate { pairs.append((key: "chat_template", value: .string(chatTemplate))) }
        pairs.append((key: "clean_up_tokenization_spaces", value: false))
        pairs.append((key: "eos_token", value: eosToken.map(JSONValue.string) ?? .null))
        if let modelMaxLength { pairs.append((key: "model_max_length", value: .integer(modelMaxLength))) }
        pairs.append((key: "pad_token", value: padToken.map(JSONValue.string) ?? .null))
        pairs.append((key: "tokenizer_class", value: "PreTrainedTokenizerFast"))
        pairs.append((key: "unk_token", value: unkToken.map(JSONValue.string) ?? .null))
        return .object(pairs)
    }

    /// `tokenizerConfig` with the tokens named by GGUF ids (`tokenizer.ggml.*_token_id`) and the
    /// model's `context_length` as `model_max_length`.
    public static func tokenizerConfigFromGGUF(tokens: [String], bosID: Int?, eosID: Int?, unkID: Int?, padID: Int?,
                                               addBOS: Bool?, addEOS: Bool? = nil, chatTemplate: String?,
                                               contextLength: Int?) -> JSONValue {
        func text(_ id: Int?) -> String? { id.flatMap { tokens.indices.contains($0) ? tokens[$0] : nil } }
        return tokenizerConfig(bosToken: text(bosID), eosToken: text(eosID), unkToken: text(unkID), padToken: text(padID),
                               addBOSToken: addBOS, addEOSToken: addEOS, chatTemplate: chatTemplate,
                               modelMaxLength: contextLength)
    }
}
