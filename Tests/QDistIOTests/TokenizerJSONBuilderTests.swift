import Foundation
import QDistIO
import XCTest

/// tokenizer.json / tokenizer_config.json from GGUF-style metadata, checked against what
/// transformers 5.24 writes for the same inputs (recorded from `save_pretrained`).
final class TokenizerJSONBuilderTests: XCTestCase {
    /// 256 byte tokens, three merges, then special and odd tokens, like a small GGUF vocabulary.
    private let tokens: [String] = ByteLevelAlphabet.scalarForByte.map { String(Character($0)) }
        + ["Ġt", "he", "Ġthe", "<|begin_of_text|>", "<|eot|>", "<think>", "<|a b|>", "héllo", "<unused>"]
    private var types: [Int] { [Int](repeating: 1, count: 256) + [1, 1, 1, 3, 3, 4, 3, 1, 5] }
    private let merges = ["Ġ t", "h e", "Ġt he"]

    private func build(pre: String? = "llama-bpe", addBOS: Bool? = true, addEOS: Bool? = nil, unkID: Int? = nil) throws -> JSONValue {
        try TokenizerJSONBuilder.fromGGUF(model: "gpt2", pre: pre, tokens: tokens, merges: merges, tokenTypes: types,
                                          bosID: 259, eosID: 260, unkID: unkID, padID: nil, addBOS: addBOS, addEOS: addEOS)
    }

    func testVocabularyKeepsSpelledTokensAndRespellsTheOthersFromTheirBytes() throws {
        let vocab = try XCTUnwrap(build()["model"]?["vocab"]?.objectValue)
        XCTAssertEqual(vocab.count, tokens.count)
        XCTAssertEqual(vocab.first { $0.value == .integer(262) }?.key, "<|aĠb|>")
        XCTAssertEqual(vocab.first { $0.value == .integer(263) }?.key, "héllo", "é is itself in the byte alphabet")
        XCTAssertEqual(vocab.map(\.value.intValue), (0..<tokens.count).map { $0 }, "entries are in id order")
        XCTAssertEqual(try build()["model"]?["merges"], [["Ġ", "t"], ["h", "e"], ["Ġt", "he"]])
    }

    func testControlTokensBecomeSpecialUserDefinedPlainAndMislabelledOnesAreLeftOut() throws {
        let added = try XCTUnwrap(build(unkID: 0)["added_tokens"]?.arrayValue)
        let summary = added.map { "\($0["id"]!.intValue!) \($0["content"]!.stringValue!) \($0["special"]!.boolValue!)" }
        XCTAssertEqual(summary, ["0 Ā true", "259 <|begin_of_text|> true", "260 <|eot|> true", "261 <think> false"],
                       "the unk token is special; <|a b|> (control, not byte-level spelled) is not added")
        XCTAssertEqual(added[0].objectValue?.map(\.key), ["id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"])
    }

    func testPreNamePicksTheSplitRegexLikeTransformers() throws {
        let llama = try build(pre: "llama-bpe")["pre_tokenizer"]
        XCTAssertEqual(llama?["pretokenizers"]?.arrayValue?.first?["pattern"]?["Regex"]?.stringValue,
                       #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#)
        XCTAssertEqual(llama?["pretokenizers"]?.arrayValue?.last,
                       ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false])
        let qwen = try build(pre: "qwen2")["pre_tokenizer"]
        XCTAssertTrue(qwen?["pretokenizers"]?.arrayValue?.first?["pattern"]?["Regex"]?.stringValue?.contains(#"|\p{N}| ?"#) ?? false)
        for pre in ["smollm", "gpt-2", "default", nil] as [String?] {
            XCTAssertEqual(try build(pre: pre)["pre_tokenizer"],
                           ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true], "\(pre ?? "nil")")
        }
    }

    func testAddBOSWritesATemplateThatPrependsBOSWhenAskedForSpecialTokens() throws {
        let json = try build(addBOS: true)
        XCTAssertEqual(json["post_processor"]?["single"], [["SpecialToken": ["id": "<|begin_of_text|>", "type_id": 0]],
                                                           ["Sequence": ["id": "A", "type_id": 0]]])
        XCTAssertEqual(json["post_processor"]?["special_tokens"],
                       ["<|begin_of_text|>": ["id": "<|begin_of_text|>", "ids": [259], "tokens": ["<|begin_of_text|>"]]])
        let tokenizer = try BPETokenizer(json: json)
        XCTAssertEqual(tokenizer.encode("the<|eot|>"), [116, 257, 260])
        XCTAssertEqual(tokenizer.encode("the", addSpecialTokens: true), [259, 116, 257])
        XCTAssertEqual(tokenizer.encode(" the"), [258])

        let both = try build(addBOS: false, addEOS: true)["post_processor"]
        XCTAssertEqual(both?["pair"]?.arrayValue?.count, 4, "A eos:0 B eos:1")
        XCTAssertEqual(try build(addBOS: nil)["post_processor"]?["special_tokens"], [:])
    }

    func testOutputRoundTripsThroughTheSerializerAndLoads() throws {
        let text = try build().serialized()
        let reparsed = try JSONParser.parse(text)
        XCTAssertEqual(reparsed, try build())
        XCTAssertEqual(reparsed.objectValue?.map(\.key), ["version", "truncation", "padding", "added_tokens", "normalizer",
                                                          "pre_tokenizer", "post_processor", "decoder", "model"])
        let tokenizer = try BPETokenizer(json: reparsed)
        XCTAssertEqual(tokenizer.decode(tokenizer.encode("héllo <think> the")), "héllo <think> the")
    }

    func testNonByteLevelModelsAndBrokenMetadataAreRefusedNamingTheKey() {
        XCTAssertThrowsError(try TokenizerJSONBuilder.fromGGUF(model: "llama", pre: nil, tokens: ["a"], merges: [], tokenTypes: [],
                                                               bosID: nil, eosID: nil, unkID: nil, padID: nil, addBOS: nil, source: "m.gguf")) {
            XCTAssertEqual("\($0)", #"m.gguf: tokenizer.ggml.model: "llama" is not supported (only "gpt2", byte-level BPE)"#)
        }
        XCTAssertThrowsError(try TokenizerJSONBuilder.fromGGUF(model: "gpt2", pre: nil, tokens: tokens, merges: ["Ġ q"], tokenTypes: types,
                                                               bosID: nil, eosID: nil, unkID: nil, padID: nil, addBOS: nil, source: "m.gguf")) {
            XCTAssertEqual("\($0)", #"m.gguf: tokenizer.ggml.merges[0]: token "Ġq" is not in the vocabulary"#)
        }
        XCTAssertThrowsError(try TokenizerJSONBuilder.fromGGUF(model: "gpt2", pre: nil, tokens: tokens, merges: [], tokenTypes: [1],
                                                               bosID: nil, eosID: nil, unkID: nil, padID: nil, addBOS: nil, source: "m.gguf")) {
            XCTAssertEqual("\($0)", "m.gguf: tokenizer.ggml.token_type: 1 types for 265 tokens")
        }
        XCTAssertThrowsError(try TokenizerJSONBuilder.fromGGUF(model: "gpt2", pre: nil, tokens: tokens, merges: [], tokenTypes: types,
                                                               bosID: 999, eosID: nil, unkID: nil, padID: nil, addBOS: nil, source: "m.gguf")) {
            XCTAssertEqual("\($0)", "m.gguf: tokenizer.ggml.bos_token_id: id 999 is outside the 265 tokens")
        }
    }

    func testTokenizerConfigNamesTokensTemplateAndLength() throws {
        let config = TokenizerJSONBuilder.tokenizerConfigFromGGUF(tokens: tokens, bosID: 259, eosID: 260, unkID: nil, padID: 260,
                                                                  addBOS: true, chatTemplate: "{{ x }}", contextLength: 8192)
        XCTAssertEqual(config.objectValue?.map(\.key), ["add_bos_token", "bos_token", "chat_template", "clean_up_tokenization_spaces",
                                                        "eos_token", "model_max_length", "pad_token", "tokenizer_class", "unk_token"])
        let read = try TokenizerConfig(json: config)
        XCTAssertEqual(read, TokenizerConfig(bosToken: "<|begin_of_text|>", eosToken: "<|eot|>", padToken: "<|eot|>",
                                             addBOSToken: true, chatTemplate: "{{ x }}", modelMaxLength: 8192))
    }
}
