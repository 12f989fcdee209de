import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// Loading tokenizer.json and tokenizer_config.json from disk, and the one-line errors for
/// files we cannot tokenize exactly.
final class TokenizerLoadingTests: XCTestCase {
    private func loadError(_ document: JSONValue, file: StaticString = #filePath, line: UInt = #line) -> QDistIOError? {
        do {
            _ = try BPETokenizer(json: document, path: "tok/tokenizer.json")
            XCTFail("loaded a tokenizer that should be refused", file: file, line: line)
            return nil
        } catch {
            XCTAssertFalse(error.description.contains("\n"), "error is not one line: \(error)", file: file, line: line)
            XCTAssertTrue(error.description.hasPrefix("tok/tokenizer.json: "), "\(error)", file: file, line: line)
            return error
        }
    }

    private func replacing(_ document: JSONValue, _ key: String, with value: JSONValue) -> JSONValue {
        .object(document.objectValue!.map { $0.key == key ? (key: key, value: value) : $0 })
    }

    private func replacingInModel(_ key: String, with value: JSONValue) -> JSONValue {
        let document = TokenizerFixture.document(merges: [("a", "b")])
        let model = replacing(document["model"]!, key, with: value)
        return replacing(document, "model", with: model)
    }

    func testUnsupportedPreTokenizerIsRefusedNamingTheKey() {
        let error = loadError(replacing(TokenizerFixture.document(merges: []), "pre_tokenizer", with: ["type": "Metaspace", "replacement": "▁"]))
        XCTAssertEqual(error?.description, #"tok/tokenizer.json: key "pre_tokenizer.type": unsupported pre-tokenizer "Metaspace" (supported: ByteLevel, Split, Digits, Sequence)"#)
    }

    func testUnknownSplitRegexIsRefusedRatherThanApproximated() {
        let pre: JSONValue = ["type": "Sequence", "pretokenizers": [
            ["type": "Split", "pattern": ["Regex": #"\p{N}{1,3}"#], "behavior": "Isolated", "invert": false],
            ["type": "ByteLevel", "add_prefix_space": false, "use_regex": false],
        ]]
        let error = loadError(replacing(TokenizerFixture.document(merges: []), "pre_tokenizer", with: pre))
        XCTAssertTrue(error?.description.contains(#"key "pre_tokenizer.pretokenizers[0].pattern.Regex": unsupported regex"#) ?? false, "\(String(describing: error))")
    }

    func testPreTokenizerWithoutByteLevelIsRefused() {
        let pre: JSONValue = ["type": "Digits", "individual_digits": true]
        let error = loadError(replacing(TokenizerFixture.document(merges: []), "pre_tokenizer", with: pre))
        XCTAssertTrue(error?.description.contains("needs a ByteLevel pre-tokenizer") ?? false, "\(String(describing: error))")
    }

    func testUnsupportedNormalizerAndDecoderAreRefused() {
        let lowercase = loadError(replacing(TokenizerFixture.document(merges: []), "normalizer", with: ["type": "Lowercase"]))
        XCTAssertTrue(lowercase?.description.contains(#"key "normalizer.type": unsupported normalizer "Lowercase""#) ?? false)
        let decoder = loadError(replacing(TokenizerFixture.document(merges: []), "decoder", with: ["type": "Metaspace"]))
        XCTAssertTrue(decoder?.description.contains(#"key "decoder.type": unsupported decoder "Metaspace""#) ?? false)
    }

    func testNonBPEModelAndByteFallbackAreRefused() {
        XCTAssertTrue(loadError(replacingInModel("type", with: "Unigram"))?.description.contains(#"key "model.type": unsupported model "Unigram""#) ?? false)
        XCTAssertTrue(loadError(replacingInModel("byte_fallback", with: true))?.description.contains(#"key "model.byte_fallback""#) ?? false)
    }

    func testMergeOfTokensOutsideTheVocabularyNamesTheMerge() {
        let error = loadError(replacingInModel("merges", with: ["#version: 0.2", "a b", "x yz"]))
        XCTAssertEqual(error?.description, #"tok/tokenizer.json: key "model.merges[2]": token "yz" is not in the vocabulary"#)
    }

    func testMalformedMergeAndVocabEntriesNameTheKey() {
        XCTAssertTrue(loadError(replacingInModel("merges", with: ["a b c"]))?.description.contains(#"key "model.merges[0]": expected "left right""#) ?? false)
        XCTAssertTrue(loadError(replacingInModel("merges", with: [1]))?.description.contains(#"key "model.merges[0]""#) ?? false)
        XCTAssertTrue(loadError(replacingInModel("vocab", with: ["a": "x"]))?.description.contains(#"key "model.vocab": token "a" has id "x", expected an integer in 0..<2^24"#) ?? false)
        XCTAssertEqual(loadError(.object(TokenizerFixture.document(merges: []).objectValue!.filter { $0.key != "model" }))?.description,
                       #"tok/tokenizer.json: missing required key "model""#)
    }

    func testMissingFileAndInvalidJSONNameTheFile() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let missing = folder.appendingPathComponent("tokenizer.json")
        XCTAssertThrowsError(try BPETokenizer(tokenizerJSON: missing)) { error in
            XCTAssertEqual("\(error)", "\(missing.path): cannot read: No such file or directory")
        }
        try Data("{\"model\": ".utf8).write(to: missing)
        XCTAssertThrowsError(try BPETokenizer(tokenizerJSON: missing)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(missing.path): invalid JSON at byte"), "\(error)")
        }
    }

    func testFolderLoadReadsTheConfigTokensAndTheChatTemplateFile() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let added: [JSONValue] = [TokenizerFixture.addedToken("<s>", id: 256), TokenizerFixture.addedToken("</s>", id: 257)]
        try Data(TokenizerFixture.document(merges: [], added: added).serialized()).write(to: folder.appendingPathComponent("tokenizer.json"))
        let config: JSONValue = ["bos_token": ["__type": "AddedToken", "content": "<s>", "lstrip": false], "eos_token": "</s>",
                                 "add_bos_token": true, "model_max_length": 1_000_000_000_000_000_019_884_624_838_656.0]
        try Data(config.serialized()).write(to: folder.appendingPathComponent("tokenizer_config.json"))
        try Data("{{ bos_token }}{{ messages[0]['content'] }}".utf8).write(to: folder.appendingPathComponent("chat_template.jinja"))
        let tokenizer = try BPETokenizer(folder: folder)
        XCTAssertEqual(tokenizer.bosToken, "<s>")
        XCTAssertEqual(tokenizer.bosTokenID, 256)
        XCTAssertEqual(tokenizer.eosTokenIDs, [257])
        XCTAssertEqual(tokenizer.config.addBOSToken, true)
        XCTAssertNil(tokenizer.config.modelMaxLength, "transformers' 1e30 means unknown")
        XCTAssertEqual(tokenizer.chatTemplate, "{{ bos_token }}{{ messages[0]['content'] }}")
    }

    func testConfigWithAWronglyTypedTokenNamesFileAndKey() {
        XCTAssertThrowsError(try TokenizerConfig(json: ["eos_token": 5], path: "m/tokenizer_config.json")) { error in
            XCTAssertEqual("\(error)", #"m/tokenizer_config.json: key "eos_token": expected a string or {"content": …}, found a number"#)
        }
        let listed = try? TokenizerConfig(json: ["chat_template": [["name": "tool_use", "template": "T"], ["name": "default", "template": "D"]]])
        XCTAssertEqual(listed?.chatTemplate, "D")
    }
}
