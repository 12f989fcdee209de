import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// `qdist quantize` end to end on a tiny model: recipes in, loadable quantized folders out, the
/// same result under mpirun, and bad input stopped before any output exists.
final class QuantizeCommandTests: XCTestCase {
    var dir: URL!
    var model: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = dir.appendingPathComponent("tiny")
        let r = try QdistProcess.run(["tiny-model", model.path, "--layers", "2", "--hidden", "64", "--heads", "4",
                                      "--kv-heads", "2", "--intermediate", "128", "--seed", "7"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func recipe(_ body: String) throws -> String {
        let url = dir.appendingPathComponent("recipe-\(UUID().uuidString).yaml")
        try Data(body.utf8).write(to: url)
        return url.path
    }

    var gptqRecipe: String {
        get throws {
            try recipe("""
                format: compressed-tensors
                calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 12, seq_len: 64, seed: 1}
                recipe:
                  GPTQModifier:
                    actorder: static
                    config_groups:
                      g0: {targets: [Linear], weights: {num_bits: 4, symmetric: false, strategy: group, group_size: 32}}
                """)
        }
    }

    func ppl(_ folder: URL) throws -> Double {
        let r = try QdistProcess.run(["eval", "--model", folder.path, "--data", QdistProcess.wikitext("test").path,
                                      "--seq-len", "64", "--windows", "12", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(try QdistProcess.jsonObject(r)["ppl"] as? Double)
    }

    func testGPTQRecipeWritesACompressedTensorsFolderThatEvalLoads() throws {
        let out = dir.appendingPathComponent("q")
        let r = try QdistProcess.run(["quantize", "--config", try gptqRecipe, "--model", model.path, "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as? [String: Any]
        let q = try XCTUnwrap(config?["quantization_config"] as? [String: Any])
        XCTAssertEqual(q["quant_method"] as? String, "compressed-tensors")
        XCTAssertEqual(q["format"] as? String, "pack-quantized")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("quantization_report.json"))) as? [String: Any]
        let layers = try XCTUnwrap(report?["layers"] as? [[String: Any]])
        XCTAssertEqual(layers.count, 14, "7 linears × 2 blocks")
        for l in layers { XCTAssertLessThan(try XCTUnwrap(l["relative_error"] as? Double), 0.2) }
        let folder = try CheckpointFolder(url: out)
        XCTAssertTrue(folder.contains("model.layers.1.mlp.down_proj.weight_packed"))
        XCTAssertFalse(folder.contains("model.layers.1.mlp.down_proj.weight"))
        let before = try ppl(model), after = try ppl(out)
        XCTAssertLessThan(abs(after - before) / before, 0.1, "4-bit GPTQ keeps the tiny model's ppl within 10% (\(before) → \(after))")
    }

    func testTwoRanksGiveTheSameCodesAndPerplexityAsOne() throws {
        let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
        let recipe = try gptqRecipe
        XCTAssertEqual(try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", one.path]).status, 0)
        let r = try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", two.path], ranks: 2)
        XCTAssertEqual(r.status, 0, r.stderr)
        let a = try CheckpointFolder(url: one), b = try CheckpointFolder(url: two)
        var same = 0, total = 0
        for name in a.tensorNames where name.hasSuffix("weight_packed") {
            let x = try a.storedTensor(name).bytes, y = try b.storedTensor(name).bytes
            XCTAssertEqual(x.count, y.count)
            // Compare 4-bit codes nibble by nibble.
            for i in 0..<min(x.count, y.count) {
                total += 2
                same += (x[i] & 0x0F == y[i] & 0x0F ? 1 : 0) + (x[i] >> 4 == y[i] >> 4 ? 1 : 0)
            }
        }
        XCTAssertGreaterThan(total, 0)
        XCTAssertGreaterThanOrEqual(Double(same) / Double(total), 0.999, "codes identical for ≥ 99.9% of weights")
        XCTAssertEqual(try ppl(two), try ppl(one), accuracy: try ppl(one) * 5e-5)
    }

    func testRoundToNearestW8IntoGPTQFormatLoads() throws {
        let out = dir.appendingPathComponent("w8")
        let r = try QdistProcess.run(["quantize", "--config", try recipe("recipe: {QuantizationModifier: {scheme: W8A16}}"),
                                      "--model", model.path, "--output", out.path, "--format", "gptq"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as? [String: Any]
        XCTAssertEqual((config?["quantization_config"] as? [String: Any])?["quant_method"] as? String, "gptq")
        let before = try ppl(model), after = try ppl(out)
        XCTAssertLessThan(abs(after - before) / before, 0.01, "8-bit keeps ppl within 1% (\(before) → \(after))")
    }

    func testBadRecipesFailAtOnceWithOneLineAndNoOutput() throws {
        let out = dir.appendingPathComponent("never")
        let cases: [([String], String)] = [
            (["--config", try recipe("recipe: {GPTQModifier: {scheme: W4A16, blok_size: 3}}")], "blok_size"),
            (["--config", try recipe("recipe: {GPTQModifier: {scheme: W9A16}}")], "W9A16"),
            (["--config", try recipe("recipe: {QuantizationModifier: {config_groups: {g: {targets: [Linear], weights: {num_bits: 4, strategy: group, group_size: 48}}}}}")], "48"),
            (["--config", dir.appendingPathComponent("missing.yaml").path], "missing.yaml"),
        ]
        for (args, needle) in cases {
            let r = try QdistProcess.run(["quantize"] + args + ["--model", model.path, "--output", out.path])
            XCTAssertNotEqual(r.status, 0, needle)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains(needle), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "no output for \(needle)")
        }
        let noModel = try QdistProcess.run(["quantize", "--config", try gptqRecipe, "--model", dir.appendingPathComponent("nope").path, "--output", out.path])
        XCTAssertNotEqual(noModel.status, 0)
        XCTAssertTrue(noModel.stderr.contains("nope"), noModel.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }
}
