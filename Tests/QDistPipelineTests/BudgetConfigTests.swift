import Foundation
import QDistIO
import QDistQuant
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// `budget:` decodes strictly, its candidates spell the schemes they say, and a budget the
/// recipe or format cannot honour is refused in one line before any work.
final class BudgetConfigTests: XCTestCase {
    func decode(_ yaml: String) throws -> QuantizeJobConfig {
        try StrictYAML.decode(QuantizeJobConfig.self, from: yaml, path: "r.yaml")
    }

    let recipe = "recipe: {GPTQModifier: {scheme: W4A16_ASYM}}\n"

    func testCandidatesSpellBitsGroupsAndSymmetry() throws {
        let w3 = try BudgetConfig.weights(of: "W3 g64 asym")
        XCTAssertEqual([w3.numBits, w3.groupSize], [3, 64])
        XCTAssertEqual(w3.strategy, .group)
        XCTAssertFalse(w3.symmetric)
        let w8 = try BudgetConfig.weights(of: "W8")
        XCTAssertEqual(w8.strategy, .channel)
        XCTAssertTrue(w8.symmetric, "symmetric unless asym is said, as the W4A16 preset")
        XCTAssertNil(w8.groupSize)
        let preset = try BudgetConfig.weights(of: "W4A16_ASYM g32")
        XCTAssertEqual([preset.numBits, preset.groupSize], [4, 32])
        XCTAssertFalse(preset.symmetric)
        for bad in ["W9", "W1 g64", "W4 g0", "W4 gx", "W4 g64 sym asym", "W4A16 asym", "W8A8", "FP8", "W4 nf4", ""] {
            XCTAssertThrowsError(try BudgetConfig.weights(of: bad), bad) { e in
                XCTAssertTrue("\(e)".contains("candidates"), "\(bad): \(e)")
            }
        }
    }

    func testBudgetKeyDecodesWithDefaultsAndRejectsMistakes() throws {
        let job = try decode("budget: {bits_per_weight: 3.5}\n" + recipe)
        XCTAssertEqual(job.budget, BudgetConfig(bitsPerWeight: 3.5))
        XCTAssertNil(job.budget?.candidates, "the format's defaults")
        XCTAssertEqual(job.budget?.metric, .fisher)
        let full = try decode("budget: {bits_per_weight: 4.25, candidates: [W3 g64 asym, W8], metric: gptq_loss, samples: 16}\n" + recipe)
        XCTAssertEqual(full.budget, BudgetConfig(bitsPerWeight: 4.25, candidates: ["W3 g64 asym", "W8"], metric: .gptqLoss, samples: 16))
        let kl = try decode("budget: {bits_per_weight: 3, metric: kl, fisher_samples: 4}\n" + recipe)
        XCTAssertEqual(kl.budget, BudgetConfig(bitsPerWeight: 3, metric: .kl, fisherSamples: 4))
        for (yaml, part) in [("budget: {bits_per_weight: 3.5, bits: 3}", "bits"), ("budget: {candidates: [W4]}", "bits_per_weight"),
                             ("budget: {bits_per_weight: 0}", "bits_per_weight"), ("budget: {bits_per_weight: 3, candidates: []}", "candidates"),
                             ("budget: {bits_per_weight: 3, candidates: [W4 g64, W4 g64 sym]}", "repeats"),
                             ("budget: {bits_per_weight: 3, metric: kl2}", "metric"), ("budget: {bits_per_weight: 3, samples: 0}", "samples"),
                             ("budget: {bits_per_weight: 3, metric: output_error, fisher_samples: 4}", "fisher_samples")] {
            XCTAssertThrowsError(try decode(yaml + "\n" + recipe), yaml) { e in
                XCTAssertTrue("\(e)".contains(part), "\(yaml): \(e)")
                XCTAssertFalse("\(e)".contains("\n"), "one line: \(e)")
            }
        }
    }

    /// Candidates take the modifier's observer and act-order; their cost is the writer's layout.
    func testResolvedBudgetTakesTheModifiersObserverAndCostsLikeTheWriter() throws {
        let job = try decode("""
            budget: {bits_per_weight: 3.5, candidates: [W3 g64 asym, W8, W4 g128]}
            recipe: {GPTQModifier: {config_groups: {g: {targets: [Linear], weights: {num_bits: 4, strategy: group, group_size: 64, observer: mse}}}}}
            """)
        let model = try ModelConfiguration(json: try JSONParser.parse(#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 192, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128, "torch_dtype": "bfloat16"}"#), path: "config.json")
        let budget = try QuantizationBudget(try XCTUnwrap(job.budget), recipe: job.recipe, format: .compressedTensors, model: model, calibrationSamples: 8)
        XCTAssertEqual(budget.samples, 8, "never more windows than the job calibrates on")
        XCTAssertEqual(budget.scaleBits, 16)
        XCTAssertEqual(budget.candidates.map(\.args.observer), [.mse, .mse, .mse])
        XCTAssertEqual(budget.candidates.map(\.args.actorder), [.static, nil, .static], "GPTQ's default static act-order on grouped candidates")
        let entry = QuantizationPlan.Entry(block: 0, suffix: "mlp.down_proj", inFeatures: 192, outFeatures: 64, args: budget.candidates[0].args)
        XCTAssertTrue(budget.fits(0, entry))
        XCTAssertFalse(budget.fits(2, entry), "128 does not divide 192 columns")
        // W3 g64 asym on (64, 192): 10 codes per int32 word → 20 words per row; 3 groups of bf16
        // scales; zero points packed along the 64 rows (7 words) per group; the shape record.
        XCTAssertEqual(try budget.bits(0, entry), 64 * 20 * 32 + 64 * 3 * 16 + 7 * 3 * 32 + 128)
        // W8 per channel, symmetric: 4 codes per word, one scale per row.
        XCTAssertEqual(try budget.bits(1, entry), 64 * 48 * 32 + 64 * 16 + 128)
    }

    func testBudgetIsRefusedWhereItCannotBeWrittenOrMeasured() throws {
        let model = try ModelConfiguration(json: try JSONParser.parse(#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128}"#), path: "config.json")
        let cases: [(String, QuantizeJobConfig.OutputFormat, String)] = [
            ("budget: {bits_per_weight: 4}\n" + recipe, .gptq, "compressed-tensors"),
            ("budget: {bits_per_weight: 4, candidates: [Q4_0]}\n" + recipe, .compressedTensors, "format: gguf"),
            ("budget: {bits_per_weight: 4, candidates: [W4 g32]}\nrecipe: {GPTQModifier: {scheme: GGUF}}", .gguf, "ggml block types"),
            ("budget: {bits_per_weight: 4}\nrecipe: {QuantizationModifier: {scheme: W8A8}}", .compressedTensors, "activations"),
            ("budget: {bits_per_weight: 4}\nrecipe: [{SmoothQuantModifier: {smoothing_strength: 0.5}}, {GPTQModifier: {scheme: W4A16}}]", .compressedTensors, "smooths"),
            ("budget: {bits_per_weight: 4, metric: gptq_loss}\nrecipe: {QuantizationModifier: {scheme: W4A16}}", .compressedTensors, "gptq_loss"),
            ("budget: {bits_per_weight: 4}\nrecipe: {GPTQModifier: {scheme: W4A16, actorder: group}}", .compressedTensors, "g_idx"),
        ]
        for (yaml, format, part) in cases {
            let job = try decode(yaml)
            XCTAssertThrowsError(try QuantizationBudget(try XCTUnwrap(job.budget), recipe: job.recipe, format: format, model: model,
                                                        calibrationSamples: 8), yaml) { e in
                XCTAssertTrue("\(e)".contains(part), "\(yaml): \(e)")
            }
        }
    }
}
