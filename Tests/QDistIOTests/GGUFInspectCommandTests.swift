import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// `qdist inspect` on GGUF files, run as the built binary on a model gguf-py wrote.
final class GGUFInspectCommandTests: XCTestCase {
    private func modelFile() throws -> URL {
        let dir = try QdistProcess.temporaryDirectory(self)
        try GGUFReference.run(["model", dir.path, "llama"])
        return dir.appendingPathComponent("model.gguf")
    }

    func testTableListsGGMLTypesRowMajorShapesBytesTotalsAndMetadata() throws {
        let url = try modelFile()
        let result = try QdistProcess.run(["inspect", url.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first?.split(separator: " "), ["NAME", "TYPE", "SHAPE", "BYTES"])
        // token_embd: Q8_0, HF shape [vocab 64, hidden 256], 64 rows × 8 blocks × 34 bytes.
        XCTAssertTrue(lines.contains { $0.hasPrefix("token_embd.weight ") && $0.contains("Q8_0") && $0.contains("[64, 256]") && $0.hasSuffix("17,408") },
                      result.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("blk.1.attn_v.weight ") && $0.contains("Q4_1") && $0.contains("[128, 256]") }, result.stdout)
        XCTAssertTrue(lines.contains("tensors:     22"), result.stdout)  // 2 layers × 9 + embeddings, rope_freqs, norm, output
        XCTAssertTrue(lines.contains { $0.hasPrefix("format:      GGUF v3, alignment 32") }, result.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("by type:     ") }, result.stdout)
        XCTAssertTrue(lines.contains("  general.architecture = \"llama\""), result.stdout)
        XCTAssertTrue(lines.contains("  llama.attention.head_count_kv = 1"), result.stdout)
        XCTAssertTrue(lines.contains("  tokenizer.ggml.tokens = [STRING × 64: \"tok0\", \"tok1\", \"tok2\", ...]"), result.stdout)
    }

    func testJSONHasTensorsTotalsAndAbbreviatedMetadata() throws {
        let url = try modelFile()
        let result = try QdistProcess.run(["inspect", "--json", url.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout.filter { $0 == "\n" }.count, 1, "one JSON line")
        let json = try JSONParser.parse(result.stdout.trimmingCharacters(in: .newlines))
        let file = try GGUFFile(url: url)
        XCTAssertEqual(json["format"], "gguf")
        XCTAssertEqual(json["version"], 3)
        XCTAssertEqual(json["tensor_count"], .integer(file.tensorInfos.count))
        XCTAssertEqual(json["parameter_count"], .integer(file.tensorInfos.reduce(0) { $0 + $1.elementCount }))
        XCTAssertEqual(json["total_bytes"], .integer(file.tensorInfos.reduce(0) { $0 + $1.byteCount }))
        let entries = try XCTUnwrap(json["tensors"]?.arrayValue)
        XCTAssertEqual(entries.first { $0["name"] == "blk.0.attn_k.weight" },
                       ["name": "blk.0.attn_k.weight", "type": "F32", "shape": [128, 256], "bytes": 131072])
        XCTAssertEqual(json["metadata"]?["llama.rope.freq_base"], 500000)
        XCTAssertEqual(json["metadata"]?["tokenizer.ggml.merges"], ["t o", "to k"])
        XCTAssertEqual(json["metadata"]?["tokenizer.ggml.tokens"]?.arrayValue?.count, 64, "64 elements are listed in full")
    }

    func testJSONAbbreviatesLongArraysAndKeepsEveryValueType() throws {
        let url = try QdistProcess.temporaryDirectory(self).appendingPathComponent("meta.gguf")
        try GGUFReference.run(["metadata", url.path])
        let result = try QdistProcess.run(["inspect", "--json", url.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let metadata = try XCTUnwrap(JSONParser.parse(result.stdout.trimmingCharacters(in: .newlines))["metadata"])
        XCTAssertEqual(metadata["t.arr.long"], ["type": "INT32", "count": 100])
        XCTAssertEqual(metadata["t.arr.nested"], [[1, 2], [3]])
        XCTAssertEqual(metadata["t.f32"], 3.14159, "float32 printed as its shortest decimal")
        XCTAssertEqual(metadata["t.true"], true)
        XCTAssertEqual(metadata["t.i8"], -100)
        XCTAssertEqual(metadata["t.str"], "h\u{e9}llo \u{2713} \u{1F600}")
    }
}
