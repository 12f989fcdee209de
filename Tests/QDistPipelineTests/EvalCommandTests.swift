import Foundation
import QDistTestSupport
import XCTest

/// `qdist eval` by the perplexity protocol, in one process and under mpirun.
final class EvalCommandTests: XCTestCase {
    var model: URL!

    override func setUpWithError() throws {
        model = try QdistProcess.temporaryDirectory(self).appendingPathComponent("tiny")
        let r = try QdistProcess.run(["tiny-model", model.path, "--layers", "2", "--hidden", "64", "--seed", "5"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func eval(_ extra: [String], ranks: Int? = nil) throws -> [String: Any] {
        let r = try QdistProcess.run(["eval", "--model", model.path, "--data", QdistProcess.wikitext("test").path,
                                      "--seq-len", "64", "--json"] + extra, ranks: ranks)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try QdistProcess.jsonObject(r)
    }

    func testJSONReportsPerplexityTokensSpeedAndMemory() throws {
        let j = try eval(["--windows", "7"])
        XCTAssertEqual(j["windows"] as? Int, 7)
        XCTAssertEqual(j["tokens"] as? Int, 7 * 64)
        XCTAssertEqual(j["predicted_tokens"] as? Int, 7 * 63)
        let ppl = try XCTUnwrap(j["ppl"] as? Double), nll = try XCTUnwrap(j["mean_nll"] as? Double)
        XCTAssertEqual(ppl, exp(nll), accuracy: 1e-9 * ppl)
        XCTAssertGreaterThan(ppl, 1)
        XCTAssertGreaterThan(try XCTUnwrap(j["tokens_per_s"] as? Double), 0)
        XCTAssertGreaterThan(try XCTUnwrap(j["peak_rss_bytes"] as? Int), 1 << 20)
    }

    func testPerplexityIsTheSameForEveryWorldSize() throws {
        let single = try XCTUnwrap(try eval(["--windows", "9"])["ppl"] as? Double)
        for ranks in [2, 3] {
            let j = try eval(["--windows", "9"], ranks: ranks)
            XCTAssertEqual(j["world_size"] as? Int, ranks)
            let ppl = try XCTUnwrap(j["ppl"] as? Double)
            XCTAssertEqual(ppl, single, accuracy: single * 5e-5, "4 significant digits at \(ranks) ranks")
            XCTAssertEqual((j["peak_rss_bytes_per_rank"] as? [Int])?.count, ranks)
        }
    }

    func testMissingDataFileFailsWithOneLineInOneProcessAndStopsEveryRank() throws {
        let r = try QdistProcess.run(["eval", "--model", model.path, "--data", "/nonexistent/text.txt"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("/nonexistent/text.txt"), r.stderr)
        let m = try QdistProcess.run(["eval", "--model", model.path, "--data", "/nonexistent/text.txt"], ranks: 2, timeout: 60)
        XCTAssertNotEqual(m.status, 0)
        XCTAssertTrue(m.stderr.contains("rank") && m.stderr.contains("/nonexistent/text.txt"), m.stderr)
    }
}
