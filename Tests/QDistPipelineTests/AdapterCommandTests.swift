import Foundation
import QDistTestSupport
import XCTest

/// `qdist eval --adapter`, `qdist generate --adapter` and `qdist merge-adapter` on a tiny
/// model with a random non-zero adapter, as a user runs them, and the written files checked by
/// the reference safetensors/numpy (Tests/Reference/peft_adapter_reference.py).
final class AdapterCommandTests: XCTestCase {
    var dir: URL!
    var model: URL { dir.appendingPathComponent("tiny") }
    var adapter: URL { dir.appendingPathComponent("adapter") }
    var merged: URL { dir.appendingPathComponent("merged") }

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        for args in [["tiny-model", model.path, "--layers", "2", "--hidden", "64", "--seed", "5"],
                     ["random-adapter", "--model", model.path, "--output", adapter.path, "--rank", "4", "--alpha", "8",
                      "--targets", "q_proj", "v_proj", "o_proj", "down_proj", "--seed", "3", "--b-scale", "0.1"]] {
            let r = try QdistProcess.run(args)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
    }

    func run(_ args: [String]) throws -> [String: Any] {
        let r = try QdistProcess.run(args + ["--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try QdistProcess.jsonObject(r)
    }

    func perplexity(_ model: URL, _ extra: [String] = []) throws -> Double {
        let j = try run(["eval", "--model", model.path, "--data", QdistProcess.wikitext("test").path,
                         "--seq-len", "64", "--windows", "6"] + extra)
        return try XCTUnwrap(j["ppl"] as? Double)
    }

    func testEvalWithAdapterChangesPerplexityAndEqualsEvalOfTheMergedFolder() throws {
        let base = try perplexity(model)
        let adapted = try perplexity(model, ["--adapter", adapter.path, "--no-nf4"])
        XCTAssertGreaterThan(abs(adapted - base), 1e-3 * base, "the adapter changes the model")
        let m = try run(["merge-adapter", "--model", model.path, "--adapter", adapter.path, "--output", merged.path])
        XCTAssertEqual(m["tensors"] as? Int, 21)
        XCTAssertEqual(try perplexity(merged), adapted, accuracy: 1e-5 * adapted, "merged folder = adapter applied on load")

        let prompt = ["--prompt", "The model", "--max-tokens", "12"]
        let viaAdapter = try run(["generate", "--model", model.path, "--adapter", adapter.path, "--no-nf4"] + prompt)
        let viaMerged = try run(["generate", "--model", merged.path] + prompt)
        XCTAssertEqual(viaAdapter["tokens"] as? [Int], viaMerged["tokens"] as? [Int])
    }

    func testAnAdapterImpliesTheNF4BaseUnlessNoNF4() throws {
        let onStored = try perplexity(model, ["--adapter", adapter.path, "--no-nf4"])
        let onNF4 = try perplexity(model, ["--adapter", adapter.path])
        XCTAssertEqual(try perplexity(model, ["--adapter", adapter.path, "--nf4"]), onNF4, "--nf4 is the default with an adapter")
        XCTAssertNotEqual(onNF4, onStored, "the adapter goes on the NF4-rounded base by default")
        XCTAssertEqual(onNF4, onStored, accuracy: 0.05 * onStored, "NF4 rounding moves ppl a little, not a lot")
        let conflict = try QdistProcess.run(["eval", "--model", model.path, "--data", QdistProcess.wikitext("test").path,
                                             "--adapter", adapter.path, "--nf4", "--no-nf4"])
        XCTAssertNotEqual(conflict.status, 0)
        XCTAssertTrue(conflict.stderr.contains("contradict"), conflict.stderr)
    }

    func testReferenceSafetensorsAndNumpyReadOurAdapterAndRecomputeTheMerge() throws {
        XCTAssertEqual(try QdistProcess.run(["merge-adapter", "--model", model.path, "--adapter", adapter.path,
                                             "--output", merged.path]).status, 0)
        let script = QdistProcess.repositoryRoot.appendingPathComponent("Tests/Reference/peft_adapter_reference.py").path
        let r = try QdistProcess.runProcess(try QdistProcess.python(), [script, adapter.path, model.path, merged.path, "2"],
                                            environment: [:], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertEqual(r.stdout, "OK\n", r.stderr)
    }

    func testBadAdapterIsOneLineNamingTheFileAndNoMergedFolderAppears() throws {
        let config = adapter.appendingPathComponent("adapter_config.json")
        let text = try String(contentsOf: config, encoding: .utf8).replacingOccurrences(of: "\"r\": 4", with: "\"r\": 6")
        try text.write(to: config, atomically: true, encoding: .utf8)
        for args in [["eval", "--model", model.path, "--adapter", adapter.path, "--data", QdistProcess.wikitext("test").path],
                     ["merge-adapter", "--model", model.path, "--adapter", adapter.path, "--output", merged.path]] {
            let r = try QdistProcess.run(args)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("adapter_model.safetensors: tensor base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight has shape [4, 64], expected"), r.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: merged.path))
        let r = try QdistProcess.run(["eval", "--model", model.path, "--no-nf4", "--data", "x"])
        XCTAssertTrue(r.status != 0 && r.stderr.contains("--no-nf4 only applies with --adapter"), r.stderr)
    }
}
