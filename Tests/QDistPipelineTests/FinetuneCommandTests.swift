import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// `qdist finetune` end to end on a tiny model: the same losses (bit for bit) for 1, 2 and 4 ranks under every
/// ZeRO stage, optimizer state that shrinks as 1/P, a resume on another number of ranks that
/// continues the same loss curve, a PEFT adapter folder, and one-line errors.
final class FinetuneCommandTests: XCTestCase {
    static let steps = 20
    var dir: URL!
    var model: URL!
    var config: String!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = dir.appendingPathComponent("tiny")
        let r = try QdistProcess.run(["tiny-model", model.path, "--layers", "2", "--hidden", "64", "--heads", "4",
                                      "--kv-heads", "2", "--intermediate", "128", "--seed", "7"])
        XCTAssertEqual(r.status, 0, r.stderr)
        // 40 kB of wikitext: ~1k windows of 32 tokens for the tiny tokenizer, tokenized in well under a second.
        let text = try Data(contentsOf: QdistProcess.wikitext("valid")).prefix(40_000)
        let data = dir.appendingPathComponent("train.txt")
        try text.write(to: data)
        config = try write("""
            model: \(model.path)
            data: \(data.path)
            seq_len: 32
            micro_batch_size: 2
            global_batch_size: 8
            steps: \(Self.steps)
            learning_rate: 1.0e-2
            warmup_steps: 3
            weight_decay: 0.01
            max_grad_norm: 0.5
            seed: 3
            lora: {r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: all-linear}
            """)
    }

    func write(_ yaml: String) throws -> String {
        let url = dir.appendingPathComponent("ft-\(UUID().uuidString).yaml")
        try Data(yaml.utf8).write(to: url)
        return url.path
    }

    /// Runs finetune with `--json` and returns the summary.
    func finetune(ranks: Int?, stage: Int, output: String, extra: [String] = []) throws -> [String: Any] {
        let r = try QdistProcess.run(["finetune", "--config", config, "--output", dir.appendingPathComponent(output).path,
                                      "--zero-stage", "\(stage)", "--json"] + extra, ranks: ranks)
        XCTAssertEqual(r.status, 0, "\(ranks ?? 1) ranks, stage \(stage): \(r.stderr)")
        return try QdistProcess.jsonObject(r)
    }

    func losses(_ summary: [String: Any]) throws -> [Double] { try XCTUnwrap(summary["losses"] as? [Double]) }

    func optimizerBytes(_ summary: [String: Any]) throws -> [Double] {
        try XCTUnwrap(summary["memory_per_rank"] as? [[String: Double]]).map { try XCTUnwrap($0["optimizer_state"]) }
    }

    /// The same losses to the last bit (gradients, norms and losses are summed exactly).
    func assertSameLosses(_ a: [Double], _ b: [Double], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() {
            XCTAssertEqual(x.bitPattern, y.bitPattern, "\(what): step \(i + 1): \(x) vs \(y)", file: file, line: line)
        }
    }

    /// P ranks under stages 0–3 against one process at stage 0; stage ≥ 1 keeps 1/P of the
    /// optimizer state.
    func assertRanksMatchOneProcess(_ ranks: Int) throws {
        let reference = try finetune(ranks: nil, stage: 0, output: "one")
        let expected = try losses(reference)
        XCTAssertEqual(expected.count, Self.steps)
        XCTAssertLessThan(expected.suffix(5).reduce(0, +), expected.prefix(5).reduce(0, +), "the loss falls: \(expected)")
        let full = try XCTUnwrap(try optimizerBytes(reference).first)
        for stage in 0...3 {
            let s = try finetune(ranks: ranks, stage: stage, output: "p\(ranks)-z\(stage)")
            assertSameLosses(try losses(s), expected, "\(ranks) ranks, ZeRO-\(stage)")
            let bytes = try optimizerBytes(s)
            XCTAssertEqual(bytes.count, ranks)
            for b in bytes {
                XCTAssertEqual(b, stage == 0 ? full : full / Double(ranks), accuracy: 8 * 4, "ZeRO-\(stage) rank optimizer bytes")
            }
        }
    }

    func testOneProcessGivesTheSameLossesUnderEveryZeROStage() throws {
        let expected = try losses(try finetune(ranks: nil, stage: 0, output: "zero"))
        for stage in 1...3 { assertSameLosses(try losses(try finetune(ranks: nil, stage: stage, output: "z\(stage)")), expected, "ZeRO-\(stage)") }
    }

    func testTwoRanksGiveTheSameLossesAsOneUnderEveryZeROStage() throws { try assertRanksMatchOneProcess(2) }

    func testFourRanksGiveTheSameLossesAsOneUnderEveryZeROStage() throws { try assertRanksMatchOneProcess(4) }

    func testResumingOnAnotherNumberOfRanksContinuesTheSameLossCurve() throws {
        let expected = try losses(try finetune(ranks: nil, stage: 0, output: "straight"))
        let first = try finetune(ranks: 2, stage: 3, output: "resumed", extra: ["--stop-after", "8"])
        XCTAssertEqual(first["stopped_early"] as? Bool, true)
        assertSameLosses(try losses(first), Array(expected[..<8]), "first 8 steps on 2 ranks")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("resumed/adapter_model.safetensors").path))
        let second = try finetune(ranks: 4, stage: 1, output: "resumed")
        XCTAssertEqual(second["start_step"] as? Int, 8)
        assertSameLosses(try losses(second), Array(expected[8...]), "steps 9–20 resumed on 4 ranks")
        XCTAssertEqual(second["stopped_early"] as? Bool, false)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("resumed/adapter_model.safetensors").path))
    }

    func testAdapterFolderHasPEFTConfigAndTensorNames() throws {
        _ = try finetune(ranks: 2, stage: 3, output: "adapter")
        let folder = dir.appendingPathComponent("adapter")
        let adapterConfig = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("adapter_config.json"))) as? [String: Any])
        XCTAssertEqual(adapterConfig["peft_type"] as? String, "LORA")
        XCTAssertEqual(adapterConfig["task_type"] as? String, "CAUSAL_LM")
        XCTAssertEqual(adapterConfig["r"] as? Int, 4)
        XCTAssertEqual(adapterConfig["lora_alpha"] as? Double, 8)
        XCTAssertEqual(adapterConfig["target_modules"] as? [String], ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        XCTAssertEqual(adapterConfig["bias"] as? String, "none")
        let weights = try SafetensorsReader(url: folder.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertEqual(weights.tensorNames.count, 2 * 7 * 2)
        XCTAssertEqual(try weights.info("base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight").shape, [4, 64])
        XCTAssertEqual(try weights.info("base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight").shape, [32, 4])
        XCTAssertEqual(try weights.info("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight").shape, [4, 128])
        let b = try weights.tensor("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight")
        XCTAssertGreaterThan(b.scalars.map(abs).max()!, 0, "B has been trained away from zero")
        let again = try QdistProcess.run(["finetune", "--config", config, "--output", folder.path])
        XCTAssertNotEqual(again.status, 0, "a finished adapter is not overwritten silently")
        XCTAssertTrue(again.stderr.contains("--overwrite"), again.stderr)
    }

    func testMemoryCommandPredictsWhatTheRunReportsPerRank() throws {
        for stage in [0, 3] {
            let run = try finetune(ranks: 2, stage: stage, output: "mem\(stage)", extra: ["--steps", "2"])
            let r = try QdistProcess.run(["memory", "--model", model.path, "--train", "--lora-rank", "4", "--zero-stage", "\(stage)",
                                          "--world-size", "2", "--base-dtype", "nf4_dq", "--seq-len", "32", "--micro-batch-size", "2", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let training = try XCTUnwrap(try QdistProcess.jsonObject(r)["training"] as? [String: Any])
            let predicted = try XCTUnwrap(training["per_rank_by_category"] as? [String: Double])
            XCTAssertEqual(try XCTUnwrap(run["predicted_memory_per_rank"] as? [String: Double])["optimizer_state"], predicted["optimizer_state"])
            for measured in try XCTUnwrap(run["memory_per_rank"] as? [[String: Double]]) {
                // Activations differ by design here: the run keeps dropout masks (lora_dropout 0.1), `memory` assumes none.
                for key in ["base_weights", "adapters", "gradients", "optimizer_state"] {
                    let p = try XCTUnwrap(predicted[key]), m = try XCTUnwrap(measured[key])
                    XCTAssertEqual(m, p, accuracy: 0.01 * p, "ZeRO-\(stage) \(key)")
                }
            }
        }
    }

    func testUnknownKeyIsOneLineNamingFileLineAndKey() throws {
        let bad = try write("""
            model: \(model.path)
            data: x.txt
            lora:
              r: 4
              lora_alfa: 8
            """)
        let r = try QdistProcess.run(["finetune", "--config", bad, "--output", dir.appendingPathComponent("bad").path])
        XCTAssertNotEqual(r.status, 0)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("\(bad):5: lora.lora_alfa: unknown key"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("bad").path))
    }

    func testShippedSmolLM2ConfigDecodes() throws {
        let shipped = QdistProcess.repositoryRoot.appendingPathComponent("Configs/finetune/smollm2-qlora.yaml").path
        // A missing model is the first problem a machine without SmolLM2 meets; the config itself must decode.
        let r = try QdistProcess.run(["finetune", "--config", shipped, "--model", dir.appendingPathComponent("none").path,
                                      "--output", dir.appendingPathComponent("o").path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("none: model not found"), r.stderr)
    }
}
