import Foundation
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// LLM.int8 end to end (issue 14): the `LLM_INT8` preset, the bitsandbytes folder `qdist
/// quantize --format bitsandbytes` writes (`weight` I8 with codes −127…127, `SCB` = each row's
/// max |W|, `weight_format` 0, `llm_int8_threshold` written as a float), read back with the
/// outlier decomposition on every linear, and the formats that cannot hold it refusing it.
/// (The decomposition itself is checked against bitsandbytes' kernels in InputQuantizerTests.)
final class LLMInt8QuantizeTests: XCTestCase {
    var dir: URL!
    var model: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = try QdistProcess.tinyModel(in: dir, seed: 7)
    }

    func testPresetIsAbsmaxInt8RowsWithTheOutlierThresholdOnTheInputs() throws {
        let job = try StrictYAML.decode(QuantizeJobConfig.self, from: "format: bitsandbytes\nrecipe: {QuantizationModifier: {scheme: LLM_INT8}}", path: "r.yaml")
        let g = try XCTUnwrap(job.recipe.modifier!.weightGroups.first)
        XCTAssertEqual(g.weights, WeightArgsConfig(numBits: 8, symmetric: true, strategy: .channel, observer: .absmax))
        XCTAssertEqual(g.inputActivations?.scheme, InputActivationScheme(strategy: .token, dynamic: true, outlierThreshold: 6))
        for (yaml, key) in [("{weights: {num_bits: 8, strategy: channel}, input_activations: {dynamic: true, strategy: tensor, outlier_threshold: 6.0}}", "outlier_threshold"),
                            ("{weights: {num_bits: 4, strategy: channel, observer: absmax}}", "observer")] {
            XCTAssertThrowsError(try StrictYAML.decode(QuantizeJobConfig.self, from: "recipe: {QuantizationModifier: {config_groups: {g: \(yaml)}}}", path: "r.yaml")) {
                XCTAssertTrue("\($0)".contains(key), "\($0)")
            }
        }
    }

    func testTheBitsandbytesFolderHoldsRowAbsmaxCodesAndReadsBackWithTheDecomposition() throws {
        let recipe = dir.appendingPathComponent("int8.yaml"), out = dir.appendingPathComponent("int8")
        try Data("format: bitsandbytes\nrecipe: {QuantizationModifier: {scheme: LLM_INT8}}\n".utf8).write(to: recipe)
        let r = try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = try String(contentsOf: out.appendingPathComponent("config.json"), encoding: .utf8)
        XCTAssertTrue(text.contains("\"llm_int8_threshold\": 6.0"), "a float, as transformers requires")
        let config = try JSONParser.parseFile(at: out.appendingPathComponent("config.json"))["quantization_config"]
        XCTAssertEqual(config?["quant_method"], "bitsandbytes")
        XCTAssertEqual(config?["load_in_8bit"], true)
        XCTAssertEqual(config?["llm_int8_skip_modules"], ["lm_head"])
        let folder = try CheckpointFolder(url: out), original = try CheckpointFolder(url: model)
        let reader = try XCTUnwrap(try QuantizedCheckpointReader.open(folder: folder, config: try ModelConfiguration.load(from: out)))
        XCTAssertEqual(reader.modules.count, 14)
        for module in reader.modules {
            XCTAssertEqual(try folder.storedTensor(module + ".weight_format").shape, [])
            let scb = try folder.tensor(module + ".SCB").scalars
            let w = try original.tensor(module + ".weight")
            let stored = try reader.linear(module)
            for o in 0..<w.rows {
                let row = w.scalars[(o * w.columns)..<((o + 1) * w.columns)]
                let absmax = row.map(\.magnitude).max()!
                XCTAssertEqual(scb[o], absmax, accuracy: absmax * 2e-7, "\(module) SCB[\(o)] is the row's max |W|")
                let codes = stored.signedCodes[(o * w.columns)..<((o + 1) * w.columns)]
                XCTAssertEqual(codes.map { abs($0) }.max(), 127, "the largest weight takes code ±127")
                for (c, x) in zip(codes, row) { XCTAssertEqual(Float(c), (x / (absmax / 127)).rounded(.toNearestOrEven), accuracy: 1) }
            }
            let input = try XCTUnwrap(try reader.inputActivations(module))
            XCTAssertEqual(input.inputQuantizer.mode, .llmInt8(threshold: 6))
        }
        // eval reports each int8 linear's outlier columns; the counts are integers summed over
        // ranks, so two ranks (one window each) report what one process does.
        var reports: [JSONValue] = []
        for ranks in [nil, 2] as [Int?] {
            let e = try QdistProcess.run(["eval", "--model", out.path, "--data", QdistProcess.wikitext("test").path, "--seq-len", "64",
                                          "--windows", "2", "--json"], ranks: ranks)
            XCTAssertEqual(e.status, 0, e.stderr)
            reports.append(try JSONParser.parse(e.stdout))
        }
        let layers = try XCTUnwrap(reports[0]["outlier_columns"]?.arrayValue)
        XCTAssertEqual(layers.compactMap { $0["layer"]?.stringValue }, reader.modules.sorted { QuantizedCheckpointTensors.naturalOrder($0, $1) })
        for l in layers {
            XCTAssertEqual(l["calls"]?.intValue, 2, "one call per window")
            let columns = try XCTUnwrap(l["columns"]?.intValue), outliers = try XCTUnwrap(l["outlier_columns"]?.intValue)
            XCTAssertEqual(columns, 2 * (l["layer"]!.stringValue!.hasSuffix("down_proj") ? 128 : 64))
            XCTAssertEqual(l["share"]?.doubleValue ?? -1, Double(outliers) / Double(columns), accuracy: 1e-15)
        }
        XCTAssertEqual(reports[0]["outlier_columns"], reports[1]["outlier_columns"])
        XCTAssertEqual(reports[0]["llm_int8_threshold"]?.doubleValue, 6)
        let plain = try QdistProcess.run(["eval", "--model", out.path, "--data", QdistProcess.wikitext("test").path, "--seq-len", "64", "--windows", "1"])
        XCTAssertTrue(plain.stdout.contains("LLM.int8 outlier columns (|x| ≥ 6.0, kept in float)"), plain.stdout)
    }

    func testCompressedTensorsRefusesLLMInt8AndBitsandbytesRefusesOtherRecipes() throws {
        for (format, recipe, message) in [("compressed-tensors", "{scheme: LLM_INT8}", "--format bitsandbytes"),
                                          ("bitsandbytes", "{scheme: W8A8}", "holds LLM.int8 layers")] {
            let url = dir.appendingPathComponent("\(format).yaml"), out = dir.appendingPathComponent(format)
            try Data("format: \(format)\nrecipe: {QuantizationModifier: \(recipe)}\n".utf8).write(to: url)
            let r = try QdistProcess.run(["quantize", "--config", url.path, "--model", model.path, "--output", out.path])
            XCTAssertEqual(r.status, 1)
            XCTAssertTrue(r.stderr.contains(message), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        }
    }
}
