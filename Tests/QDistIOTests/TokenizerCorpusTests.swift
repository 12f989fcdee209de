import Foundation
import QDistIO
import XCTest

/// The manual whole-corpus check (not part of CI: it needs a real model and transformers).
/// `Tests/Reference/tokenizer_smollm2_check.py` prepares a folder and runs this test in a
/// release build with `QDIST_TOKENIZER_CORPUS` pointing at it.
///
/// The folder holds `transformers/` (the tokenizer transformers builds from the GGUF),
/// `gguf_tokenizer.json` (the GGUF's `tokenizer.*` metadata as plain values), `corpus.txt`
/// and `expected_ids.bin` (Python `tokenizers`' ids for the whole corpus, little-endian
/// int32). Without the variable the test reports itself skipped, visibly. The test writes `qdist/` (our builder's tokenizer.json and tokenizer_config.json)
/// and `swift_report.json` (counts, first mismatch, encode seconds) for the script to print,
/// and `qdist/` in every `variants/<name>/` that holds a `gguf_tokenizer.json` (other `pre`
/// names and flags, compared by the script with transformers' output for the same metadata).
final class TokenizerCorpusTests: XCTestCase {
    func testWholeCorpusMatchesPythonTokenizersWhenQDIST_TOKENIZER_CORPUSIsSet() throws {
        guard let folder = ProcessInfo.processInfo.environment["QDIST_TOKENIZER_CORPUS"], !folder.isEmpty else {
            throw XCTSkip("manual check: run Tests/Reference/tokenizer_smollm2_check.py (CI covers SmolLM2 in SmolLM2Tests)")
        }
        let root = URL(fileURLWithPath: folder)
        try writeOurTokenizer(root)
        let variants = root.appendingPathComponent("variants")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: variants.path))?.sorted() ?? [] {
            try writeOurTokenizer(variants.appendingPathComponent(name))
        }

        let text = try String(contentsOf: root.appendingPathComponent("corpus.txt"), encoding: .utf8)
        let expected = try Self.readIDs(root.appendingPathComponent("expected_ids.bin"))
        var cases = [("transformers", root.appendingPathComponent("transformers"), expected),
                     ("qdist", root.appendingPathComponent("qdist"), expected)]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: variants.path))?.sorted() ?? [] {
            let ids = variants.appendingPathComponent(name).appendingPathComponent("expected_ids.bin")
            if FileManager.default.fileExists(atPath: ids.path) {
                cases.append(("variant " + name, variants.appendingPathComponent(name).appendingPathComponent("qdist"), try Self.readIDs(ids)))
            }
        }

        var report: [(key: String, value: JSONValue)] = [("expected_tokens", .integer(expected.count))]
        for (name, tokenizerFolder, expected) in cases {
            let loadStart = Date()
            let tokenizer = try BPETokenizer(folder: tokenizerFolder)
            let loadSeconds = Date().timeIntervalSince(loadStart)
            let start = Date()
            let ids = tokenizer.encode(text)
            let cold = Date().timeIntervalSince(start)
            let warmStart = Date()
            _ = tokenizer.encode(text)
            let warm = Date().timeIntervalSince(warmStart)
            let decodeStart = Date()
            let decoded = tokenizer.decode(ids)
            let decodeSeconds = Date().timeIntervalSince(decodeStart)
            let mismatch = (0..<min(ids.count, expected.count)).first { ids[$0] != expected[$0] } ?? (ids.count == expected.count ? -1 : min(ids.count, expected.count))
            report.append((key: name, value: [
                "tokens": .integer(ids.count), "first_mismatch": .integer(mismatch), "load_seconds": .number(loadSeconds),
                "encode_seconds": .number(cold), "encode_seconds_warm_cache": .number(warm),
                "decode_seconds": .number(decodeSeconds), "decode_round_trips": .bool(decoded == text),
                "bos": tokenizer.bosToken.map(JSONValue.string) ?? .null, "eos": tokenizer.eosToken.map(JSONValue.string) ?? .null,
                "has_chat_template": .bool(tokenizer.chatTemplate != nil),
            ]))
            XCTAssertEqual(mismatch, -1, "\(name): ids differ from Python tokenizers at index \(mismatch)")
            XCTAssertEqual(decoded, text, "\(name): decode(encode(corpus)) is not the corpus")
        }
        try Data(JSONValue.object(report).serialized()).write(to: root.appendingPathComponent("swift_report.json"))
    }

    private static func readIDs(_ url: URL) throws -> [Int] {
        let raw = try Data(contentsOf: url)
        return raw.withUnsafeBytes { buffer in
            (0..<(buffer.count / 4)).map { Int(Int32(littleEndian: buffer.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }
        }
    }

    /// Builds `folder/qdist/` (tokenizer.json, tokenizer_config.json) from `folder/gguf_tokenizer.json`.
    private func writeOurTokenizer(_ folder: URL) throws {
        let metadata = try JSONParser.parseFile(at: folder.appendingPathComponent("gguf_tokenizer.json"))
        func ints(_ key: String) -> [Int] { metadata[key]?.arrayValue?.compactMap(\.intValue) ?? [] }
        func strings(_ key: String) -> [String] { metadata[key]?.arrayValue?.compactMap(\.stringValue) ?? [] }
        let tokens = strings("tokens")
        let ours = folder.appendingPathComponent("qdist")
        try FileManager.default.createDirectory(at: ours, withIntermediateDirectories: true)
        let built = try TokenizerJSONBuilder.fromGGUF(
            model: metadata["model"]?.stringValue ?? "", pre: metadata["pre"]?.stringValue, tokens: tokens,
            merges: strings("merges"), tokenTypes: ints("token_types"), bosID: metadata["bos_id"]?.intValue,
            eosID: metadata["eos_id"]?.intValue, unkID: metadata["unk_id"]?.intValue, padID: metadata["pad_id"]?.intValue,
            addBOS: metadata["add_bos"]?.boolValue, addEOS: metadata["add_eos"]?.boolValue, source: "gguf_tokenizer.json")
        try Data(built.serialized()).write(to: ours.appendingPathComponent("tokenizer.json"))
        let config = TokenizerJSONBuilder.tokenizerConfigFromGGUF(
            tokens: tokens, bosID: metadata["bos_id"]?.intValue, eosID: metadata["eos_id"]?.intValue,
            unkID: metadata["unk_id"]?.intValue, padID: metadata["pad_id"]?.intValue, addBOS: metadata["add_bos"]?.boolValue,
            addEOS: metadata["add_eos"]?.boolValue, chatTemplate: metadata["chat_template"]?.stringValue,
            contextLength: metadata["context_length"]?.intValue)
        try Data(JSONSerializer.serialize(config, style: .pretty(sortKeys: false))).write(to: ours.appendingPathComponent("tokenizer_config.json"))
    }
}
