import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest

/// `qdist inspect`, run as the built binary.
final class InspectCommandTests: XCTestCase {
    private let quantizationConfig = #"{"quant_method":"gptq","bits":4,"group_size":128,"desc_act":false,"sym":true,"checkpoint_format":"gptq"}"#

    /// A small GPTQ-like checkpoint in three shards, with config.json; returns the folder.
    private func shardedQuantizedFolder() throws -> URL {
        let folder = try QdistProcess.temporaryDirectory(self)
        var tensors: [(name: String, tensor: StoredTensor)] = []
        for layer in 0..<3 {
            let p = "model.layers.\(layer).self_attn.q_proj"
            tensors.append((name: "\(p).qweight", tensor: StoredTensor(dtype: .i32, shape: [8, 64], bytes: Fixtures.bytes(8 * 64 * 4, seed: UInt64(layer + 1)))))
            tensors.append((name: "\(p).scales", tensor: StoredTensor(dtype: .f16, shape: [1, 64], bytes: Fixtures.bytes(128, seed: UInt64(layer + 10)))))
        }
        tensors.append((name: "model.norm.weight", tensor: StoredTensor(dtype: .bf16, shape: [64], bytes: Fixtures.bytes(128, seed: 99))))
        try ShardedCheckpointWriter(maxShardSize: 2500).write(tensors, to: folder)
        try Data(#"{"model_type":"llama","hidden_size":64,"quantization_config":\#(quantizationConfig)}"#.utf8)
            .write(to: folder.appendingPathComponent("config.json"))
        return folder
    }

    func testJSONOnAShardedFolderReportsCountsBytesFilesAndTheQuantizationConfig() throws {
        let folder = try shardedQuantizedFolder()
        let result = try QdistProcess.run(["inspect", folder.path, "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout.filter { $0 == "\n" }.count, 1, "one JSON line")
        let json = try JSONParser.parse(result.stdout.trimmingCharacters(in: .newlines))
        XCTAssertEqual(json["path"], .string(folder.path))
        XCTAssertEqual(json["files"]?.arrayValue?.count, 3)
        XCTAssertEqual(json["files"]?.arrayValue?.first, "model-00001-of-00003.safetensors")
        XCTAssertEqual(json["tensor_count"], 7)
        XCTAssertEqual(json["parameter_count"], .integer(3 * (8 * 64 + 64) + 64))
        XCTAssertEqual(json["total_bytes"], .integer(3 * (2048 + 128) + 128))
        XCTAssertEqual(json["dtype_bytes"], ["I32": 6144, "F16": 384, "BF16": 128])
        XCTAssertEqual(json["metadata"], ["format": "pt"])
        XCTAssertEqual(json["quantization_config"], try JSONParser.parse(quantizationConfig))
        XCTAssertEqual(json["quantization_config"]?.objectValue?.map(\.key), ["quant_method", "bits", "group_size", "desc_act", "sym", "checkpoint_format"])
        let entries = try XCTUnwrap(json["tensors"]?.arrayValue)
        XCTAssertEqual(entries.count, 7)
        let qweight = try XCTUnwrap(entries.first { $0["name"] == "model.layers.1.self_attn.q_proj.qweight" })
        XCTAssertEqual(qweight, ["name": "model.layers.1.self_attn.q_proj.qweight", "dtype": "I32", "shape": [8, 64],
                                 "bytes": 2048, "file": "model-00002-of-00003.safetensors"])
        // The index's total_size agrees with what inspect sums.
        let index = try SafetensorsIndex.load(from: folder.appendingPathComponent(SafetensorsIndex.fileName))
        XCTAssertEqual(json["total_bytes"], .integer(index.totalSize!))
    }

    func testJSONOnAPlainFileWithoutConfigHasNullQuantizationConfig() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let url = folder.appendingPathComponent("w.safetensors")
        try SafetensorsWriter.write(["a": StoredTensor(dtype: .f32, shape: [2, 3], bytes: [UInt8](repeating: 0, count: 24))], to: url)
        let result = try QdistProcess.run(["inspect", "--json", url.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try JSONParser.parse(result.stdout.trimmingCharacters(in: .newlines))
        XCTAssertEqual(json["quantization_config"], .null)
        XCTAssertEqual(json["metadata"], [:])
        XCTAssertEqual(json["files"], ["w.safetensors"])
        XCTAssertEqual(json["parameter_count"], 6)
    }

    func testTableListsEveryTensorThenTheTotalsAndTheQuantizationConfig() throws {
        let folder = try shardedQuantizedFolder()
        let result = try QdistProcess.run(["inspect", folder.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first?.split(separator: " ", omittingEmptySubsequences: true), ["NAME", "DTYPE", "SHAPE", "BYTES", "FILE"])
        XCTAssertTrue(lines.contains { $0.hasPrefix("model.layers.0.self_attn.q_proj.qweight") && $0.contains("I32") && $0.contains("[8, 64]") && $0.contains("2,048") })
        XCTAssertTrue(lines.contains("tensors:     7"), result.stdout)
        XCTAssertTrue(lines.contains("parameters:  1,792"), result.stdout)
        XCTAssertTrue(lines.contains("total bytes: 6,656 (6.5 KiB)"), result.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("by dtype:    I32 6,144") }, result.stdout)
        XCTAssertTrue(lines.contains("metadata:    format=pt"), result.stdout)
        XCTAssertTrue(lines.contains("quantization_config:"), result.stdout)
        XCTAssertTrue(lines.contains("  \"bits\": 4,"), result.stdout)
    }

    func testHelpExplainsThePathKindsAndShowsAnExample() throws {
        let result = try QdistProcess.run(["inspect", "--help"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.contains("List the tensors in a safetensors checkpoint"), result.stdout)
        XCTAssertTrue(result.stdout.contains("model.safetensors.index.json"), result.stdout)
        XCTAssertTrue(result.stdout.contains("qdist inspect ./SmolLM2-135M"), result.stdout)
        XCTAssertTrue(result.stdout.contains("--json"), result.stdout)
    }

    func testMissingPathAndBadConfigAreOneLineErrorsWithoutUsageText() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let missing = try QdistProcess.run(["inspect", folder.appendingPathComponent("nope").path])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.stderr, "qdist inspect: error: \(folder.path)/nope: No such file or directory\n")

        try SafetensorsWriter.write(["a": StoredTensor(dtype: .u8, shape: [1], bytes: [1])], to: folder.appendingPathComponent("model.safetensors"))
        try Data("{\"quantization_config\": {,}}".utf8).write(to: folder.appendingPathComponent("config.json"))
        let badConfig = try QdistProcess.run(["inspect", folder.path])
        XCTAssertEqual(badConfig.status, 1)
        XCTAssertEqual(badConfig.stderr.filter { $0 == "\n" }.count, 1, badConfig.stderr)
        XCTAssertTrue(badConfig.stderr.hasPrefix("qdist inspect: error: \(folder.path)/config.json: invalid JSON at byte 25: expected a string key"), badConfig.stderr)
        XCTAssertFalse(badConfig.stderr.contains("USAGE"))
    }
}
