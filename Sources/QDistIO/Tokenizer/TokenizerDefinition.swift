// Reads the parts of tokenizer.json that the reference (`tokenizers`, serialization.rs and the
// serde impls of each component) reads, for byte-level BPE tokenizers.
import Foundation

/// The pieces of a `tokenizer.json`, checked: every unsupported or malformed part is refused
/// with a one-line error naming the file and the key (`tokenizer.json: key "model.merges[3]":
/// …`), never silently ignored, because a half-understood tokenizer produces wrong ids that
/// nothing downstream would notice.
struct TokenizerDefinition: Sendable {
    var model: BPEModel
    var addedTokens: [AddedToken]
    /// The normalizer is NFC (otherwise there is none).
    var normalizesNFC: Bool
    var preTokenizer: PreTokenizer
    /// TemplateProcessing `single` templates, applied in order when special tokens are asked for.
    var templates: [[TemplatePiece]]
    /// The decoder is ByteLevel (otherwise there is none, and tokens are joined with spaces).
    var decodesByteLevel: Bool

    /// One part of a `single` template: the encoded text, or fixed special-token ids.
    enum TemplatePiece: Sendable, Equatable {
        case sequence
        case special([Int])
    }

    init(json: JSONValue, path: String) throws(QDistIOError) {
        let top = try JSONFields(json, path: path)
        if let version = try top.optionalString("version"), version != "1.0" {
            throw top.error("version", "unsupported tokenizer.json version \(JSONSerializer.quoted(version)) (expected \"1.0\")")
        }
        guard let modelFields = try top.optionalObject("model") else {
            throw QDistIOError(.config, path: path, "missing required key \"model\"")
        }
        model = try Self.readModel(modelFields)
        normalizesNFC = try Self.readNormalizer(top.value("normalizer"), path: path, keyPath: "normalizer")
        var steps: [PreTokenizerStep] = []
        if let pre = top.value("pre_tokenizer") {
            try Self.readPreTokenizer(pre, path: path, keyPath: "pre_tokenizer", into: &steps)
        }
        guard case .byteLevel = steps.last else {
            throw top.error("pre_tokenizer", "byte-level BPE needs a ByteLevel pre-tokenizer as the last step")
        }
        preTokenizer = PreTokenizer(steps: steps)
        templates = []
        if let post = top.value("post_processor") {
            try Self.readPostProcessor(post, path: path, keyPath: "post_processor", into: &templates)
        }
        decodesByteLevel = false
        if let decoder = top.value("decoder") {
            let fields = try JSONFields(decoder, path: path, keyPath: "decoder")
            let type = try fields.string("type")
            guard type == "ByteLevel" else {
                throw fields.error("type", "unsupported decoder \(JSONSerializer.quoted(type)) (supported: ByteLevel)")
            }
            decodesByteLevel = true
        }
        addedTokens = try Self.readAddedTokens(top, model: model)
    }

    // MARK: - Model

    private static func readModel(_ fields: JSONFields) throws(QDistIOError) -> BPEModel {
        let type = try fields.optionalString("type") ?? "BPE"
        guard type == "BPE" else {
            throw fields.error("type", "unsupported model \(JSONSerializer.quoted(type)) (only byte-level BPE is supported)")
        }
        if try fields.optionalBool("byte_fallback") == true {
            throw fields.error("byte_fallback", "byte_fallback is not supported (byte-level BPE needs none)")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = try fields.optionalString(key), !s.isEmpty {
                throw fields.error(key, "a non-empty \(key) is not supported")
            }
        }
        if let dropout = try fields.optionalDouble("dropout"), dropout != 0 {
            throw fields.error("dropout", "BPE dropout is not supported (it makes encoding random)")
        }
        guard let vocabValue = fields.value("vocab"), let pairs = vocabValue.objectValue else {
            throw fields.error("vocab", "expected an object of token → id")
        }
        var vocabulary: [String: Int] = [:]
        vocabulary.reserveCapacity(pairs.count)
        for (token, idValue) in pairs {
            guard let id = idValue.intValue, id >= 0, id < 1 << 24 else {
                throw fields.error("vocab", "token \(JSONSerializer.quoted(token)) has id \(idValue.compactText), expected an integer in 0..<2^24")
            }
            vocabulary[token] = id
        }
        guard let mergeValues = fields.value("merges")?.arrayValue else {
            throw fields.error("merges", "expected an array of merges")
        }
        var merges: [(String, String)] = []
        merges.reserveCapacity(mergeValues.count)
        var sourceIndex: [Int] = []  // position in the file of each merge (`#version` lines are skipped)
        for (index, value) in mergeValues.enumerated() {
            if let line = value.stringValue {
                if line.hasPrefix("#version") { continue }
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw fields.error("merges[\(index)]", "expected \"left right\" with one space, found \(JSONSerializer.quoted(line))")
                }
                merges.append((String(parts[0]), String(parts[1])))
            } else if let pair = value.arrayValue, pair.count == 2, let a = pair[0].stringValue, let b = pair[1].stringValue {
                merges.append((a, b))
            } else {
                throw fields.error("merges[\(index)]", "expected \"left right\" or [\"left\", \"right\"], found \(value.typeName)")
            }
            sourceIndex.append(index)
        }
        let ignoreMerges = try fields.optionalBool("ignore_merges") ?? false
        let unknownToken = try fields.optionalString("unk_token")
        let fuseUnknown = try fields.optionalBool("fuse_unk") ?? false
        do throws(BPEModelError) {
            return try BPEModel(vocabulary: vocabulary, merges: merges, ignoreMerges: ignoreMerges,
                                unknownToken: unknownToken, fuseUnknown: fuseUnknown)
        } catch {
            switch error {
            case .mergePartMissing(let index, let token):
                throw fields.error("merges[\(sourceIndex[index])]", "token \(JSONSerializer.quoted(token)) is not in the vocabulary")
            case .unknownTokenMissing(let token):
                throw fields.error("unk_token", "token \(JSONSerializer.quoted(token)) is not in the vocabulary")
            }
        }
    }

    // MARK: - Normalizer, pre-tokenizer, post-processor

    private static func readNormalizer(_ value: JSONValue?, path: String, keyPath: String) throws(QDistIOError) -> Bool {
        guard let value else { return false }
        let fields = try JSONFields(value, path: path, keyPath: keyPath)
        let type = try fields.string("type")
        switch type {
        case "NFC":
            return true
        case "Sequence":
            guard let items = fields.value("normalizers")?.arrayValue else {
                throw fields.error("normalizers", "expected an array of normalizers")
            }
            var nfc = false
            for (i, item) in items.enumerated() {
                nfc = try readNormalizer(item, path: path, keyPath: "\(keyPath).normalizers[\(i)]") || nfc
            }
            return nfc
        default:
            throw fields.error("type", "unsupported normalizer \(JSONSerializer.quoted(type)) (supported: NFC, or none)")
        }
    }

    private static func readPreTokenizer(_ value: JSONValue, path: String, keyPath: String,
                                         into steps: inout [PreTokenizerStep]) throws(QDistIOError) {
        let fields = try JSONFields(value, path: path, keyPath: keyPath)
        let type = try fields.string("type")
        if case .byteLevel = steps.last, type != "Sequence" {
            throw fields.error("type", "a \(type) step after ByteLevel is not supported (ByteLevel must come last)")
        }
        switch type {
        case "Sequence":
            guard let items = fields.value("pretokenizers")?.arrayValue else {
                throw fields.error("pretokenizers", "expected an array of pre-tokenizers")
            }
            for (i, item) in items.enumerated() {
                try readPreTokenizer(item, path: path, keyPath: "\(keyPath).pretokenizers[\(i)]", into: &steps)
            }
        case "ByteLevel":
            steps.append(.byteLevel(addPrefixSpace: try fields.optionalBool("add_prefix_space") ?? true,
                                    useRegex: try fields.optionalBool("use_regex") ?? true))
        case "Digits":
            steps.append(.digits(individual: try fields.optionalBool("individual_digits") ?? false))
        case "Split":
            guard let pattern = try fields.optionalObject("pattern") else {
                throw fields.error("pattern", "expected {\"Regex\": …} or {\"String\": …}")
            }
            let compiled: SplitPattern
            if let regex = try pattern.optionalString("Regex") {
                guard let known = SplitPattern(regex: regex) else {
                    throw pattern.error("Regex", "unsupported regex \(JSONSerializer.quoted(regex)) (supported: the GPT-2, Llama 3 and Qwen2 patterns)")
                }
                compiled = known
            } else if let literal = try pattern.optionalString("String") {
                compiled = .literal(literal.unicodeScalars.map(\.value))
            } else {
                throw fields.error("pattern", "expected {\"Regex\": …} or {\"String\": …}")
            }
            let behaviorName = try fields.string("behavior")
            guard let behavior = SplitBehavior(rawValue: behaviorName) else {
                throw fields.error("behavior", "unknown behavior \(JSONSerializer.quoted(behaviorName)) (expected one of \(SplitBehavior.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            steps.append(.split(compiled, behavior, invert: try fields.optionalBool("invert") ?? false))
        default:
            throw fields.error("type", "unsupported pre-tokenizer \(JSONSerializer.quoted(type)) (supported: ByteLevel, Split, Digits, Sequence)")
        }
    }

    private static func readPostProcessor(_ value: JSONValue, path: String, keyPath: String,
                                          into templates: inout [[TemplatePiece]]) throws(QDistIOError) {
        let fields = try JSONFields(value, path: path, keyPath: keyPath)
        let type = try fields.string("type")
        switch type {
        case "ByteLevel":
            return
        case "Sequence":
            guard let items = fields.value("processors")?.arrayValue else {
                throw fields.error("processors", "expected an array of post-processors")
            }
            for (i, item) in items.enumerated() {
                try readPostProcessor(item, path: path, keyPath: "\(keyPath).processors[\(i)]", into: &templates)
            }
        case "TemplateProcessing":
            var specialIDs: [String: [Int]] = [:]
            if let specials = try fields.optionalObject("special_tokens"), let pairs = fields.value("special_tokens")?.objectValue {
                for (name, _) in pairs {
                    guard let entry = try specials.optionalObject(name),
                          let ids = entry.value("ids")?.arrayValue?.compactMap(\.intValue) else {
                        throw specials.error(name, "expected {\"ids\": [...]}")
                    }
                    specialIDs[name] = ids
                }
            }
            guard let single = fields.value("single")?.arrayValue else {
                throw fields.error("single", "expected an array of template pieces")
            }
            var pieces: [TemplatePiece] = []
            for (i, item) in single.enumerated() {
                let piece = try JSONFields(item, path: path, keyPath: "\(keyPath).single[\(i)]")
                if let special = try piece.optionalObject("SpecialToken") {
                    let name = try special.string("id")
                    guard let ids = specialIDs[name] else {
                        throw special.error("id", "special token \(JSONSerializer.quoted(name)) is not in special_tokens")
                    }
                    pieces.append(.special(ids))
                } else if piece.contains("Sequence") {
                    pieces.append(.sequence)
                } else {
                    throw QDistIOError(.config, path: path, "key \(JSONSerializer.quoted("\(keyPath).single[\(i)]")): expected SpecialToken or Sequence")
                }
            }
            templates.append(pieces)
        default:
            throw fields.error("type", "unsupported post-processor \(JSONSerializer.quoted(type)) (supported: TemplateProcessing, ByteLevel, Sequence)")
        }
    }

    // MARK: - Added tokens

    /// The reference's ids: a token the model knows keeps the model's id; the others get
    /// consecutive ids from the vocabulary size (or past the largest added id).
    private static func readAddedTokens(_ top: JSONFields, model: BPEModel) throws(QDistIOError) -> [AddedToken] {
        guard let items = top.value("added_tokens") else { return [] }
        guard let array = items.arrayValue else {
            throw top.error("added_tokens", "expected an array, found \(items.typeName)")
        }
        var tokens: [AddedToken] = []
        var idForContent: [String: Int] = [:]
        var nextID = model.vocabulary.count
        for (i, item) in array.enumerated() {
            let fields = try JSONFields(item, path: top.path, keyPath: "added_tokens[\(i)]")
            let content = try fields.string("content")
            if content.isEmpty { continue }
            let special = try fields.optionalBool("special") ?? false
            let id: Int
            if let known = idForContent[content] ?? model.vocabulary[content] {
                id = known
            } else {
                id = nextID
                nextID += 1
            }
            let token = AddedToken(content: content, id: id, special: special,
                                   normalized: try fields.optionalBool("normalized") ?? !special,
                                   lstrip: try fields.optionalBool("lstrip") ?? false,
                                   rstrip: try fields.optionalBool("rstrip") ?? false,
                                   singleWord: try fields.optionalBool("single_word") ?? false)
            if let existing = tokens.firstIndex(where: { $0.content == content }) {
                tokens[existing] = token
            } else {
                tokens.append(token)
            }
            idForContent[content] = id
        }
        return tokens
    }
}
