import XCTest
import QDistTestSupport

/// `qdist memory` end to end, as a user runs it.
final class MemoryCommandTests: XCTestCase {
    func testSevenBillionParametersAtFP16PrintFourteenGB() throws {
        let r = try QdistProcess.run(["memory", "--params", "7e9", "--dtype", "fp16"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("14.0 GB"), r.stdout)
    }

    func testInt4WithoutScalesIsThreeAndAHalfGB() throws {
        let r = try QdistProcess.run(["memory", "--params", "7B", "--dtype", "int4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("3.5 GB"), r.stdout)
        let json = try QdistProcess.jsonObject(try QdistProcess.run(["memory", "--params", "7e9", "--dtype", "int4", "--group-size", "128", "--json"]))
        let inference = try XCTUnwrap(json["inference"] as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(inference["weight_bytes"] as? Double), 7e9 * 4.125 / 8, accuracy: 1)
    }

    func testTrainingJSONGivesPerRankStatesForEveryStage() throws {
        let r = try QdistProcess.run(["memory", "--params", "7.5e9", "--train", "--zero-stage", "2", "--world-size", "64", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let training = try XCTUnwrap(try QdistProcess.jsonObject(r)["training"] as? [String: Any])
        let perRank = try XCTUnwrap(training["per_rank"] as? [String: Double])
        XCTAssertEqual(try XCTUnwrap(perRank["total"]) / 1e9, 16.6, accuracy: 0.05)
        let byStage = try XCTUnwrap(training["per_rank_total_by_stage"] as? [Double])
        XCTAssertEqual(byStage.count, 4)
        XCTAssertEqual(byStage, byStage.sorted(by: >), "each stage needs less memory per rank")
    }

    func testBadArgumentsFailWithAMessageAndNoOutput() throws {
        for args in [["memory", "--params", "7e9", "--dtype", "int5"],
                     ["memory", "--params", "-3"],
                     ["memory", "--params", "7e9", "--model", "x"],
                     ["memory", "--params", "7e9", "--dtype", "nf4", "--group-size", "64"],
                     ["memory", "--params", "7e9", "--zero-stage", "2"],
                     ["memory", "--params", "7e9", "--train", "--zero-stage", "4"]] {
            let r = try QdistProcess.run(args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.stdout.isEmpty, "no partial output for \(args)")
            XCTAssertTrue(r.stderr.contains("Error"), r.stderr)
        }
    }

    func testHelpTeachesWithExamples() throws {
        let r = try QdistProcess.run(["memory", "--help"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.contains("qdist memory --params 7e9 --dtype fp16"), r.stdout)
        XCTAssertTrue(r.stdout.contains("--zero-stage"), r.stdout)
    }
}
