import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// AWQ (with the clip search), AWQ + GPTQ and SmoothQuant + static W8A8 write the same bytes — codes, scales, input
/// scales and the smoothed norm weights — for 1 to 4 ranks and for 1 or 2 OpenBLAS threads, on a
/// SmolLM2-sized block (hidden 576, intermediate 1536; 9 KV heads so that v → o is smoothed
/// too). The statistics and grid losses are summed in window order, so no tolerance is needed.
/// (Grids of 3–4 points keep the debug build under two minutes per recipe; the search code is
/// the same for any grid.)
final class SmoothingRankIndependenceTests: XCTestCase {
    var dir: URL!
    var model: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = dir.appendingPathComponent("model")
        let r = try QdistProcess.run(["tiny-model", model.path, "--layers", "2", "--hidden", "576", "--heads", "9",
                                      "--kv-heads", "9", "--intermediate", "1536", "--vocab", "1024", "--seed", "8"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func recipe(_ name: String, _ modifiers: String) throws -> String {
        let url = dir.appendingPathComponent(name + ".yaml")
        try Data("""
            format: compressed-tensors
            sequential: block
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 7, seq_len: 96, seed: 2}
            recipe:
            \(modifiers)
            """.utf8).write(to: url)
        return url.path
    }

    func quantize(_ recipe: String, _ name: String, threads: Int, ranks: Int? = nil) throws -> URL {
        let out = dir.appendingPathComponent(name)
        let r = try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", out.path],
                                     ranks: ranks, environment: ["OPENBLAS_NUM_THREADS": String(threads)], timeout: 900)
        XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
        return out
    }

    func assertSameForAnyRanksAndThreads(_ recipe: String, _ label: String) throws {
        let reference = try quantize(recipe, "\(label)-p1-t1", threads: 1)
        let folder = try CheckpointFolder(url: reference)
        let original = try CheckpointFolder(url: model)
        // The smoothing really happened: norms differ from the model's.
        let norm = "model.layers.1.post_attention_layernorm.weight"
        XCTAssertNotEqual(try folder.tensor(norm).scalars, try original.tensor(norm).scalars, "\(label): \(norm) smoothed")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: reference.appendingPathComponent("quantization_report.json"))) as? [String: Any]
        XCTAssertFalse((report?["smoothing"] as? [Any] ?? []).isEmpty, "\(label): the report lists the smoothing decisions")
        let runs = [("p1-t2", 2, nil), ("p2", 1, 2), ("p3", 1, 3), ("p4", 1, 4)] as [(String, Int, Int?)]
        for (name, threads, ranks) in runs {
            let out = try quantize(recipe, "\(label)-\(name)", threads: threads, ranks: ranks)
            XCTAssertEqual(try CheckpointComparison.differingTensors(reference, out), [], "\(label) \(name): every tensor byte for byte")
        }
    }

    func testAWQThenRoundToNearestIsTheSameForOneToFourRanksAndTwoThreadCounts() throws {
        let recipe = try recipe("awq", """
              - AWQModifier: {duo_scaling: both, n_grid: 4, apply_clip: true}
              - QuantizationModifier:
                  config_groups:
                    g0: {targets: [Linear], weights: {num_bits: 4, symmetric: false, strategy: group, group_size: 64}}
            """)
        try assertSameForAnyRanksAndThreads(recipe, "awq")
    }

    func testAWQThenGPTQIsTheSameForOneToFourRanksAndTwoThreadCounts() throws {
        let recipe = try recipe("awq-gptq", """
              - AWQModifier: {n_grid: 3}
              - GPTQModifier:
                  actorder: static
                  config_groups:
                    g0: {targets: [Linear], weights: {num_bits: 4, symmetric: false, strategy: group, group_size: 64}}
            """)
        try assertSameForAnyRanksAndThreads(recipe, "awq-gptq")
    }

    func testSmoothQuantThenStaticW8A8IsTheSameForOneToFourRanksAndTwoThreadCounts() throws {
        let recipe = try recipe("sq", """
              - SmoothQuantModifier: {smoothing_strength: 0.5}
              - QuantizationModifier:
                  config_groups:
                    g0:
                      targets: [Linear]
                      weights: {num_bits: 8, symmetric: true, strategy: channel}
                      input_activations: {num_bits: 8, symmetric: true, strategy: tensor, dynamic: false, observer: minmax}
            """)
        try assertSameForAnyRanksAndThreads(recipe, "sq")
    }

    /// A smoothed block's norms live only in the staging folder until the output is written: a
    /// run stopped after block 0 and resumed (on another rank count) writes the same bytes.
    func testAStoppedSmoothQuantRunResumesToTheSameOutput() throws {
        let recipe = try recipe("sq-resume", """
              - SmoothQuantModifier: {smoothing_strength: 0.6}
              - GPTQModifier:
                  config_groups:
                    g0:
                      targets: [Linear]
                      weights: {num_bits: 8, symmetric: true, strategy: channel}
                      input_activations: {num_bits: 8, symmetric: true, strategy: tensor, dynamic: false, observer: static_minmax}
            """)
        let whole = try quantize(recipe, "sq-whole", threads: 1)
        let out = dir.appendingPathComponent("sq-resumed")
        let stopped = try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", out.path,
                                            "--stop-after-block", "0"])
        XCTAssertEqual(stopped.status, 3, stopped.stderr)
        let resumed = try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", out.path], ranks: 2)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue((resumed.stdout + resumed.stderr).contains("resuming after block 0"), resumed.stdout + resumed.stderr)
        XCTAssertEqual(try CheckpointComparison.differingTensors(whole, out), [])
    }
}
