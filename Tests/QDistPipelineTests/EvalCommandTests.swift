import Foundation
import QDistIO
import QDistPipeline
import QDistTensor
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

    /// `--second-half` (llama-perplexity's protocol) scores positions ≥ seq-len/2 of every
    /// window: checked against the model's full logits with a Float64 log-softmax.
    func testSecondHalfScoresOnlyTheLastHalfOfEveryWindow() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try QdistProcess.tinyModel(in: dir, layers: 1, seed: 9)
        let data = QdistProcess.wikitext("test")
        let r = try QdistProcess.run(["eval", "--model", model.path, "--data", data.path, "--windows", "2", "--seq-len", "64",
                                      "--second-half", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try JSONParser.parse(r.stdout)
        XCTAssertEqual(json["predicted_tokens"]?.intValue, 2 * (64 - 1 - 32))
        XCTAssertEqual(json["second_half"]?.boolValue, true)
        let bundle = try ModelBundle.open(model.path)
        let llama = try bundle.loadModel()
        let tokens = bundle.tokenizer.encode(try String(contentsOf: data, encoding: .utf8))
        var nll = 0.0, count = 0
        for w in 0..<2 {
            let window = Array(tokens[(w * 64)..<((w + 1) * 64)])
            let logits = llama.logits(window)
            for t in 32..<63 {
                let row = (0..<logits.columns).map { Double(logits.scalars[t * logits.columns + $0]) }
                let m = row.max() ?? 0
                nll += m + log(row.reduce(0) { $0 + exp($1 - m) }) - row[window[t + 1]]
                count += 1
            }
        }
        let ppl = try XCTUnwrap(json["ppl"]?.doubleValue)
        XCTAssertEqual(ppl, exp(nll / Double(count)), accuracy: 1e-4 * ppl)
    }
}
