import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// A recipe that only prunes (`SparseGPTModifier` or `WandaPruningModifier` alone, issue 24):
/// the output is the float model with exact +0.0 zeros in every pruned linear, every other
/// tensor as the input had it, and no `quantization_config` (transformers 5 fails on a sparse-only
/// one). The pruned rows travel between ranks as floats (`PrunedFloatLinears`), so the bytes must
/// not depend on the number of ranks or threads, and a stopped run resumes to the same bytes.
final class PrunedFloatLinearsTests: XCTestCase {
    var dir: URL!
    var model: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = try QdistProcess.tinyModel(in: dir, seed: 5)
    }

    func decode(_ recipe: String) throws -> QuantizeJobConfig {
        try StrictYAML.decode(QuantizeJobConfig.self, from: "recipe:\n\(recipe)", path: "r.yaml")
    }

    /// Runs `pruner` alone into `name`; returns the output folder and the run's result.
    @discardableResult
    func prune(_ pruner: String, _ name: String, ranks: Int? = nil, threads: Int = 1, extra: [String] = [],
               expectSuccess: Bool = true, model: URL? = nil) throws -> (out: URL, result: QdistProcess.Result) {
        let url = dir.appendingPathComponent("\(name).yaml"), out = dir.appendingPathComponent(name)
        try Data("""
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 8, seq_len: 64, seed: 1}
            recipe:
              \(pruner)
            """.utf8).write(to: url)
        let r = try QdistProcess.run(["quantize", "--config", url.path, "--model", (model ?? self.model).path, "--output", out.path] + extra,
                                     ranks: ranks, environment: ["OPENBLAS_NUM_THREADS": "\(threads)"])
        if expectSuccess { XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)") }
        return (out, r)
    }

    func testARecipeMayOnlyPruneButNotOnlySmoothAndThenTakesNoScheme() throws {
        XCTAssertNil(try decode("  SparseGPTModifier: {sparsity: 0.5}\n").recipe.quantizerIndex)
        XCTAssertNil(try decode("  - WandaPruningModifier: {mask_structure: \"2:4\"}\n").recipe.modifier)
        for (recipe, message) in [
            ("  - SmoothQuantModifier: {smoothing_strength: 0.5}\n  - SparseGPTModifier: {sparsity: 0.5}\n", "no modifier quantizes"),
            ("  - SmoothQuantModifier: {smoothing_strength: 0.5}\n", "no modifier quantizes"),
        ] {
            XCTAssertThrowsError(try decode(recipe), recipe) { XCTAssertTrue("\($0)".contains(message), "\(recipe): \($0)") }
        }
        let r = try prune("SparseGPTModifier: {sparsity: 0.5}", "scheme", extra: ["--scheme", "W4A16"], expectSuccess: false)
        XCTAssertNotEqual(r.result.status, 0)
        XCTAssertTrue(r.result.stderr.contains("only prunes"), r.result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: r.out.path), "no output for a refused job")
    }

    func testPruningAloneWritesTheFloatModelWithExactZerosOnlyInThePrunedLinearsAndNoQuantizationConfig() throws {
        let (out, result) = try prune("WandaPruningModifier: {mask_structure: \"2:4\", ignore: [\"re:.*down_proj\"]}", "wanda")
        XCTAssertTrue(result.stdout.contains("linears pruned (float output)"), result.stdout)
        let config = try JSONParser.parse(Array(try Data(contentsOf: out.appendingPathComponent("config.json"))))
        XCTAssertNil(config["quantization_config"], "a pruned float model carries no quantization_config")
        let original = try SafetensorsReader(url: model.appendingPathComponent("model.safetensors"))
        let written = try SafetensorsReader(url: out.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(Set(written.tensorNames), Set(original.tensorNames))
        var pruned = 0
        // Float tensors are written in the config's dtype (the tiny model's F32 file says bfloat16).
        let dtypes = Dictionary(uniqueKeysWithValues: written.tensorInfos.map { ($0.name, $0.dtype) })
        for name in original.tensorNames {
            let after = try written.tensor(name)
            let before = StoredTensor(try original.tensor(name), as: try XCTUnwrap(dtypes[name])).toTensor()
            XCTAssertEqual(after.shape, before.shape, name)
            let isPruned = name.hasPrefix("model.layers.") && name.hasSuffix("_proj.weight") && !name.contains("down_proj")
            guard isPruned else {
                XCTAssertEqual(after.scalars, before.scalars, "\(name) is not pruned and must be unchanged")
                continue
            }
            pruned += 1
            let columns = after.shape[1]
            for i in after.scalars.indices where i % 4 == 0 {
                let group = after.scalars[i..<i + 4]
                XCTAssertEqual(group.filter { $0.bitPattern == 0 }.count, 2, "\(name) row \(i / columns) inputs \(i % columns)…: two +0.0 of four")
                // Wanda does not update: every kept weight is the original one.
                for j in i..<i + 4 where group[j] != 0 { XCTAssertEqual(after.scalars[j], before.scalars[j], name) }
            }
        }
        XCTAssertEqual(pruned, 12)
        let report = try JSONParser.parse(Array(try Data(contentsOf: out.appendingPathComponent("quantization_report.json"))))
        let lines = try XCTUnwrap(report["layers"]?.arrayValue)
        XCTAssertEqual(lines.count, 12)
        XCTAssertTrue(lines.allSatisfy { $0["sparsity"]?.doubleValue == 0.5 })
        // inspect --sparsity reads the same: the 12 pruned linears follow 2:4, down_proj none.
        let inspect = try QdistProcess.run(["inspect", out.path, "--sparsity", "--json"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let sparsity = try XCTUnwrap(try JSONParser.parse(Array(inspect.stdout.utf8))["sparsity"]?["linears"]?.arrayValue)
        XCTAssertEqual(sparsity.count, 14)
        for l in sparsity {
            let down = l["name"]?.stringValue?.hasSuffix("down_proj") == true
            XCTAssertEqual(l["structure"]?.stringValue, down ? nil : "2:4", "\(l)")
            XCTAssertEqual(l["sparsity"]?.doubleValue, down ? 0 : 0.5, "\(l)")
        }
        let eval = try QdistProcess.run(["eval", "--model", out.path, "--data", QdistProcess.wikitext("test").path, "--windows", "1", "--seq-len", "64"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
    }

    func testPrunedFloatBytesAreTheSameForOneToFourRanksAndThreadCountsAndAfterAResume() throws {
        // Wide enough (256 inputs, 768 in down_proj) for OpenBLAS to split its products over threads.
        let wide = try QdistProcess.tinyModel(in: dir, seed: 6, hidden: 256, intermediate: 768, name: "wide")
        // Unstructured SparseGPT's linears are never split (one threshold per slab of rows);
        // Wanda 2:4's rows are, when ranks outnumber a stage's linears.
        for (name, pruner) in [("sgpt", "SparseGPTModifier: {sparsity: 0.5, block_size: 32}"),
                               ("wanda", "WandaPruningModifier: {mask_structure: \"2:4\"}")] {
            let one = try prune(pruner, "\(name)-1", model: wide).out
            for (ranks, threads) in [(2, 1), (3, 2), (4, 1)] {
                let other = try prune(pruner, "\(name)-\(ranks)", ranks: ranks, threads: threads, model: wide).out
                XCTAssertEqual(try CheckpointComparison.differingTensors(one, other), [], "\(name) on \(ranks) ranks × \(threads) threads")
            }
            let stopped = try prune(pruner, "\(name)-resumed", ranks: 2, extra: ["--stop-after-block", "0"], expectSuccess: false, model: wide)
            XCTAssertNotEqual(stopped.result.status, 0)
            let resumed = try prune(pruner, "\(name)-resumed", ranks: 2, model: wide).out
            XCTAssertEqual(try CheckpointComparison.differingTensors(one, resumed), [], "\(name) resumed after block 0")
        }
    }
}
