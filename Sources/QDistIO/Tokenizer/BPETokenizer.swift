// port of the encode/decode path of https://github.com/huggingface/tokenizers
// (tokenizer/mod.rs: encode_single_sequence, decode; added_vocabulary.rs: extract_and_normalize)
import Foundation

/// A byte-level BPE tokenizer (GPT-2, Llama 3, Qwen2, SmolLM2) loaded from `tokenizer.json`,
/// producing the same ids as Hugging Face `tokenizers` for any text.
///
/// Encoding follows the reference step by step: cut out added tokens that match the raw text
/// (longest first), NFC-normalize the rest when the file asks, cut out added tokens that
/// match the normalized text, pre-tokenize (Split / Digits / ByteLevel, with hand-written
/// scanners for the shipped regexes), then run BPE on each word's bytes. Decoding maps ids back
/// to bytes and replaces invalid UTF-8 with U+FFFD, as the reference does; use
/// `StreamingDecoder` to print tokens as they are generated without splitting a character.
///
/// Loading refuses what it does not implement (other models, normalizers, regexes) with a
/// `QDistIOError` naming the file and key, rather than tokenizing differently. The value is
/// immutable and `Sendable`; the per-word BPE cache inside it is shared and thread-safe.
public struct BPETokenizer: Sendable {
    /// Everything the tokenizer holds, behind one reference so copies (and closures that
    /// capture `self`) cost a single retain rather than one per table.
    private final class Core: Sendable {
        let definition: TokenizerDefinition
        let config: TokenizerConfig
        let rawMatcher: AddedTokenMatcher
        let normalizedMatcher: AddedTokenMatcher
        let addedByID: [Int: AddedToken]
        let addedIDByContent: [String: Int]
        /// What the decoder turns each id into (`nil`: the id means nothing and is skipped).
        let bytesForID: [[UInt8]?]
        let specialIDs: Set<Int>

        init(definition: TokenizerDefinition, config: TokenizerConfig) {
            self.definition = definition
            self.config = config
            let added = definition.addedTokens
            rawMatcher = AddedTokenMatcher(added.filter { !$0.normalized })
            let normalize = definition.normalizesNFC
            normalizedMatcher = AddedTokenMatcher(added.filter(\.normalized)) { token in
                normalize ? token.content.precomposedStringWithCanonicalMapping : token.content
            }
            addedByID = Dictionary(added.map { ($0.id, $0) }, uniquingKeysWith: { $1 })
            addedIDByContent = Dictionary(added.map { ($0.content, $0.id) }, uniquingKeysWith: { $1 })
            specialIDs = Set(added.filter(\.special).map(\.id))

            let maxID = max(definition.model.tokenForID.keys.max() ?? -1, added.map(\.id).max() ?? -1)
            var table = [[UInt8]?](repeating: nil, count: maxID + 1)
            let byteLevel = definition.decodesByteLevel
            func bytes(_ token: String) -> [UInt8] { byteLevel ? ByteLevelAlphabet.decodedBytes(of: token) : Array(token.utf8) }
            for (id, token) in definition.model.tokenForID { table[id] = bytes(token) }
            for token in added {
                table[token.id] = bytes(token.normalized && normalize ? token.content.precomposedStringWithCanonicalMapping : token.content)
            }
            bytesForID = table
        }
    }

    private let core: Core
    /// What `tokenizer_config.json` said (empty when there was none).
    public var config: TokenizerConfig { core.config }
    /// The added tokens, in file order, with the ids the reference assigns.
    public var addedTokens: [AddedToken] { core.definition.addedTokens }

    /// Loads `tokenizer.json`, and `tokenizer_config.json` when given (for BOS/EOS and the chat
    /// template). Errors name the file and the key at fault.
    public init(tokenizerJSON url: URL, tokenizerConfig configURL: URL? = nil) throws(QDistIOError) {
        let config = try configURL.map { url throws(QDistIOError) in try TokenizerConfig(contentsOf: url) }
        try self.init(json: JSONParser.parseFile(at: url), path: url.path, config: config ?? TokenizerConfig())
    }

    /// Loads `tokenizer.json` from a model folder, with `tokenizer_config.json` (and
    /// `chat_template.jinja`) when the folder has them.
    public init(folder: URL) throws(QDistIOError) {
        let configURL = folder.appendingPathComponent("tokenizer_config.json")
        try self.init(tokenizerJSON: folder.appendingPathComponent("tokenizer.json"),
                      tokenizerConfig: FileManager.default.fileExists(atPath: configURL.path) ? configURL : nil)
    }

    /// Builds the tokenizer from a parsed `tokenizer.json`; `path` names it in errors.
    public init(json: JSONValue, path: String = "tokenizer.json", config: TokenizerConfig = TokenizerConfig()) throws(QDistIOError) {
        core = Core(definition: try TokenizerDefinition(json: json, path: path), config: config)
    }

    // MARK: - Encoding

    /// The ids of `text`. With `addSpecialTokens`, the post-processor's template is applied
    /// (e.g. Llama 3 puts `<|begin_of_text|>` first); without, nothing is added.
    public func encode(_ text: String, addSpecialTokens: Bool = false) -> [Int] {
        var scalars: [UInt32] = []
        scalars.reserveCapacity(text.utf8.count)
        for s in text.unicodeScalars { scalars.append(s.value) }
        var ids: [Int] = []
        ids.reserveCapacity(text.utf8.count / 3 + 4)
        var wordBytes: [UInt8] = []
        let core = self.core
        let model = core.definition.model, preTokenizer = core.definition.preTokenizer
        core.rawMatcher.split(scalars[...]) { segment in
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let piece):
                let normalized = core.definition.normalizesNFC ? Self.nfc(piece) : piece
                core.normalizedMatcher.split(normalized) { inner in
                    switch inner {
                    case .token(let id): ids.append(id)
                    case .text(let plain):
                        Self.encodePlain(plain, model: model, preTokenizer: preTokenizer, into: &ids, scratch: &wordBytes)
                    }
                }
            }
        }
        if addSpecialTokens {
            for template in core.definition.templates {
                var wrapped: [Int] = []
                for piece in template {
                    switch piece {
                    case .sequence: wrapped += ids
                    case .special(let specialIDs): wrapped += specialIDs
                    }
                }
                ids = wrapped
            }
        }
        return ids
    }

    private static func encodePlain(_ piece: ArraySlice<UInt32>, model: BPEModel, preTokenizer: PreTokenizer,
                                    into ids: inout [Int], scratch: inout [UInt8]) {
        piece.withUnsafeBufferPointer { buffer in
            preTokenizer.forEachWord(in: buffer) { word in
                scratch.removeAll(keepingCapacity: true)
                for v in word { appendUTF8(v, to: &scratch) }
                model.tokenize(scratch, into: &ids)
            }
        }
    }

    @inline(__always)
    private static func appendUTF8(_ v: UInt32, to out: inout [UInt8]) {
        switch v {
        case ..<0x80:
            out.append(UInt8(v))
        case ..<0x800:
            out.append(UInt8(0xC0 | (v >> 6)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        case ..<0x10000:
            out.append(UInt8(0xE0 | (v >> 12)))
            out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (v >> 18)))
            out.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        }
    }

    /// NFC of a piece; text below U+0300 is already NFC and is returned as it is.
    private static func nfc(_ piece: ArraySlice<UInt32>) -> ArraySlice<UInt32> {
        if piece.allSatisfy({ $0 < 0x300 }) { return piece }
        var view = String.UnicodeScalarView()
        for v in piece { view.append(Unicode.Scalar(v)!) }
        return ArraySlice(String(view).precomposedStringWithCanonicalMapping.unicodeScalars.map(\.value))
    }

    // MARK: - Decoding

    /// The text of `ids`; invalid UTF-8 (a character cut between the ids given) becomes U+FFFD.
    /// Ids the tokenizer does not know are skipped, as in the reference.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        var first = true
        let joinsWithSpaces = !core.definition.decodesByteLevel
        for id in ids {
            guard let piece = decodedBytes(for: id, skipSpecialTokens: skipSpecialTokens) else { continue }
            if joinsWithSpaces && !first { bytes.append(0x20) }
            bytes += piece
            first = false
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The raw bytes one id decodes to (possibly part of a character), or `nil` when the id is
    /// unknown or is a special token being skipped. The building block of streaming output.
    public func decodedBytes(for id: Int, skipSpecialTokens: Bool = false) -> [UInt8]? {
        guard id >= 0, id < core.bytesForID.count, let bytes = core.bytesForID[id] else { return nil }
        if skipSpecialTokens && core.specialIDs.contains(id) { return nil }
        return bytes
    }

    /// A decoder that turns ids into text one at a time, holding back bytes until they form
    /// whole characters.
    public func makeStreamingDecoder(skipSpecialTokens: Bool = false) -> StreamingDecoder {
        StreamingDecoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens, joinsWithSpaces: !core.definition.decodesByteLevel)
    }

    // MARK: - Vocabulary

    /// The id of a token as spelled in the vocabulary (`"Ġthe"`) or an added token's text.
    public func tokenID(for token: String) -> Int? {
        core.addedIDByContent[token] ?? core.definition.model.vocabulary[token]
    }

    /// The vocabulary spelling (or added token text) of `id`.
    public func token(for id: Int) -> String? {
        core.addedByID[id]?.content ?? core.definition.model.tokenForID[id]
    }

    /// Distinct tokens, added ones included (the reference's `get_vocab_size(true)`).
    public var vocabularySize: Int {
        core.definition.model.vocabulary.count + core.definition.addedTokens.filter { core.definition.model.vocabulary[$0.content] == nil }.count
    }

    /// The largest id the tokenizer can produce (vocabulary or added token); −1 when empty.
    /// The model's embedding must have a row for it.
    public var largestID: Int {
        max(core.definition.model.vocabulary.values.max() ?? -1, core.definition.addedTokens.map(\.id).max() ?? -1)
    }

    /// True for ids of added tokens marked special.
    public func isSpecialToken(_ id: Int) -> Bool { core.specialIDs.contains(id) }

    /// The text of every special added token.
    public var specialTokens: [String] { addedTokens.filter(\.special).map(\.content) }

    /// BOS: the config's `bos_token`, else the first special token the post-processor's
    /// template puts before the text.
    public var bosToken: String? {
        if let named = config.bosToken { return named }
        guard case .special(let ids)? = core.definition.templates.first?.first, let id = ids.first else { return nil }
        return token(for: id)
    }

    /// The id of `bosToken`.
    /// The id of `bosToken`.
    public var bosTokenID: Int? { bosToken.flatMap(tokenID(for:)) }

    /// EOS as `tokenizer_config.json` names it (`nil` without a config).
    public var eosToken: String? { config.eosToken }

    /// The id of `eosToken`.
    public var eosTokenID: Int? { eosToken.flatMap(tokenID(for:)) }

    /// Every id that ends generation according to the tokenizer files (the config's EOS); a
    /// model's `generation_config.json` may name more.
    public var eosTokenIDs: [Int] { eosTokenID.map { [$0] } ?? [] }

    /// The id of the config's `pad_token`.
    public var padTokenID: Int? { config.padToken.flatMap(tokenID(for:)) }

    /// The id of the config's `unk_token` (byte-level BPE never produces it when encoding).
    public var unknownTokenID: Int? { config.unkToken.flatMap(tokenID(for:)) }

    /// The Jinja chat template from the tokenizer config, when there is one.
    public var chatTemplate: String? { config.chatTemplate }
}
