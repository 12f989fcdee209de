import Foundation
import QDistTestSupport
import QDistIO
import XCTest
@testable import QDistPipeline

/// Recipes decode strictly: every shipped one loads; every mistake is one line with file,
/// line and key.
final class QuantizeRecipeTests: XCTestCase {
    func decode(_ yaml: String) throws -> QuantizeJobConfig {
        try StrictYAML.decode(QuantizeJobConfig.self, from: yaml, path: "r.yaml")
    }

    func assertError(_ yaml: String, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try decode(yaml), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertFalse(text.contains("\n"), "one line: \(text)", file: file, line: line)
            for p in parts { XCTAssertTrue(text.contains(p), "\(text) should contain \(p)", file: file, line: line) }
        }
    }

    func testEveryShippedRecipeDecodes() throws {
        let folder = QdistProcess.repositoryRoot.appendingPathComponent("Configs/quantize")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }
        XCTAssertGreaterThanOrEqual(files.count, 5)
        for f in files {
            let job = try QuantizeJobConfig.load(folder.appendingPathComponent(f))
            XCTAssertNotNil(job.output, f)
            guard let modifier = job.recipe.modifier else {
                // Recipes that only prune (smollm2-sparsegpt-50, -2of4, wanda-2of4).
                XCTAssertNotNil(job.recipe.pruning, "\(f) neither quantizes nor prunes")
                continue
            }
            XCTAssertFalse(modifier.weightGroups.isEmpty, f)
            if f.contains("gptq") { XCTAssertTrue(job.recipe.solver.needsHessian, f) }
            if f.contains("-sq-") { XCTAssertEqual(type(of: job.recipe.modifiers[0]).recipeKey, "SmoothQuantModifier", f) }
            if f.contains("-awq-") { XCTAssertEqual(type(of: job.recipe.modifiers[0]).recipeKey, "AWQModifier", f) }
            for g in modifier.weightGroups where g.weights.strategy == .group {
                XCTAssertEqual(576 % (g.weights.groupSize ?? 0), 0, "\(f): SmolLM2's 576 inputs split into whole groups")
            }
        }
    }

    func testDefaultsAndPresetExpansion() throws {
        let job = try decode("recipe: {GPTQModifier: {scheme: W4A16, actorder: static}}")
        XCTAssertEqual(job.format, .compressedTensors)
        XCTAssertEqual(job.sequential, .block)
        XCTAssertEqual(job.calibration, CalibrationConfig())
        XCTAssertEqual(job.calibration.sampler, .splitmix64)
        let python = try decode("calibration: {seed: 7, sampler: python_random}\nrecipe: {GPTQModifier: {scheme: W4A16}}")
        XCTAssertEqual(python.calibration.sampler, .pythonRandom)
        XCTAssertEqual(python.calibration.seed, 7)
        XCTAssertEqual(job.recipe.modifier!.ignore, ["lm_head"])
        let w = try XCTUnwrap(job.recipe.modifier!.weightGroups.first?.weights)
        XCTAssertEqual(w, WeightArgsConfig(numBits: 4, symmetric: true, strategy: .group, groupSize: 128, actorder: .static))
    }

    /// GPTQ's act-order as llm-compressor resolves it: `static` by default for grouped weights,
    /// compressed-tensors' aliases, an explicit `null` to turn it off, and `group` (g_idx)
    /// refused for compressed-tensors, which today's transformers and vLLM cannot load.
    func testActOrderDefaultsToStaticAcceptsAliasesAndRefusesGroupForCompressedTensors() throws {
        let config = ModelConfiguration(hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 1, numAttentionHeads: 4,
                                        numKeyValueHeads: 2, vocabSize: 512)
        func orders(_ modifier: String, format: QuantizeJobConfig.OutputFormat = .compressedTensors) throws -> Set<String> {
            let job = try decode("recipe: {\(modifier)}")
            let plan = try QuantizationPlan(recipe: job.recipe, config: config, format: format)
            return Set(plan.entries.map { $0.args.actorder?.rawValue ?? "none" })
        }
        let grouped = "config_groups: {g: {targets: [Linear], weights: {num_bits: 4, strategy: group, group_size: 32}}}"
        XCTAssertEqual(try orders("GPTQModifier: {\(grouped)}"), ["static"], "llm-compressor's default")
        XCTAssertEqual(try orders("GPTQModifier: {actorder: null, \(grouped)}"), ["none"])
        XCTAssertEqual(try orders("GPTQModifier: {actorder: weight, \(grouped)}"), ["static"])
        XCTAssertEqual(try orders("GPTQModifier: {actorder: dynamic, \(grouped)}", format: .gptq), ["group"])
        XCTAssertEqual(try orders("GPTQModifier: {scheme: W8A16}"), ["none"], "channel weights have no act-order by default")
        XCTAssertEqual(try orders("QuantizationModifier: {\(grouped)}"), ["none"], "round-to-nearest has no column order")
        let job = try decode("recipe: {GPTQModifier: {actorder: group, \(grouped)}}")
        XCTAssertThrowsError(try QuantizationPlan(recipe: job.recipe, config: config, format: .compressedTensors)) { error in
            let text = "\(error)"
            XCTAssertFalse(text.contains("\n"))
            for part in ["actorder group", "g_idx", "actorder: static", "--format gptq"] {
                XCTAssertTrue(text.contains(part), "\(text) should say \(part)")
            }
        }
        assertError("recipe: {GPTQModifier: {actorder: sideways, \(grouped)}}", contains: ["actorder", "sideways", "weight"])
    }

    func testDuplicateKeysAndDeepNestingAreOneLineErrorsNotSilentOrCrashes() {
        assertError("calibration: {samples: 8}\ncalibration: {samples: 9}\nrecipe: {GPTQModifier: {scheme: W4A16}}",
                    contains: ["r.yaml:2", "duplicate key 'calibration'"])
        assertError("recipe:\n  GPTQModifier:\n    scheme: W4A16\n    scheme: W8A16\n", contains: ["r.yaml:4", "duplicate key 'scheme'"])
        // 3,000 levels: flow brackets, and block indentation (the parser would overflow its stack).
        assertError("recipe: " + String(repeating: "[", count: 3000) + String(repeating: "]", count: 3000),
                    contains: ["r.yaml:1", "nested", "at most 64"])
        let block = (0..<3000).map { String(repeating: " ", count: 2 * $0) + "k\($0):" }.joined(separator: "\n")
        assertError(block, contains: ["nested", "at most 64"])
    }

    func testUnknownKeyNamesFileLineAndKey() {
        assertError("""
            model: m
            recipe:
              GPTQModifier:
                scheme: W4A16
                blok_size: 64
            """, contains: ["r.yaml:5", "recipe.GPTQModifier.blok_size", "unknown key", "block_size"])
        assertError("modle: x\nrecipe: {GPTQModifier: {scheme: W4A16}}", contains: ["r.yaml:1", "modle", "unknown key"])
    }

    func testWrongTypesAndValuesAreNamed() {
        assertError("calibration: {samples: many}\nrecipe: {GPTQModifier: {scheme: W4A16}}", contains: ["calibration.samples", "integer"])
        assertError("format: onnx\nrecipe: {GPTQModifier: {scheme: W4A16}}", contains: ["format"])
        assertError("calibration: {sampler: numpy}\nrecipe: {GPTQModifier: {scheme: W4A16}}", contains: ["calibration.sampler"])
        assertError("recipe: {GPTQModifier: {scheme: W5A16}}", contains: ["unknown scheme 'W5A16'", "W4A16"])
        assertError("recipe: {GPTQModifier: {scheme: W4A16, dampening_frac: 2}}", contains: ["dampening_frac"])
        assertError("""
            recipe:
              QuantizationModifier:
                config_groups:
                  g: {targets: [Linear], weights: {num_bits: 4, strategy: channel, group_size: 64}}
            """, contains: ["r.yaml:4", "group_size", "strategy: group"])
        assertError("recipe: {QuantizationModifier: {scheme: W8A16, block_size: 64}}", contains: ["GPTQModifier"])
    }

    func testRecipeNeedsExactlyOneModifierAndOneSchemeSource() {
        assertError("model: m", contains: ["missing required key 'recipe'"])
        assertError("recipe: {}", contains: ["give a modifier", "GPTQModifier"])
        assertError("recipe: {GPTQModifier: {targets: [Linear]}}", contains: ["exactly one of scheme or config_groups"])
        assertError("recipe: [1, 2", contains: ["not valid YAML"])
    }

    /// Modifier lists: order, one quantizer, known modifiers, strict per-modifier keys.
    func testModifierListsAreCheckedForOrderQuantizerAndKeys() throws {
        let sq = try decode("recipe:\n  - SmoothQuantModifier: {smoothing_strength: 0.6}\n  - GPTQModifier: {scheme: W8A8}")
        XCTAssertEqual(sq.recipe.name, "SmoothQuantModifier+GPTQModifier")
        XCTAssertEqual(sq.recipe.quantizerIndex, 1)
        XCTAssertEqual(sq.recipe.smoothings.count, 1)
        XCTAssertTrue(sq.recipe.solver.needsHessian)
        let awq = try decode("recipe: [{AWQModifier: {duo_scaling: both, n_grid: 10, apply_clip: true}}, {QuantizationModifier: {scheme: W4A16_ASYM}}]")
        XCTAssertEqual((awq.recipe.modifiers[0] as? AWQModifier)?.search, AWQSmoothing(duoScaling: .both, gridPoints: 10, applyClip: true))
        XCTAssertNil(try decode("recipe: [{AWQModifier: {}}, {GPTQModifier: {scheme: W4A16}}]").recipe.smoothings[0].weightClip,
                       "no clip search unless asked (llm-compressor has none)")
        let alone = try decode("recipe: {AWQModifier: {scheme: W4A16_ASYM}}")
        XCTAssertEqual(alone.recipe.quantizerIndex, 0, "AWQModifier with a scheme quantizes round-to-nearest")
        XCTAssertFalse(alone.recipe.solver.needsHessian)

        assertError("recipe:\n  - GPTQModifier: {scheme: W8A8}\n  - SmoothQuantModifier: {}", contains: ["SmoothQuantModifier comes after the quantizing GPTQModifier"])
        assertError("recipe:\n  - SmoothQuantModifier: {}", contains: ["no modifier quantizes"])
        assertError("recipe:\n  - QuantizationModifier: {scheme: W8A8}\n  - GPTQModifier: {scheme: W8A8}", contains: ["both set a scheme"])
        assertError("recipe:\n  - SmoothQuantModifier: {}\n  - SmoothQuantModifier: {}\n  - GPTQModifier: {scheme: W8A8}", contains: ["appears twice"])
        assertError("recipe: {SmoothQuantModifier: {}, GPTQModifier: {scheme: W8A8}}", contains: ["write recipe: as a list"])
        assertError("recipe: [{SpinQuantModifier: {}}]", contains: ["unknown modifier", "AWQModifier"])
        assertError("recipe: [{SmoothQuantModifier: {smoothing_strength: 1.5}}, {QuantizationModifier: {scheme: W8A8}}]", contains: ["smoothing_strength", "[0, 1]"])
        assertError("recipe: [{SmoothQuantModifier: {alpha: 0.5}}, {QuantizationModifier: {scheme: W8A8}}]", contains: ["alpha", "unknown key", "smoothing_strength"])
        assertError("recipe: [{AWQModifier: {n_grid: 1}}, {QuantizationModifier: {scheme: W4A16}}]", contains: ["n_grid", "between 2"])
        assertError("recipe: [{AWQModifier: {duo: true}}, {QuantizationModifier: {scheme: W4A16}}]", contains: ["duo", "unknown key", "duo_scaling"])
    }
}
