import Foundation
import XCTest
import QDistTestSupport

/// `qdist memory` end to end, as a user runs it.
final class MemoryCommandTests: XCTestCase {
    func testSevenBillionParametersAtFP16PrintFourteenGB() throws {
        let r = try QdistProcess.run(["memory", "--params", "7e9", "--dtype", "fp16"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("14.0 GB"), r.stdout)
    }

    func testInt4WithoutScalesIsThreeAndAHalfGB() throws {
        let r = try QdistProcess.run(["memory", "--params", "7B", "--dtype", "int4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("3.5 GB"), r.stdout)
        let json = try QdistProcess.jsonObject(try QdistProcess.run(["memory", "--params", "7e9", "--dtype", "int4", "--group-size", "128", "--json"]))
        let inference = try XCTUnwrap(json["inference"] as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(inference["weight_bytes"] as? Double), 7e9 * 4.125 / 8, accuracy: 1)
    }

    func testTrainingJSONGivesPerRankStatesForEveryStage() throws {
        let r = try QdistProcess.run(["memory", "--params", "7.5e9", "--train", "--zero-stage", "2", "--world-size", "64", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let training = try XCTUnwrap(try QdistProcess.jsonObject(r)["training"] as? [String: Any])
        let perRank = try XCTUnwrap(training["per_rank"] as? [String: Double])
        XCTAssertEqual(try XCTUnwrap(perRank["total"]) / 1e9, 16.6, accuracy: 0.05)
        let byStage = try XCTUnwrap(training["per_rank_total_by_stage"] as? [Double])
        XCTAssertEqual(byStage.count, 4)
        XCTAssertEqual(byStage, byStage.sorted(by: >), "each stage needs less memory per rank")
    }

    func testModelFolderIsCountedFromConfigShapes() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let config = #"{"model_type":"llama","hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,"vocab_size":49152,"rms_norm_eps":1e-5,"rope_theta":100000,"max_position_embeddings":8192,"tie_word_embeddings":true}"#
        try Data(config.utf8).write(to: dir.appendingPathComponent("config.json"))
        let r = try QdistProcess.run(["memory", "--model", dir.path, "--dtype", "int4", "--train", "--lora-rank", "16", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try QdistProcess.jsonObject(r)
        XCTAssertEqual(json["parameters"] as? Double, 134_515_008, "SmolLM2-135M's parameter count")
        // 30 layers × r·(in+out) over q(576→576), k(576→192), v(576→192), o(576→576), gate/up(576→1536), down(1536→576).
        let perLayer = 16 * ((576 + 576) + (576 + 192) * 2 + (576 + 576) + (576 + 1536) * 3)
        let training = try XCTUnwrap(json["training"] as? [String: Any])
        XCTAssertEqual(training["lora_parameters"] as? Double, Double(30 * perLayer))
        let missing = try QdistProcess.run(["memory", "--model", dir.appendingPathComponent("nope").path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertEqual(missing.stderr.split(separator: "\n").count, 1, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("nope"), missing.stderr)
    }

    func testBadArgumentsFailWithAMessageAndNoOutput() throws {
        for args in [["memory", "--params", "7e9", "--dtype", "int5"],
                     ["memory", "--params", "-3"],
                     ["memory", "--params", "7e9", "--model", "x"],
                     ["memory", "--params", "7e9", "--dtype", "nf4", "--group-size", "64"],
                     ["memory", "--params", "7e9", "--zero-stage", "2"],
                     ["memory", "--params", "7e9", "--train", "--zero-stage", "4"]] {
            let r = try QdistProcess.run(args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.stdout.isEmpty, "no partial output for \(args)")
            XCTAssertTrue(r.stderr.contains("Error"), r.stderr)
        }
    }

    func testHelpTeachesWithExamples() throws {
        let r = try QdistProcess.run(["memory", "--help"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.contains("qdist memory --params 7e9 --dtype fp16"), r.stdout)
        XCTAssertTrue(r.stdout.contains("--zero-stage"), r.stdout)
    }
}
