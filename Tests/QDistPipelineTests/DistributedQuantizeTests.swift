import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// `mpirun -n P qdist quantize` on a tiny model: the same perplexity and codes (all of them) for P = 1…4
/// (with owners solving whole linears or shares of their rows), one shard per rank plus an
/// index, and a stopped run that resumes — on the same or another number of ranks — to the
/// same output as an uninterrupted one.
final class DistributedQuantizeTests: XCTestCase {
    var dir: URL!
    var model: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = dir.appendingPathComponent("tiny")
        let r = try QdistProcess.run(["tiny-model", model.path, "--layers", "3", "--hidden", "64", "--heads", "4",
                                      "--kv-heads", "2", "--intermediate", "128", "--seed", "11"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func recipe(sequential: String) throws -> String {
        let url = dir.appendingPathComponent("recipe-\(sequential).yaml")
        try Data("""
            format: compressed-tensors
            sequential: \(sequential)
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 12, seq_len: 64, seed: 3}
            recipe:
              GPTQModifier:
                actorder: static
                config_groups:
                  g0: {targets: [Linear], weights: {num_bits: 4, symmetric: false, strategy: group, group_size: 32}}
            """.utf8).write(to: url)
        return url.path
    }

    func quantize(_ recipe: String, into out: URL, ranks: Int? = nil, extra: [String] = []) throws -> QdistProcess.Result {
        try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", out.path] + extra, ranks: ranks)
    }

    func ppl(_ folder: URL) throws -> Double {
        let r = try QdistProcess.run(["eval", "--model", folder.path, "--data", QdistProcess.wikitext("test").path,
                                      "--seq-len", "64", "--windows", "12", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(try QdistProcess.jsonObject(r)["ppl"] as? Double)
    }

    /// Fraction of 4-bit codes that agree between two outputs (nibble by nibble).
    func sameCodes(_ one: URL, _ other: URL) throws -> Double {
        let a = try CheckpointFolder(url: one), b = try CheckpointFolder(url: other)
        var same = 0, total = 0
        for name in a.tensorNames where name.hasSuffix("weight_packed") {
            let x = try a.storedTensor(name).bytes, y = try b.storedTensor(name).bytes
            XCTAssertEqual(x.count, y.count, name)
            for i in 0..<min(x.count, y.count) {
                total += 2
                same += (x[i] & 0x0F == y[i] & 0x0F ? 1 : 0) + (x[i] >> 4 == y[i] >> 4 ? 1 : 0)
            }
        }
        XCTAssertGreaterThan(total, 0)
        return Double(same) / Double(max(total, 1))
    }

    func testOneToFourRanksGiveTheSamePerplexityCodesAndOneShardPerRank() throws {
        // `linear` runs o_proj and down_proj alone, so 2–4 ranks split their rows.
        for sequential in ["block", "linear"] {
            let recipe = try recipe(sequential: sequential)
            let single = dir.appendingPathComponent("\(sequential)-1")
            XCTAssertEqual(try quantize(recipe, into: single).status, 0)
            XCTAssertTrue(FileManager.default.fileExists(atPath: single.appendingPathComponent("model.safetensors").path))
            let reference = try ppl(single)
            for ranks in 2...4 {
                let out = dir.appendingPathComponent("\(sequential)-\(ranks)")
                let r = try quantize(recipe, into: out, ranks: ranks)
                XCTAssertEqual(r.status, 0, r.stderr)
                let index = try SafetensorsIndex.load(from: out.appendingPathComponent(SafetensorsIndex.fileName))
                XCTAssertEqual(Set(index.weightMap.values).count, ranks, "\(sequential), \(ranks) ranks: one shard per rank")
                XCTAssertEqual(try sameCodes(single, out), 1, "\(sequential), \(ranks) ranks: every code")
                XCTAssertEqual(try ppl(out), reference, "\(sequential), \(ranks) ranks: ppl to the last digit")
                let report = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("quantization_report.json"))) as? [String: Any]
                XCTAssertEqual(report?["world_size"] as? Int, ranks)
                XCTAssertEqual((report?["seconds_per_rank"] as? [[String: Any]])?.count, ranks)
                XCTAssertEqual((report?["layers"] as? [Any])?.count, 21, "7 linears × 3 blocks")
            }
        }
    }

    func testStoppedRunResumesToTheSameOutputOnTheSameOrAnotherRankCount() throws {
        for (sequential, first, second) in [("block", 2, 2), ("block", 2, 1), ("linear", 1, 2)] {
            let recipe = try recipe(sequential: sequential)
            let whole = dir.appendingPathComponent("whole-\(sequential)")
            if !FileManager.default.fileExists(atPath: whole.path) {
                XCTAssertEqual(try quantize(recipe, into: whole, ranks: 2).status, 0)
            }
            let out = dir.appendingPathComponent("resumed-\(sequential)-\(first)-\(second)")
            let stopped = try quantize(recipe, into: out, ranks: first, extra: ["--stop-after-block", "0"])
            XCTAssertEqual(stopped.status, 3, stopped.stderr)
            XCTAssertTrue(stopped.stderr.contains("resume"), stopped.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "no output before the job completes")
            let resumed = try quantize(recipe, into: out, ranks: second == 1 ? nil : second)
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            XCTAssertTrue(resumed.stdout.contains("resuming after block 0"), resumed.stdout)
            XCTAssertEqual(try sameCodes(whole, out), 1, "resumed on \(second) ranks after \(first): every code")
            XCTAssertEqual(try ppl(out), try ppl(whole))
            let staging = dir.appendingPathComponent(".\(out.lastPathComponent).qdist-partial")
            XCTAssertFalse(FileManager.default.fileExists(atPath: staging.path), "staging folder removed once complete")
        }
    }

    func testARankThatFailsAbortsTheJobWithItsRankAndTheRerunResumes() throws {
        let recipe = try recipe(sequential: "linear")
        let whole = dir.appendingPathComponent("whole")
        XCTAssertEqual(try quantize(recipe, into: whole, ranks: 3).status, 0)
        let out = dir.appendingPathComponent("crashed")
        let start = Date()
        let crashed = try quantize(recipe, into: out, ranks: 3, extra: ["--inject-failure", "1:2"])
        XCTAssertNotEqual(crashed.status, 0)
        XCTAssertLessThan(Date().timeIntervalSince(start), 60, "the job aborts instead of hanging in a collective")
        XCTAssertTrue(crashed.stderr.contains("rank 1/3"), crashed.stderr)
        XCTAssertTrue(crashed.stderr.contains("injected failure in block 2"), crashed.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        let rerun = try quantize(recipe, into: out, ranks: 3)
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        XCTAssertTrue(rerun.stdout.contains("resuming after block 1"), rerun.stdout)
        XCTAssertGreaterThanOrEqual(try sameCodes(whole, out), 0.999)
        XCTAssertEqual(try ppl(out), try ppl(whole), accuracy: try ppl(whole) * 5e-5)
    }

    func testAnotherJobIntoAnUnfinishedOutputIsRefusedUntilNoResume() throws {
        let out = dir.appendingPathComponent("shared")
        XCTAssertEqual(try quantize(try recipe(sequential: "block"), into: out, extra: ["--stop-after-block", "0"]).status, 3)
        let other = try quantize(try recipe(sequential: "linear"), into: out)
        XCTAssertNotEqual(other.status, 0)
        XCTAssertEqual(other.stderr.split(separator: "\n").count, 1, other.stderr)
        XCTAssertTrue(other.stderr.contains("--no-resume"), other.stderr)
        XCTAssertTrue(other.stderr.contains("differs in") && other.stderr.contains("sequential"), "names what changed: \(other.stderr)")
        let fresh = try quantize(try recipe(sequential: "linear"), into: out, extra: ["--no-resume"])
        XCTAssertEqual(fresh.status, 0, fresh.stderr)
        XCTAssertFalse(fresh.stdout.contains("resuming"), fresh.stdout)
    }

    func testAJobThatFailedBeforeItsFirstBlockDoesNotBlockACorrectedRerun() throws {
        let out = dir.appendingPathComponent("retry")
        let failed = try quantize(try recipe(sequential: "block"), into: out, extra: ["--inject-failure", "0:0"])
        XCTAssertNotEqual(failed.status, 0)
        // Another setting, no --no-resume: nothing was recorded, so nothing stands in the way.
        let corrected = try quantize(try recipe(sequential: "linear"), into: out)
        XCTAssertEqual(corrected.status, 0, corrected.stderr)
        XCTAssertFalse(corrected.stdout.contains("resuming"), corrected.stdout)
    }
}
