import Foundation
import QDistTestSupport
import XCTest

/// `qdist eval --nf4` / `generate --nf4`: the base rounded through NF4 on load, as QLoRA
/// training sees it.
final class NF4EvalCommandTests: XCTestCase {
    var model: URL!

    override func setUpWithError() throws {
        model = try QdistProcess.temporaryDirectory(self).appendingPathComponent("tiny")
        let r = try QdistProcess.run(["tiny-model", model.path, "--layers", "2", "--hidden", "64", "--seed", "5"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func eval(_ extra: [String], ranks: Int? = nil) throws -> [String: Any] {
        let r = try QdistProcess.run(["eval", "--model", model.path, "--data", QdistProcess.wikitext("test").path,
                                      "--seq-len", "64", "--windows", "12", "--json"] + extra, ranks: ranks)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try QdistProcess.jsonObject(r)
    }

    func testNF4PerplexityIsCloseToButNotTheFloat32One() throws {
        let fp32 = try eval([]), nf4 = try eval(["--nf4"])
        XCTAssertEqual(fp32["nf4"] as? Bool, false)
        XCTAssertEqual(nf4["nf4"] as? Bool, true)
        let a = try XCTUnwrap(fp32["ppl"] as? Double), b = try XCTUnwrap(nf4["ppl"] as? Double)
        XCTAssertNotEqual(a, b, "the linears were rounded")
        XCTAssertEqual(b, a, accuracy: 0.05 * a, "NF4 costs a few percent of perplexity at most")
        XCTAssertNil(fp32["nf4_base_bytes"])
        let held = try XCTUnwrap(nf4["nf4_base_bytes"] as? Int), dense = try XCTUnwrap(nf4["nf4_base_float32_bytes"] as? Int)
        XCTAssertLessThan(held, dense, "the 4-bit base holds less than float32")
        XCTAssertEqual(try XCTUnwrap(nf4["nf4_bits_per_parameter"] as? Double), 4.13, accuracy: 0.02)
        XCTAssertGreaterThan(try XCTUnwrap(nf4["nf4_build_seconds"] as? Double), 0)
    }

    func testNF4PerplexityIsTheSameUnderMPI() throws {
        let single = try XCTUnwrap(try eval(["--nf4"])["ppl"] as? Double)
        let two = try XCTUnwrap(try eval(["--nf4"], ranks: 2)["ppl"] as? Double)
        XCTAssertEqual(two, single, accuracy: single * 5e-5, "every rank quantizes the same bytes")
    }

    func testGenerateTakesNF4AndBothHelpTextsListIt() throws {
        let r = try QdistProcess.run(["generate", "--model", model.path, "--prompt", "The", "--max-tokens", "4", "--nf4", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual((try QdistProcess.jsonObject(r)["tokens"] as? [Any])?.count ?? 0 > 0, true)
        for command in ["eval", "generate"] {
            let help = try QdistProcess.run([command, "--help"])
            XCTAssertTrue(help.stdout.contains("--nf4"), "\(command) --help:\n\(help.stdout)")
            XCTAssertTrue(help.stdout.contains("QLoRA"), "\(command) --help says what --nf4 is for")
        }
    }
}
