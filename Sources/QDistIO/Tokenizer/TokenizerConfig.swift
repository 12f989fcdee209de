import Foundation

/// What `tokenizer_config.json` (and `chat_template.jinja` beside it) says about a tokenizer
/// that `tokenizer.json` does not: which tokens are BOS/EOS/UNK/PAD, whether transformers adds
/// BOS or EOS, the chat template, and the longest input the model takes.
///
/// Token entries are read in both spellings transformers writes: a plain string, or an
/// `AddedToken` object `{"content": "<s>", …}`. A `chat_template` that is a list of named
/// templates yields the one named `default` (else the first). Keys that are absent stay `nil`;
/// a key with the wrong type is an error naming the file and the key.
public struct TokenizerConfig: Sendable, Equatable {
    /// `bos_token`: what a prompt starts with when BOS is added.
    public var bosToken: String?
    /// `eos_token`: what ends a generated answer.
    public var eosToken: String?
    /// `unk_token`.
    public var unkToken: String?
    /// `pad_token`.
    public var padToken: String?
    /// transformers' `add_bos_token`; `nil` when the file does not say.
    public var addBOSToken: Bool?
    /// transformers' `add_eos_token`; `nil` when the file does not say.
    public var addEOSToken: Bool?
    /// The Jinja chat template, when there is one.
    public var chatTemplate: String?
    /// `model_max_length`, when it is a sane integer (transformers writes 1e30 for "unknown").
    public var modelMaxLength: Int?

    /// A config with the given values (all absent by default).
    public init(bosToken: String? = nil, eosToken: String? = nil, unkToken: String? = nil, padToken: String? = nil,
                addBOSToken: Bool? = nil, addEOSToken: Bool? = nil, chatTemplate: String? = nil,
                modelMaxLength: Int? = nil) {
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.unkToken = unkToken
        self.padToken = padToken
        self.addBOSToken = addBOSToken
        self.addEOSToken = addEOSToken
        self.chatTemplate = chatTemplate
        self.modelMaxLength = modelMaxLength
    }

    /// Reads a parsed `tokenizer_config.json`; `path` names the file in errors.
    public init(json: JSONValue, path: String = "tokenizer_config.json") throws(QDistIOError) {
        let fields = try JSONFields(json, path: path)
        bosToken = try Self.tokenText(fields, "bos_token")
        eosToken = try Self.tokenText(fields, "eos_token")
        unkToken = try Self.tokenText(fields, "unk_token")
        padToken = try Self.tokenText(fields, "pad_token")
        addBOSToken = try fields.optionalBool("add_bos_token")
        addEOSToken = try fields.optionalBool("add_eos_token")
        if let template = fields.value("chat_template") {
            if let text = template.stringValue {
                chatTemplate = text
            } else if let list = template.arrayValue {
                let named = list.compactMap { item -> (String?, String)? in
                    guard let text = item["template"]?.stringValue else { return nil }
                    return (item["name"]?.stringValue, text)
                }
                chatTemplate = (named.first(where: { $0.0 == "default" }) ?? named.first)?.1
            } else {
                throw fields.error("chat_template", "expected a string or a list of {name, template}, found \(template.typeName)")
            }
        }
        if let length = fields.value("model_max_length")?.doubleValue, length >= 1, length < 1e15 {
            modelMaxLength = Int(length)
        }
    }

    /// Reads `tokenizer_config.json` from `url`, and `chat_template.jinja` from the same folder
    /// when the config has no template (transformers 5 writes it separately).
    public init(contentsOf url: URL) throws(QDistIOError) {
        try self.init(json: JSONParser.parseFile(at: url), path: url.path)
        if chatTemplate == nil {
            let jinja = url.deletingLastPathComponent().appendingPathComponent("chat_template.jinja")
            if let data = FileManager.default.contents(atPath: jinja.path) {
                chatTemplate = String(decoding: data, as: UTF8.self)
            }
        }
    }

    private static func tokenText(_ fields: JSONFields, _ key: String) throws(QDistIOError) -> String? {
        guard let value = fields.value(key) else { return nil }
        if let text = value.stringValue { return text }
        if let content = value["content"]?.stringValue { return content }
        throw fields.error(key, "expected a string or {\"content\": …}, found \(value.typeName)")
    }
}
