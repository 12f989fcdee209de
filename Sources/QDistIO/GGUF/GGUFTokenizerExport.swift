import Foundation

/// The `tokenizer.*` metadata of a Hugging Face byte-level BPE tokenizer (`tokenizer.json`,
/// `tokenizer_config.json`), as llama.cpp's `convert_hf_to_gguf.py` writes it for Llama-family
/// models (`_set_vocab_gpt2` + gguf-py's `SpecialVocab`; FORMATS.md §2.6): model `gpt2`, the
/// pre-tokenizer name from the tokenizer's fingerprint, tokens by id with their types, merges,
/// special token ids, add-BOS/EOS flags and the chat template — keys in the converter's order.
///
/// SentencePiece (`tokenizer.model`) tokenizers are not exported yet; they are refused with a
/// one-line error, as is a tokenizer llama.cpp has no pre-tokenizer for (it would tokenize the
/// text differently from the model's own tokenizer).
public enum GGUFTokenizerExport {
    /// gguf-py's `TokenType`.
    public enum TokenType: Int32 { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    /// Special-token kinds in `SpecialVocab`'s order, with their GGUF key stems.
    static let specialKinds: [(kind: String, key: String)] = [
        ("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id"), ("sep", "seperator_token_id"),
        ("pad", "padding_token_id"), ("cls", "cls_token_id"), ("mask", "mask_token_id"),
    ]

    /// The tokenizer entries for the model folder `folder` whose config says `vocabSize`,
    /// appended to `metadata` in the converter's order.
    public static func append(folder: URL, vocabSize: Int, to metadata: inout GGUFMetadata) throws(QDistIOError) {
        let jsonURL = folder.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: jsonURL.path) else {
            let spm = FileManager.default.fileExists(atPath: folder.appendingPathComponent("tokenizer.model").path)
            throw QDistIOError(.notFound, path: jsonURL.path, spm
                ? "missing; GGUF export reads byte-level BPE tokenizers (tokenizer.json), and SentencePiece tokenizer.model export is not supported yet"
                : "missing; GGUF export needs the model's tokenizer")
        }
        let configURL = folder.appendingPathComponent("tokenizer_config.json")
        let config: JSONValue? = FileManager.default.fileExists(atPath: configURL.path) ? try JSONParser.parseFile(at: configURL) : Optional<JSONValue>.none
        let modelConfig: JSONValue? = (try? JSONParser.parseFile(at: folder.appendingPathComponent("config.json"))) ?? Optional<JSONValue>.none
        try append(tokenizerJSON: JSONParser.parseFile(at: jsonURL), tokenizerConfig: config, modelConfig: modelConfig,
                   vocabSize: vocabSize, path: jsonURL.path, to: &metadata)
    }

    /// The same from parsed files (a GGUF input's rebuilt tokenizer has no folder); `path`
    /// names `tokenizer.json` in errors. `tokenizer`, when the caller has it built from these
    /// files already, saves building it again.
    public static func append(tokenizerJSON json: JSONValue, tokenizerConfig config: JSONValue?, modelConfig: JSONValue?,
                              vocabSize: Int, path: String, tokenizer built: BPETokenizer? = nil,
                              to metadata: inout GGUFMetadata) throws(QDistIOError) {
        let jsonURL = URL(fileURLWithPath: path)
        guard json["model"]?["type"]?.stringValue == "BPE" else {
            throw QDistIOError(.config, path: jsonURL.path, "model.type is \(json["model"]?["type"]?.stringValue ?? "missing"); GGUF export writes byte-level BPE (gpt2) tokenizers only")
        }
        let tokenizer: BPETokenizer
        if let built {
            tokenizer = built
        } else {
            tokenizer = try BPETokenizer(json: json, path: path, config: config.map { c throws(QDistIOError) in try TokenizerConfig(json: c) } ?? TokenizerConfig())
        }

        let ids = tokenizer.encode(GGUFPreTokenizerHashes.checkText, addSpecialTokens: true)
        let fingerprint = SHA256.hex(Array(("[" + ids.map(String.init).joined(separator: ", ") + "]").utf8))
        guard let pre = GGUFPreTokenizerHashes.names[fingerprint] ?? structuralPreTokenizer(json) else {
            throw QDistIOError(.config, path: jsonURL.path, "llama.cpp has no pre-tokenizer for this tokenizer (fingerprint \(fingerprint)); it would split text differently from the model's own tokenizer")
        }

        // Tokens by id; ids the tokenizer lacks become llama.cpp's "[PADi]" unused entries.
        let added = Dictionary(tokenizer.addedTokens.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var tokens: [String] = [], types: [Int32] = []
        tokens.reserveCapacity(vocabSize)
        for id in 0..<vocabSize {
            guard let text = tokenizer.token(for: id) else {
                tokens.append("[PAD\(id)]"); types.append(TokenType.unused.rawValue); continue
            }
            if let a = added[id] {
                if a.special || looksSpecial(text) {
                    tokens.append(text); types.append(TokenType.control.rawValue)
                } else {
                    tokens.append(text.replacingOccurrences(of: "\u{2581}", with: " ")); types.append(TokenType.userDefined.rawValue)
                }
            } else {
                tokens.append(text); types.append(TokenType.normal.rawValue)
            }
        }
        metadata["tokenizer.ggml.model"] = .string("gpt2")
        metadata["tokenizer.ggml.pre"] = .string(pre)
        metadata["tokenizer.ggml.tokens"] = .array(.string(tokens))
        metadata["tokenizer.ggml.token_type"] = .array(.int32(types))
        let merges = try self.merges(json, path: jsonURL.path)
        if !merges.isEmpty { metadata["tokenizer.ggml.merges"] = .array(.string(merges)) }

        // Special ids: tokenizer_config's *_token strings matched against added tokens, then
        // config.json's *_token_id for the kinds still unset (SpecialVocab's order).
        var special: [(String, Int)] = []
        let addedByContent = Dictionary(tokenizer.addedTokens.map { ($0.content, $0.id) }, uniquingKeysWith: { a, _ in a })
        for (kind, _) in specialKinds {
            let entry = config?["\(kind)_token"]
            guard let content = entry?.stringValue ?? entry?["content"]?.stringValue,
                  let id = addedByContent[content], id >= 0, id < vocabSize else { continue }
            special.append((kind, id))
        }
        for (kind, _) in specialKinds where !special.contains(where: { $0.0 == kind }) {
            if let id = modelConfig?["\(kind)_token_id"]?.intValue, id >= 0 { special.append((kind, id)) }
        }
        for (kind, key) in specialKinds {
            if let id = special.first(where: { $0.0 == kind })?.1 { metadata["tokenizer.ggml.\(key)"] = .uint32(UInt32(id)) }
        }
        for (kind, flag) in addFlags(json, config: config) {
            metadata["tokenizer.ggml.add_\(kind)_token"] = .bool(flag)
        }
        if let template = config?["chat_template"]?.stringValue ?? tokenizer.chatTemplate {
            metadata["tokenizer.chat_template"] = .string(template)
        }
        // convert_hf_to_gguf's LlamaModel.set_vocab: "granite small models" (a 49152 vocabulary,
        // SmolLM2's too) never get a BOS.
        if vocabSize == 49152 { metadata["tokenizer.ggml.add_bos_token"] = .bool(false) }
    }

    /// The pre-tokenizer name for a tokenizer the fingerprint table does not know (a model
    /// trained by its user, such as `qdist tiny-model`'s), where its structure says it exactly:
    /// no normalizer and a bare `ByteLevel` pre-tokenizer with the GPT-2 regex is llama.cpp's
    /// "gpt-2" (LLAMA_VOCAB_PRE_TYPE_GPT2 splits by that same regex). Anything else: nil.
    static func structuralPreTokenizer(_ json: JSONValue) -> String? {
        guard json["normalizer"]?.isNull ?? true, let pre = json["pre_tokenizer"], pre["type"]?.stringValue == "ByteLevel",
              pre["use_regex"]?.boolValue ?? true, !(pre["add_prefix_space"]?.boolValue ?? false) else { return nil }
        return "gpt-2"
    }

    /// `convert_hf_to_gguf`'s `does_token_look_special` for added tokens not marked special.
    static func looksSpecial(_ t: String) -> Bool {
        ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].contains(t)
            || (t.hasPrefix("<|") && t.hasSuffix("|>")) || (t.hasPrefix("<｜") && t.hasSuffix("｜>"))
            || (t.hasPrefix("<unused") && t.hasSuffix(">"))
    }

    /// `model.merges` as "left right" strings; pair-form merges get their spaces encoded as
    /// U+0120 + 256 the way gguf-py does (`chr(ord(" ") + 256)`).
    static func merges(_ json: JSONValue, path: String) throws(QDistIOError) -> [String] {
        guard let list = json["model"]?["merges"]?.arrayValue else { return [] }
        var out: [String] = []
        out.reserveCapacity(list.count)
        for (i, m) in list.enumerated() {
            if let s = m.stringValue { out.append(s); continue }
            guard let pair = m.arrayValue, pair.count == 2, let a = pair[0].stringValue, let b = pair[1].stringValue else {
                throw QDistIOError(.config, path: path, "model.merges[\(i)]: expected \"left right\" or [left, right]")
            }
            func encoded(_ s: String) -> String { s.replacingOccurrences(of: " ", with: "\u{120}") }
            out.append(encoded(a) + " " + encoded(b))
        }
        return out
    }

    /// add_bos / add_eos as `SpecialVocab` derives them: the post-processor first (ByteLevel
    /// adds nothing; a TemplateProcessing that starts with BOS or ends with EOS adds it), then
    /// tokenizer_config's `add_bos_token` / `add_eos_token` for what the post-processor left open.
    static func addFlags(_ json: JSONValue, config: JSONValue?) -> [(String, Bool)] {
        var flags: [(String, Bool)] = []
        func set(_ kind: String, _ value: Bool, override: Bool) {
            if let i = flags.firstIndex(where: { $0.0 == kind }) {
                if override { flags[i].1 = value }
            } else {
                flags.append((kind, value))
            }
        }
        func token(_ kind: String) -> String? { config?["\(kind)_token"]?.stringValue ?? config?["\(kind)_token"]?["content"]?.stringValue }
        if let post = json["post_processor"], !post.isNull {
            for p in post["processors"]?.arrayValue ?? [post] {
                switch p["type"]?.stringValue {
                case "ByteLevel":
                    set("bos", false, override: false); set("eos", false, override: false)
                case "TemplateProcessing":
                    let single = p["single"]?.arrayValue ?? []
                    guard single.count > 1 else { continue }
                    if let first = single.first?["SpecialToken"]?["id"]?.stringValue {
                        set("bos", first == token("bos") || first == token("cls"), override: true)
                    }
                    if let last = single.last?["SpecialToken"]?["id"]?.stringValue {
                        set("eos", last == token("eos"), override: true)
                    }
                default: continue
                }
            }
        }
        for (kind, _) in specialKinds {
            if let value = config?["add_\(kind)_token"]?.boolValue { set(kind, value, override: false) }
        }
        return flags
    }
}
