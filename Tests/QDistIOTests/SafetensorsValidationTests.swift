import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// Broken files, each rejected by the library with a one-line error naming the file, and by
/// `qdist inspect` with exit status 1 and exactly one stderr line (never a crash).
final class SafetensorsValidationTests: XCTestCase {
    private static let entry = #"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
    private static let good = Fixtures.rawSafetensors(header: #"{"a":\#(entry)}"#, data: [UInt8](repeating: 1, count: 8))

    /// (case name, file bytes, text the message must contain)
    private static let cases: [(String, [UInt8], String)] = [
        ("truncated", Array(good.dropLast(3)), "truncated"),
        ("short", [1, 2, 3], "too short"),
        ("empty", [], "too short"),
        ("header-past-end", Fixtures.rawSafetensors(header: "{}", declaredLength: 1000), "runs past the end of the file"),
        ("header-too-large", Fixtures.rawSafetensors(header: "{}", declaredLength: 200_000_000), "exceeds the 100000000-byte limit"),
        ("overlap", Fixtures.rawSafetensors(
            header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            data: [UInt8](repeating: 0, count: 12)), "overlaps"),
        ("hole", Fixtures.rawSafetensors(
            header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}"#,
            data: [UInt8](repeating: 0, count: 20)), "hole of 4 bytes"),
        ("not-from-zero", Fixtures.rawSafetensors(
            header: #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}"#, data: [0, 0, 0, 0]), "must start at 0"),
        ("unknown-dtype", Fixtures.rawSafetensors(
            header: #"{"a":{"dtype":"F7","shape":[2],"data_offsets":[0,2]}}"#, data: [0, 0]), #"unknown dtype "F7""#),
        ("unsupported-dtype", Fixtures.rawSafetensors(
            header: #"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)), "qdist cannot read it"),
        ("size-mismatch", Fixtures.rawSafetensors(
            header: #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#, data: [UInt8](repeating: 0, count: 12)),
         "hold 12 bytes but F32 [2, 2] needs 16"),
        ("not-json", Fixtures.rawSafetensors(header: "this is not json", data: []), "not valid JSON at byte 8"),
        ("duplicate-key", Fixtures.rawSafetensors(header: #"{"a":\#(entry),"a":\#(entry)}"#, data: [UInt8](repeating: 0, count: 8)),
         #"duplicate key "a""#),
        ("trailing-bytes", good + [9, 9, 9, 9], "4 bytes after the last tensor"),
        ("nul-padded-header", Fixtures.rawSafetensors(header: #"{"a":\#(entry)}"# + "\0\0", data: [UInt8](repeating: 0, count: 8)),
         "trailing characters"),
        ("array-header", Fixtures.rawSafetensors(header: "[1,2]"), "expected a JSON object"),
        ("extra-entry-key", Fixtures.rawSafetensors(
            header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}}"#, data: [0]), #"unexpected key "x""#),
        ("missing-shape", Fixtures.rawSafetensors(header: #"{"a":{"dtype":"U8","data_offsets":[0,1]}}"#, data: [0]), #"missing "shape""#),
        ("negative-dim", Fixtures.rawSafetensors(
            header: #"{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#, data: [0]), "non-negative integers"),
        ("fractional-dim", Fixtures.rawSafetensors(
            header: #"{"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}"#, data: [0]), "expected an integer"),
        ("reversed-offsets", Fixtures.rawSafetensors(
            header: #"{"a":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}"#, data: [0]), "end before they begin"),
        ("metadata-not-string", Fixtures.rawSafetensors(header: #"{"__metadata__":{"n":1}}"#), "must be strings"),
        ("invalid-utf8", Fixtures.rawSafetensors(header: "{\"\u{FFFD}\":1}", data: []).map { $0 == 0xEF ? 0xFF : $0 }, "invalid UTF-8"),
        ("overflowing-shape", Fixtures.rawSafetensors(
            header: #"{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
         "too many elements"),
    ]

    func testEveryBrokenFileIsRejectedByTheLibraryWithOneLineNamingTheFile() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        for (name, bytes, expected) in Self.cases {
            let url = folder.appendingPathComponent("bad-\(name).safetensors")
            try Fixtures.write(bytes, to: url)
            XCTAssertThrowsError(try SafetensorsReader(url: url), name) { error in
                guard let e = error as? QDistIOError else { return XCTFail("\(name): not a QDistIOError: \(error)") }
                XCTAssertEqual(e.kind, .safetensors, name)
                XCTAssertTrue(e.description.hasPrefix(url.path + ": "), "\(name): \(e)")
                XCTAssertFalse(e.description.contains("\n"), "\(name): \(e)")
                XCTAssertTrue(e.message.contains(expected), "\(name): expected “\(expected)” in: \(e)")
            }
        }
    }

    func testEveryBrokenFileMakesInspectExitWithOneStderrLineAndNoCrash() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        for (name, bytes, expected) in Self.cases {
            let url = folder.appendingPathComponent("bad-\(name).safetensors")
            try Fixtures.write(bytes, to: url)
            let result = try QdistProcess.run(["inspect", url.path])
            XCTAssertEqual(result.status, 1, "\(name): status \(result.status), stderr: \(result.stderr)")
            XCTAssertEqual(result.stdout, "", name)
            let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false)
            XCTAssertEqual(lines.count, 2, "\(name): stderr must be one line: \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("qdist inspect: error: \(url.path): "), "\(name): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(expected), "\(name): \(result.stderr)")
        }
    }

    func testErrorsCarryTheByteOffsetOfTheProblem() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let hole = Self.cases.first { $0.0 == "hole" }!.1
        let url = folder.appendingPathComponent("hole.safetensors")
        try Fixtures.write(hole, to: url)
        XCTAssertThrowsError(try SafetensorsReader(url: url)) { error in
            let e = error as! QDistIOError
            let headerLength = hole.count - 8 - 20
            XCTAssertEqual(e.byteOffset, 8 + headerLength + 12)
            XCTAssertTrue(e.message.contains("file byte \(8 + headerLength + 12)"), e.message)
        }
    }

    func testTheReferenceRejectsTheSameFilesExceptWhereQdistIsDeliberatelyStricter() throws {
        // Cross-check against safetensors itself. The reference (serde) lets a repeated key
        // silently replace the first and ignores unknown entry keys; qdist rejects both, since
        // either means the header does not say what its writer meant. Everything else must agree.
        let stricter: Set<String> = ["duplicate-key", "extra-entry-key"]
        let folder = try QdistProcess.temporaryDirectory(self)
        let script = """
            import sys, safetensors
            for p in sys.argv[1:]:
                try:
                    safetensors.deserialize(open(p, 'rb').read()); print('accepted')
                except Exception:
                    print('rejected')
            """
        let names = Self.cases.map(\.0).filter { $0 != "unsupported-dtype" }
        var paths: [String] = []
        for (name, bytes, _) in Self.cases where names.contains(name) {
            let url = folder.appendingPathComponent("\(name).safetensors")
            try Fixtures.write(bytes, to: url)
            paths.append(url.path)
        }
        let verdicts = try Fixtures.python(script, paths).split(separator: "\n").map(String.init)
        XCTAssertEqual(verdicts.count, paths.count)
        for (name, verdict) in zip(names, verdicts) {
            XCTAssertEqual(verdict, stricter.contains(name) ? "accepted" : "rejected", name)
        }
    }
}
