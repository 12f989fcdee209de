import Foundation
import QDistIO
import QDistQuant
import QDistTensor
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// Pruning before quantization (issue 24, first part): `SparseGPTModifier` and
/// `WandaPruningModifier` with llm-compressor's keys, run on each targeted linear against the
/// combined calibration Hessian just before round-to-nearest or GPTQ (with masked updates)
/// quantizes it. The pattern must
/// survive into the written integers (a pruned weight is the grid's zero point), and the
/// output must not depend on the number of ranks. (The algorithms themselves are checked
/// against Float64 statements in SparseGPTTests and WandaTests.)
final class PruningQuantizeTests: XCTestCase {
    var dir: URL!
    var model: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = try QdistProcess.tinyModel(in: dir, seed: 9)
    }

    func decode(_ recipe: String) throws -> QuantizeJobConfig {
        try StrictYAML.decode(QuantizeJobConfig.self, from: "recipe:\n\(recipe)", path: "r.yaml")
    }

    static let groups = "config_groups: {g: {targets: [Linear], weights: {num_bits: 4, symmetric: false, strategy: group, group_size: 32}}}"
    let w4 = "  - QuantizationModifier: {\(PruningQuantizeTests.groups)}\n"

    func testRecipeKeysFollowLlmCompressorAndWhatWouldBreakThePatternIsRefused() throws {
        let job = try decode("  - SparseGPTModifier: {sparsity: 0.5}\n" + w4)
        let rule = try XCTUnwrap(job.recipe.pruning as? SparseGPTPruning)
        XCTAssertEqual(rule.settings, SparseGPT.Settings(sparsity: 0.5, n: 0, m: 0, blockSize: 128, dampening: 0.01))
        XCTAssertEqual(rule.targets, ["Linear"])
        let nm = try XCTUnwrap(try decode("  - WandaPruningModifier: {mask_structure: \"2:4\"}\n" + w4).recipe.pruning as? WandaPruning)
        XCTAssertEqual(nm.structure, try MaskStructure(parsing: "2:4"))
        for (recipe, message) in [
            ("  - SparseGPTModifier: {mask_structure: \"0:0\"}\n" + w4, "needs sparsity"),
            ("  - SparseGPTModifier: {sparsity: 1.0}\n" + w4, "[0, 1)"),
            ("  - SparseGPTModifier: {mask_structure: \"2of4\"}\n" + w4, "N:M"),
            ("  - SparseGPTModifier: {mask_structure: \"2:4\", block_size: 6}\n" + w4, "multiple of M"),
            ("  - SparseGPTModifier: {sparsity: 0.5, preserve_sparsity_mask: true, scheme: W4A16}\n", "not with a scheme in the same pass"),
            ("  - SparseGPTModifier: {sparsity: 0.5}\n  - HQQModifier: {}\n", "cannot keep the pruned zeros"),
            ("  - SparseGPTModifier: {sparsity: 0.5}\n  - WandaPruningModifier: {sparsity: 0.5}\n" + w4, "give one pruning modifier"),
            (w4 + "  - WandaPruningModifier: {sparsity: 0.5}\n", "smoothing and pruning modifiers go before it"),
            ("  - SparseGPTModifier: {sparsity: 0.5, scheme: W4A16}\n" + w4, "both set a scheme"),
            ("  - SparseGPTModifier: {sparsity: 0.5, scheme: W4A16, actorder: static}\n", "unknown key"),
        ] {
            XCTAssertThrowsError(try decode(recipe), recipe) { XCTAssertTrue("\($0)".contains(message), "\(recipe): \($0)") }
        }
    }

    /// The pipeline's own check, run on every pruned linear before it is staged: a quantizer
    /// that refilled a zero of an N:M pattern stops the job instead of writing it.
    func testAWrittenWeightThatBreaksTheNMPatternStopsTheJob() throws {
        let rule = WandaPruning(sparsity: 0, structure: try MaskStructure(parsing: "2:4"), targets: ["Linear"], ignore: [])
        let good = Tensor(shape: [2, 8], scalars: [0, 1, 0, 2, 3, 0, 0, 4, 0, 0, 0, 5, 6, 7, 0, 0])
        XCTAssertNoThrow(try rule.checkPattern(good, name: "good"))
        var bad = good
        bad[1, 6] = 0.5  // one zero left in inputs 4…7 of row 1
        XCTAssertThrowsError(try rule.checkPattern(bad, name: "m.layers.0.mlp.up_proj")) {
            XCTAssertTrue("\($0)".contains("row 1, inputs 4…7 hold 1 zeros"), "\($0)")
        }
        // Unstructured pruning has no per-group pattern to check.
        XCTAssertNoThrow(try WandaPruning(sparsity: 0.5, structure: try MaskStructure(parsing: "0:0"), targets: [], ignore: []).checkPattern(bad, name: "u"))
    }

    /// Quantizes with `pruner` before round-to-nearest W4 g32 asym into `name` (on `ranks`).
    func quantize(_ pruner: String, _ name: String, ranks: Int? = nil, threads: Int = 1, quantizer: String? = nil, model: URL? = nil) throws -> URL {
        let url = dir.appendingPathComponent("\(name).yaml"), out = dir.appendingPathComponent(name)
        try Data("""
            format: compressed-tensors
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 8, seq_len: 64, seed: 1}
            recipe:
              - \(pruner)
            \(quantizer ?? w4)
            """.utf8).write(to: url)
        let r = try QdistProcess.run(["quantize", "--config", url.path, "--model", (model ?? self.model).path, "--output", out.path], ranks: ranks,
                                     environment: ["OPENBLAS_NUM_THREADS": "\(threads)"])
        XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
        return out
    }

    /// Each linear's written codes: (codes, zero points, in, groupSize) per module.
    func codes(_ out: URL) throws -> [(name: String, linear: QuantizedLinearWeights)] {
        let reader = try XCTUnwrap(try QuantizedCheckpointReader.open(folder: try CheckpointFolder(url: out), config: try ModelConfiguration.load(from: out)))
        return try reader.modules.map { ($0, try reader.linear($0)) }
    }

    func testTwoOfFourSurvivesIntoTheWrittenIntegersForSparseGPTAndWandaAndThroughGPTQ() throws {
        for (name, pruner, quantizer) in [("sparsegpt", "SparseGPTModifier: {mask_structure: \"2:4\", block_size: 32}", w4),
                                          ("wanda", "WandaPruningModifier: {mask_structure: \"2:4\"}", w4),
                                          ("sparsegpt-gptq", "SparseGPTModifier: {mask_structure: \"2:4\", block_size: 32}",
                                           w4.replacingOccurrences(of: "QuantizationModifier", with: "GPTQModifier")),
                                          // One pass: SparseGPT with the scheme in the same modifier.
                                          ("sparsegpt-joint", "SparseGPTModifier: {mask_structure: \"2:4\", block_size: 32, " + Self.groups + "}", "")] {
            let out = try quantize(pruner, name, quantizer: quantizer)
            let linears = try codes(out)
            XCTAssertEqual(linears.count, 14)
            for (module, l) in linears {
                let zeros = l.effectiveZeroPoints
                for row in 0..<l.outFeatures {
                    for g in stride(from: 0, to: l.inFeatures, by: 4) {
                        // A pruned weight is the code equal to its group's zero point.
                        let atZero = (g..<g + 4).filter { l.codes[row * l.inFeatures + $0] == zeros[row * l.groupCount + $0 / 32] }.count
                        XCTAssertGreaterThanOrEqual(atZero, 2, "\(name) \(module) row \(row) inputs \(g)…\(g + 3)")
                    }
                }
                let dense = l.dequantize().scalars
                XCTAssertGreaterThanOrEqual(Double(dense.filter { $0 == 0 }.count) / Double(dense.count), 0.5, "\(name) \(module)")
            }
        }
    }

    /// Unstructured SparseGPT shares one threshold across a block's rows, so its linears are
    /// never split; 2:4 groups are per row, so they may be. Both, and the one-pass joint recipe,
    /// write the same bytes for 1 to 4 ranks and 1 or 2 BLAS threads, and unstructured 50 % prunes ⌊p·count⌋ + 1 per 64-column slab (no ties).
    func testTheSameBytesForOneToFourRanksAndThreadCountsAndTheUnstructuredCountPerSlab() throws {
        // Wide enough (256 inputs, 768 in down_proj) for OpenBLAS to split its products over threads.
        let wide = try QdistProcess.tinyModel(in: dir, seed: 4, hidden: 256, intermediate: 768, name: "wide")
        for (name, pruner, quantizer) in [("unstructured", "SparseGPTModifier: {sparsity: 0.5, block_size: 64}", w4),
                                          ("nm", "SparseGPTModifier: {mask_structure: \"2:4\", block_size: 32}", w4),
                                          ("joint", "SparseGPTModifier: {sparsity: 0.5, block_size: 64, " + Self.groups + "}", "")] {
            let one = try quantize(pruner, "\(name)-1", quantizer: quantizer, model: wide)
            for (ranks, threads) in [(2, 2), (3, 1), (4, 2)] {
                XCTAssertEqual(try CheckpointComparison.differingTensors(one, try quantize(pruner, "\(name)-\(ranks)", ranks: ranks, threads: threads,
                                                                                           quantizer: quantizer, model: wide)), [],
                               "\(name) on \(ranks) ranks × \(threads) threads")
            }
            guard name != "nm" else { continue }
            for (module, l) in try codes(one) {
                let dense = l.dequantize().scalars
                for a in stride(from: 0, to: l.inFeatures, by: 64) {
                    let zeros = (0..<l.outFeatures).reduce(0) { n, r in n + (a..<a + 64).filter { dense[r * l.inFeatures + $0] == 0 }.count }
                    XCTAssertGreaterThanOrEqual(zeros, l.outFeatures * 32 + 1, "\(module) columns \(a)…")
                }
            }
        }
    }
}
