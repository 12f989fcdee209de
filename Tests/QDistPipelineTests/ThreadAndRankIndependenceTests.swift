import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// Quantize writes the same bytes whatever the OpenBLAS thread count and the number of ranks:
/// on a SmolLM2-shaped model (hidden 576, intermediate 1536, 9 heads / 3 KV heads), whose
/// products are large enough for OpenBLAS to really use several threads, with windows of 512
/// tokens and of 500 (a depth that OpenBLAS's one-thread and threaded drivers block
/// differently), act-order GPTQ (chaotic in H: one last bit turns into other codes). Outputs are
/// compared tensor by tensor, byte for byte, with no tolerance.
final class ThreadAndRankIndependenceTests: XCTestCase {
    var dir: URL!
    var model: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = dir.appendingPathComponent("smollm2-shaped")
        let r = try QdistProcess.run(["tiny-model", model.path, "--layers", "2", "--hidden", "576", "--heads", "9",
                                      "--kv-heads", "3", "--intermediate", "1536", "--vocab", "1024", "--seed", "5"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func recipe(seqLen: Int, samples: Int) throws -> String {
        let url = dir.appendingPathComponent("recipe-\(seqLen).yaml")
        try Data("""
            format: compressed-tensors
            sequential: linear
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: \(samples), seq_len: \(seqLen), seed: 1}
            recipe:
              GPTQModifier:
                actorder: static
                config_groups:
                  g0: {targets: [Linear], weights: {num_bits: 4, symmetric: false, strategy: group, group_size: 64}}
            """.utf8).write(to: url)
        return url.path
    }

    /// Quantizes into `name` with `threads` OpenBLAS threads per rank (and `ranks` under mpirun).
    func quantize(_ recipe: String, _ name: String, threads: Int, ranks: Int? = nil) throws -> URL {
        let out = dir.appendingPathComponent(name)
        let r = try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", out.path],
                                     ranks: ranks, environment: ["OPENBLAS_NUM_THREADS": String(threads)], timeout: 900)
        XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
        return out
    }

    /// Names of the tensors whose bytes (or dtype/shape) differ, over the union of both outputs.
    func differingTensors(_ one: URL, _ other: URL) throws -> [String] {
        XCTAssertGreaterThan(try CheckpointComparison.tensorCount(one), 2 * 7 * 3, "packed codes, scales and zero points of 14 linears at least")
        return try CheckpointComparison.differingTensors(one, other)
    }

    func testOneAndTwoThreadsAndTwoAndThreeRanksWriteIdenticalTensors() throws {
        let recipe = try recipe(seqLen: 512, samples: 6)
        let reference = try quantize(recipe, "t1", threads: 1)
        let runs = [("t2", try quantize(recipe, "t2", threads: 2)),
                    ("n2", try quantize(recipe, "n2", threads: 1, ranks: 2)),
                    ("n3", try quantize(recipe, "n3", threads: 1, ranks: 3))]
        for (name, out) in runs {
            XCTAssertEqual(try differingTensors(reference, out), [], "\(name) against one process on one thread")
        }
    }

    /// FP8 with static per-tensor input scales: each scale is a moving average over every rank's
    /// window ranges, the weights' per-tensor scales are never split across ranks (four ranks,
    /// one linear in the o_proj stage), and the E4M3 codes are the same bytes everywhere.
    func testFP8StaticScalesAndCodesAreIdenticalForAnyThreadsAndRanks() throws {
        let url = dir.appendingPathComponent("fp8.yaml")
        try Data("""
            format: compressed-tensors
            sequential: linear
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 5, seq_len: 512, seed: 1}
            recipe: {QuantizationModifier: {scheme: FP8}}
            """.utf8).write(to: url)
        let reference = try quantize(url.path, "fp8-t1", threads: 1)
        let scale = try CheckpointFolder(url: reference).storedTensor("model.layers.1.self_attn.o_proj.input_scale")
        XCTAssertEqual(scale.shape, [1])
        for (name, out) in [("t2", try quantize(url.path, "fp8-t2", threads: 2)), ("n2", try quantize(url.path, "fp8-n2", threads: 1, ranks: 2)),
                            ("n4", try quantize(url.path, "fp8-n4", threads: 1, ranks: 4))] {
            XCTAssertEqual(try differingTensors(reference, out), [], "FP8 \(name) against one process on one thread")
        }
    }

    /// HQQ: its early stop watches the mean error of the whole weight, so a linear is never
    /// split by rows across ranks (four ranks, one linear per stage with `sequential: linear`),
    /// and its float zero points are the same bytes for any thread count and P.
    func testHQQFloatZeroPointsAreIdenticalForAnyThreadsAndRanks() throws {
        let url = dir.appendingPathComponent("hqq.yaml")
        try Data("format: float-zero\nsequential: linear\nrecipe: {HQQModifier: {num_bits: 3, group_size: 64}}\n".utf8).write(to: url)
        let reference = try quantize(url.path, "hqq-t1", threads: 1)
        for (name, out) in [("t2", try quantize(url.path, "hqq-t2", threads: 2)), ("n2", try quantize(url.path, "hqq-n2", threads: 1, ranks: 2)),
                            ("n4", try quantize(url.path, "hqq-n4", threads: 2, ranks: 4))] {
            XCTAssertEqual(try differingTensors(reference, out), [], "HQQ \(name) against one process on one thread")
        }
    }

    /// NF4 with double-quantized absmaxes: the second-level offset is the mean over the whole
    /// weight, so such a linear is never split by rows; its packed codes and 8-bit absmaxes are
    /// the same bytes for any thread count and P.
    func testNF4DoubleQuantizedFoldersAreIdenticalForAnyThreadsAndRanks() throws {
        let url = dir.appendingPathComponent("nf4.yaml")
        try Data("format: bitsandbytes\nsequential: linear\nrecipe: {QuantizationModifier: {scheme: NF4}}\n".utf8).write(to: url)
        let reference = try quantize(url.path, "nf4-t1", threads: 1)
        for (name, out) in [("t2", try quantize(url.path, "nf4-t2", threads: 2)), ("n2", try quantize(url.path, "nf4-n2", threads: 1, ranks: 2)),
                            ("n4", try quantize(url.path, "nf4-n4", threads: 2, ranks: 4))] {
            XCTAssertEqual(try differingTensors(reference, out), [], "NF4 \(name) against one process on one thread")
        }
    }

    func testAWindowDepthThatOpenBLASBlocksByThreadCountStillGivesIdenticalTensors() throws {
        // 500 tokens: each window's Gram has depth 500, inside (GEMM_Q, 2·GEMM_Q), not a multiple of 32.
        let recipe = try recipe(seqLen: 500, samples: 4)
        let one = try quantize(recipe, "d1", threads: 1)
        let two = try quantize(recipe, "d2", threads: 2)
        XCTAssertEqual(try differingTensors(one, two), [])
    }

    func testFinetuneLossesAreIdenticalForOneAndTwoThreadsAndForRanksUnderZeROZeroAndThree() throws {
        // Micro-batches of 2 × 249 predicted tokens: the weight-gradient products have depth 498.
        let data = dir.appendingPathComponent("train.txt")
        try Data(contentsOf: QdistProcess.wikitext("valid")).prefix(60_000).write(to: data)
        let config = dir.appendingPathComponent("ft.yaml")
        try Data("""
            model: \(model.path)
            data: \(data.path)
            seq_len: 250
            micro_batch_size: 2
            global_batch_size: 6
            steps: 3
            learning_rate: 1.0e-2
            max_grad_norm: 0.5
            seed: 2
            lora: {r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: all-linear}
            """.utf8).write(to: config)
        func losses(_ name: String, threads: Int, ranks: Int? = nil, stage: Int) throws -> [UInt64] {
            let r = try QdistProcess.run(["finetune", "--config", config.path, "--output", dir.appendingPathComponent(name).path,
                                          "--zero-stage", "\(stage)", "--json"],
                                         ranks: ranks, environment: ["OPENBLAS_NUM_THREADS": String(threads)], timeout: 900)
            XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
            return try XCTUnwrap(try QdistProcess.jsonObject(r)["losses"] as? [Double]).map(\.bitPattern)
        }
        let reference = try losses("f1", threads: 1, stage: 0)
        XCTAssertEqual(reference.count, 3)
        XCTAssertEqual(try losses("f2", threads: 2, stage: 0), reference, "2 threads")
        XCTAssertEqual(try losses("f2z3", threads: 2, stage: 3), reference, "2 threads, ZeRO-3")
        XCTAssertEqual(try losses("n2z0", threads: 1, ranks: 2, stage: 0), reference, "2 ranks, ZeRO-0")
        XCTAssertEqual(try losses("n3z3", threads: 1, ranks: 3, stage: 3), reference, "3 ranks, ZeRO-3")
    }
}
