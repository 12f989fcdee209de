import XCTest
import QDistTestSupport

/// `qdist formats` end to end.
final class FormatsCommandTests: XCTestCase {
    func testJSONListsEveryFormatWithItsCost() throws {
        let r = try QdistProcess.run(["formats", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let formats = try XCTUnwrap(try QdistProcess.jsonObject(r)["formats"] as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: formats.map { ($0["name"] as! String, $0) })
        for name in ["fp32", "fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "int8", "int4", "int3", "int2", "nf4", "fp4",
                     "ternary", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"] {
            let f = try XCTUnwrap(byName[name], name)
            let bits = try XCTUnwrap(f["bits_per_weight"] as? Double)
            XCTAssertEqual(try XCTUnwrap(f["bytes_per_parameter"] as? Double), bits / 8, accuracy: 1e-12)
            XCTAssertNotNil(f["smallest_positive"] as? Double)
        }
        XCTAssertEqual(byName["int4"]?["bits_per_weight"] as? Double, 4.125, "int4 listed with fp16 scale per 128")
        XCTAssertEqual(byName["fp8_e4m3"]?["max"] as? Double, 448)
    }

    func testTableHasAHeaderAndOneRowPerFormat() throws {
        let r = try QdistProcess.run(["formats"])
        XCTAssertEqual(r.status, 0)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertTrue(lines.first?.hasPrefix("format") ?? false)
        XCTAssertTrue(lines.contains { $0.hasPrefix("q6_k ") && $0.contains("6.562") })
        XCTAssertTrue(lines.contains { $0.hasPrefix("ternary ") && $0.contains("1.585") })
    }
}
