import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// Token-for-token agreement with Python `tokenizers` (the repository's .venv), on tokenizers
/// built by `TokenizerJSONBuilder` from GGUF-style values of a BPE trained in the test, and on
/// a `tokenizers`-serialized file using NFC, Digits, prefix spaces, a template and every
/// added-token flag. Never skips: a missing Python environment fails the test with a hint.
final class TokenizerInteropTests: XCTestCase {
    private static let script = QdistProcess.repositoryRoot.appendingPathComponent("Tests/Reference/tokenizer_interop.py").path

    /// Slices of WikiText-2 when the shared data folder is there (else a built-in mix), a few KB.
    private static func corpusSlices() -> [String] {
        let candidates = [ProcessInfo.processInfo.environment["QDIST_WIKITEXT"] ?? "",
                          QdistProcess.repositoryRoot.appendingPathComponent("../shared/data/wikitext-2/test.txt").path,
                          "/work/shared/data/wikitext-2/test.txt"]
        for path in candidates where !path.isEmpty {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            let text = String(decoding: data, as: UTF8.self)
            let scalars = Array(text.unicodeScalars)
            return stride(from: 0, to: scalars.count - 1500, by: max(1, scalars.count / 8)).map { start in
                var view = String.UnicodeScalarView()
                view.append(contentsOf: scalars[start..<(start + 1200)])
                return String(view)
            }
        }
        return (1...8).map { TokenizerFixture.randomText(seed: UInt64($0 * 7919), length: 300) }
    }

    private static let edgeCases: [String] = [
        "", " ", "   ", "\n", "\n\n\n", "a", " a", "a ", "Hello world", "  leading and trailing  ",
        "I'm you're they've it's we'll he'd don't I'M HE'S 'tis '' 's", "'ſ ſ",
        "1 12 123 1234 12345 123456 3.14159 1,000,000 ١٢٣٤٥ Ⅻ ½ ²",
        "tabs\tand\t\tmore\ttabs", "crlf\r\nline\rcr\n\r\n", "a\n\n b\n \n c  \n", "x  ,y  .z !!\n\nw",
        "(hello) ((world)) [[x]] {y} <z>", "naïve café résumé e\u{301} ﬁx été e\u{301}t\u{e9}",
        "中文字符 日本語のテキスト 한국어 텍스트", "العربية עברית", "Ελληνικά Русский язык",
        "😀 👩‍👩‍👧 🇫🇷 🏳️‍🌈 1️⃣ 👍🏽", "\u{0}\u{1}\u{7F}\u{85}\u{A0}\u{2028}\u{3000}\u{FEFF}\u{200D}",
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|><|endoftext|>x",
        "<think>reasoning</think> answer", "<|a b|> <|a b|>", "a <mask> b  <mask>\n c<mask>d",
        "[X] x[X] ( [X] ) [X]y é[X]", " = = Robert Boulter = = \n",
    ]

    /// `json` with the value at `path` (object keys) replaced.
    private static func setting(_ json: JSONValue, _ path: [String], to value: JSONValue) -> JSONValue {
        guard let key = path.first, let pairs = json.objectValue else { return value }
        return .object(pairs.map { $0.key == key ? (key: key, value: setting($0.value, Array(path.dropFirst()), to: value)) : $0 })
    }

    private func python(_ args: [String]) throws -> QdistProcess.Result {
        let python = try QdistProcess.python()
        let result = try QdistProcess.runProcess(python, [Self.script] + args, environment: [:], timeout: 600)
        if result.status != 0 {
            XCTFail("\(Self.script) \(args.first ?? "") exited \(result.status): \(result.stderr.suffix(2000)) \(result.stdout.suffix(500))")
            throw CocoaError(.fileReadUnknown)
        }
        return result
    }

    func testOurIDsAndDecodesEqualPythonTokenizersForBuiltAndSerializedTokenizers() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let slices = Self.corpusSlices()
        try Data(JSONValue.array(slices.map(JSONValue.string)).serialized()).write(to: folder.appendingPathComponent("corpus.json"))
        _ = try python(["train", folder.appendingPathComponent("corpus.json").path, folder.path])
        let trained = try JSONParser.parseFile(at: folder.appendingPathComponent("trained.json"))
        var tokens = try XCTUnwrap(trained["tokens"]?.arrayValue?.compactMap(\.stringValue))
        let merges = try XCTUnwrap(trained["merges"]?.arrayValue?.compactMap(\.stringValue))
        let specials = Set(try XCTUnwrap(trained["specials"]?.arrayValue?.compactMap(\.stringValue)))
        XCTAssertGreaterThan(merges.count, 300, "the trained BPE is too small to exercise merges")
        var types = tokens.map { specials.contains($0) ? 3 : 1 }
        for (token, type) in [("<think>", 4), ("</think>", 4), ("<|a b|>", 3)] {
            tokens.append(token)
            types.append(type)
        }
        func id(_ token: String) -> Int { tokens.firstIndex(of: token)! }

        var paths: [String] = []
        func write(_ json: JSONValue, _ name: String) throws {
            let url = folder.appendingPathComponent("\(name).json")
            try Data(json.serialized()).write(to: url)
            paths.append(url.path)
        }
        for (pre, addBOS) in [("smollm", false), ("llama-bpe", true), ("qwen2", false)] {
            let json = try TokenizerJSONBuilder.fromGGUF(
                model: "gpt2", pre: pre, tokens: tokens, merges: merges, tokenTypes: types, bosID: id("<|im_start|>"),
                eosID: id("<|im_end|>"), unkID: id("<|endoftext|>"), padID: id("<|im_end|>"), addBOS: addBOS, addEOS: nil)
            try write(json, pre)
            if pre == "llama-bpe" {  // as Llama 3 ships it: whole words from the vocabulary first
                try write(Self.setting(json, ["model", "ignore_merges"], to: true), "llama-bpe-ignore-merges")
            }
            if pre == "qwen2" {  // merges in the older "left right" string form
                try write(Self.setting(json, ["model", "merges"], to: .array(merges.map(JSONValue.string))), "qwen2-string-merges")
            }
        }
        paths.append(folder.appendingPathComponent("flags/tokenizer.json").path)

        let texts = slices + Self.edgeCases + (1...40).map { TokenizerFixture.randomText(seed: UInt64($0), length: $0 * 3) }
        var state: UInt64 = 0x9E37_79B9
        let idLists: [[Int]] = (0..<60).map { n in
            (0..<(1 + n % 9)).map { _ in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Int((state >> 33) % UInt64(tokens.count + 6))
            }
        } + [[id("<|im_start|>"), 200, 201, id("<|im_end|>")]]
        let request: JSONValue = ["tokenizers": .array(paths.map(JSONValue.string)), "texts": .array(texts.map(JSONValue.string)),
                                  "id_lists": .array(idLists.map { .array($0.map(JSONValue.integer)) })]
        try Data(request.serialized()).write(to: folder.appendingPathComponent("request.json"))
        _ = try python(["encode", folder.appendingPathComponent("request.json").path, folder.appendingPathComponent("response.json").path])
        let results = try XCTUnwrap(JSONParser.parseFile(at: folder.appendingPathComponent("response.json"))["results"]?.arrayValue)
        XCTAssertEqual(results.count, paths.count)

        var comparedTokens = 0
        for (path, result) in zip(paths, results) {
            let name = URL(fileURLWithPath: path).lastPathComponent
            let tokenizer = try BPETokenizer(tokenizerJSON: URL(fileURLWithPath: path))
            XCTAssertEqual(tokenizer.vocabularySize, result["vocab_size"]?.intValue, "\(name): vocabulary size")
            func column(_ key: String) -> [JSONValue] { result[key]?.arrayValue ?? [] }
            let expectedIDs = column("ids").map { $0.arrayValue?.compactMap(\.intValue) ?? [] }
            let expectedWithSpecial = column("ids_with_special_tokens").map { $0.arrayValue?.compactMap(\.intValue) ?? [] }
            var mismatches = 0
            for (i, text) in texts.enumerated() {
                let ids = tokenizer.encode(text)
                comparedTokens += ids.count
                if ids != expectedIDs[i] || tokenizer.encode(text, addSpecialTokens: true) != expectedWithSpecial[i] {
                    mismatches += 1
                    if mismatches <= 3 {
                        let first = (0..<min(ids.count, expectedIDs[i].count)).first { ids[$0] != expectedIDs[i][$0] } ?? min(ids.count, expectedIDs[i].count)
                        XCTFail("\(name): text \(i) \(JSONSerializer.quoted(String(text.prefix(80)))): ids differ from index \(first): ours \(Array(ids[first...].prefix(8))) vs \(Array(expectedIDs[i][first...].prefix(8)))")
                    }
                }
                XCTAssertEqual(tokenizer.decode(ids), column("decoded")[i].stringValue, "\(name): decode of text \(i)")
                XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: true), column("decoded_skipping_special")[i].stringValue,
                               "\(name): decode skipping special tokens, text \(i)")
            }
            XCTAssertEqual(mismatches, 0, "\(name): \(mismatches) of \(texts.count) texts encode differently")
            for (i, ids) in idLists.enumerated() {
                XCTAssertEqual(tokenizer.decode(ids), column("id_lists_decoded")[i].stringValue, "\(name): decode of ids \(ids)")
                XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: true), column("id_lists_decoded_skipping_special")[i].stringValue,
                               "\(name): decode of ids \(ids) skipping special tokens")
            }
        }
        XCTAssertGreaterThan(comparedTokens, 10_000)
        print("tokenizer interop: \(paths.count) tokenizers × \(texts.count) texts, \(comparedTokens) tokens and \(idLists.count) id lists compared")
    }
}
