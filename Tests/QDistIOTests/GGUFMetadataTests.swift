import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest

/// Metadata and layout of a file written by gguf-py's `GGUFWriter`: every value type, arrays of
/// strings and nested arrays, a custom alignment, and tensors placed after it.
final class GGUFMetadataTests: XCTestCase {
    private func referenceFile() throws -> GGUFFile {
        let dir = try QdistProcess.temporaryDirectory(self)
        let url = dir.appendingPathComponent("meta.gguf")
        try GGUFReference.run(["metadata", url.path])
        return try GGUFFile(url: url)
    }

    func testEveryValueTypeReadsBackEqualWithItsOnDiskType() throws {
        let file = try referenceFile()
        let m = file.metadata
        XCTAssertEqual(file.version, 3)
        let expected: [(String, GGUFValue)] = [
            ("general.architecture", .string("llama")),
            ("general.alignment", .uint32(64)),
            ("t.u8", .uint8(200)), ("t.i8", .int8(-100)), ("t.u16", .uint16(60000)), ("t.i16", .int16(-30000)),
            ("t.u32", .uint32(4_000_000_000)), ("t.i32", .int32(-2_000_000_000)), ("t.f32", .float32(3.14159)),
            ("t.u64", .uint64(1 << 63 + 5)), ("t.i64", .int64(-(1 << 62))), ("t.f64", .float64(2.718281828459045)),
            ("t.true", .bool(true)), ("t.false", .bool(false)),
            ("t.str", .string("h\u{e9}llo \u{2713} \u{1F600}")), ("t.empty", .string("")),
            ("t.arr.str", .array(.string(["a", "bb", "", "d\u{e9}j\u{e0} vu"]))),
            ("t.arr.i32", .array(.int32([1, -2, 3]))),
            ("t.arr.f32", .array(.float32([0.5, -1.25]))),
            ("t.arr.bool", .array(.bool([true, false, true]))),
            ("t.arr.u8", .array(.uint8([1, 2, 255]))),
            ("t.arr.u64", .array(.uint64([.max, 0]))),
            ("t.arr.f64", .array(.float64([1.5, -0.1]))),
            ("t.arr.nested", .array(.array([.int32([1, 2]), .int32([3])]))),
            ("t.arr.nested_str", .array(.array([.string(["x"]), .string(["y", "z"])]))),
            ("t.arr.long", .array(.int32(Array(0..<100)))),
        ]
        XCTAssertEqual(m.keys, expected.map(\.0), "keys in file order")
        for (key, value) in expected {
            XCTAssertEqual(m[key], value, key)
        }
        XCTAssertEqual(m, GGUFMetadata(expected.map { (key: $0.0, value: $0.1) }))
    }

    func testAccessorsConvertAcrossStoredTypes() throws {
        let m = try referenceFile().metadata
        XCTAssertEqual(m.int("t.u32"), 4_000_000_000)
        XCTAssertEqual(m.int("t.i8"), -100)
        XCTAssertNil(m.int("t.u64"), "2^63 + 5 does not fit Int")
        XCTAssertEqual(m.float("t.f32"), 3.14159)
        XCTAssertEqual(m.double("t.f64"), 2.718281828459045)
        XCTAssertEqual(m.double("t.i16"), -30000)
        XCTAssertEqual(m.bool("t.true"), true)
        XCTAssertNil(m.bool("t.u8"), "no implicit int → bool")
        XCTAssertEqual(m.string("t.empty"), "")
        XCTAssertNil(m.string("t.u8"))
        XCTAssertNil(m.string("absent.key"))
        XCTAssertEqual(m.stringArray("t.arr.str"), ["a", "bb", "", "d\u{e9}j\u{e0} vu"])
        XCTAssertEqual(m.intArray("t.arr.i32"), [1, -2, 3])
        XCTAssertEqual(m.intArray("t.arr.u8"), [1, 2, 255])
        XCTAssertNil(m.intArray("t.arr.u64"), "UInt64.max does not fit Int")
        XCTAssertEqual(m.floatArray("t.arr.f32"), [0.5, -1.25])
        XCTAssertNil(m.stringArray("t.arr.i32"))
        XCTAssertEqual(m["t.arr.nested"]?.arrayValue?.map { $0.intArray ?? [] }, [[1, 2], [3]])
        XCTAssertEqual(m["t.arr.nested_str"]?.arrayValue?.compactMap(\.stringArray), [["x"], ["y", "z"]])
        XCTAssertEqual(m["t.arr.nested"]?.array?.elementType, .array)
        XCTAssertEqual(m["t.arr.long"]?.array?.count, 100)
        XCTAssertEqual(m["t.arr.long"]?.array?[7], .int32(7))
        XCTAssertEqual(m["t.arr.f64"]?.floatArray, [1.5, -0.1])
        XCTAssertEqual(m.architecture, "llama")
        XCTAssertEqual(m.alignment, 64)
    }

    func testTensorsAfterACustomAlignmentSitOnAlignedOffsetsWithTheirValues() throws {
        let file = try referenceFile()
        XCTAssertEqual(file.alignment, 64)
        XCTAssertEqual(file.dataOffset % 64, 0)
        XCTAssertEqual(file.tensorNames, ["a", "b"])
        let a = try file.info("a"), b = try file.info("b")
        XCTAssertEqual(a.dims, [5])
        XCTAssertEqual(a.type, .f32)
        XCTAssertEqual(a.offset, 0)
        XCTAssertEqual(b.dims, [3, 2], "gguf-py writes numpy shape (2, 3) as ne = [3, 2]")
        XCTAssertEqual(b.shape, [2, 3])
        XCTAssertEqual(b.type, .f16)
        XCTAssertEqual(b.offset, 64, "20 bytes of `a` padded to the 64-byte alignment")
        XCTAssertEqual(try file.tensor("a"), Tensor(shape: [5], scalars: [0, 1, 2, 3, 4]))
        XCTAssertEqual(try file.tensor("b"), Tensor(shape: [2, 3], scalars: [0, 1, 2, 3, 4, 5]))
        XCTAssertEqual(file.fileSize, file.dataOffset + 64 + 64)
    }

    func testValueDescriptionsAreShortOneLiners() {
        XCTAssertEqual(GGUFValue.uint64(.max).description, "18446744073709551615")
        XCTAssertEqual(GGUFValue.string("a\nb").description, "\"a\\nb\"")
        let tokens = GGUFValue.array(.string((0..<5).map { "t\($0)" }))
        XCTAssertEqual(tokens.description, "[STRING × 5: \"t0\", \"t1\", \"t2\", ...]")
        XCTAssertEqual(GGUFValue.array(.int32([])).description, "[INT32 × 0]")
        XCTAssertEqual(String(repeating: "x", count: 100).count, 100)
        XCTAssertEqual(GGUFValue.string(String(repeating: "x", count: 100)).description.count, 62)
    }
}
