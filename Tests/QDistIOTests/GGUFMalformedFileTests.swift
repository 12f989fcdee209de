import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// Corrupt and foreign files: each must fail to open with one `QDistIOError` line that names
/// the file and the byte offset of the fault — never a trap, an out-of-bounds read or a huge
/// allocation from a corrupt count.
final class GGUFMalformedFileTests: XCTestCase {
    /// Little-endian GGUF bytes, assembled field by field.
    struct Bytes {
        var data: [UInt8] = []
        mutating func u8(_ v: UInt8) { data.append(v) }
        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data += $0 } }
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { data += $0 } }
        mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); data += Array(s.utf8) }
        mutating func pad(to alignment: Int) { while data.count % alignment != 0 { data.append(0) } }
    }

    /// A valid v3 file: metadata `general.architecture = "llama"`, then one tensor per entry of
    /// `tensors` (name, ne, ggml type id, data offset), then `dataBytes` zero bytes of data.
    static func file(tensors: [(String, [UInt64], UInt32, UInt64)] = [("w", [32, 2], 0, 0)], dataBytes: Int = 256,
                     extraEntries: (inout Bytes) -> Int = { _ in 0 }) -> [UInt8] {
        var b = Bytes()
        b.data += Array("GGUF".utf8)
        b.u32(3)
        b.u64(UInt64(tensors.count))
        var entries = Bytes()
        entries.string("general.architecture"); entries.u32(8); entries.string("llama")
        let extra = extraEntries(&entries)
        b.u64(UInt64(1 + extra))
        b.data += entries.data
        for (name, ne, type, offset) in tensors {
            b.string(name); b.u32(UInt32(ne.count))
            for d in ne { b.u64(d) }
            b.u32(type); b.u64(offset)
        }
        b.pad(to: 32)
        b.data += [UInt8](repeating: 0, count: dataBytes)
        return b.data
    }

    /// Byte offset of the first tensor info's fields in `file()`'s layout with no extra entries.
    static let firstInfo = 24 + (8 + 20 + 4 + 8 + 5)  // header, then the architecture entry

    private func expectFailure(_ bytes: [UInt8], at offset: Int?, _ fragment: String, name: String = "bad.gguf",
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let url = try QdistProcess.temporaryDirectory(self).appendingPathComponent(name)
        try Data(bytes).write(to: url)
        XCTAssertThrowsError(try GGUFFile(url: url), file: file, line: line) { error in
            guard let e = error as? QDistIOError else { return XCTFail("not a QDistIOError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.path, url.path, file: file, line: line)
            XCTAssertTrue(e.description.hasPrefix(url.path + ": "), e.description, file: file, line: line)
            XCTAssertFalse(e.description.contains("\n"), e.description, file: file, line: line)
            XCTAssertTrue(e.message.contains(fragment), "\(e.message) lacks \(fragment)", file: file, line: line)
            XCTAssertEqual(e.byteOffset, offset, e.message, file: file, line: line)
            if let offset {
                XCTAssertTrue(e.message.contains("byte \(offset)") || e.message.contains("bytes \(offset)"),
                              "message names byte \(offset): \(e.message)", file: file, line: line)
            }
        }
    }

    func testTheBuilderMakesAValidFile() throws {
        let url = try QdistProcess.temporaryDirectory(self).appendingPathComponent("ok.gguf")
        try Data(Self.file()).write(to: url)
        let f = try GGUFFile(url: url)
        XCTAssertEqual(f.tensorInfos, [GGUFTensorInfo(name: "w", dims: [32, 2], type: .f32, offset: 0)])
        XCTAssertEqual(f.dataOffset, 128, "tensor infos end at byte 110")
    }

    func testBadMagicIsRejectedAndASafetensorsFileGetsAHint() throws {
        var bytes = Self.file()
        bytes[3] = UInt8(ascii: "X")
        try expectFailure(bytes, at: 0, "not a GGUF file: bytes 0..<4 are \"GGUX\"")
        let header = Array(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.utf8)
        var safetensors = Bytes()
        safetensors.u64(UInt64(header.count))
        try expectFailure(safetensors.data + header + [0, 0, 0, 0], at: 0, "looks like a safetensors file", name: "model.gguf")
    }

    func testTruncatedHeaderUnsupportedVersionAndBigEndianAreRejected() throws {
        try expectFailure(Array(Self.file().prefix(10)), at: 0, "too short for the 24-byte GGUF header")
        try expectFailure(Array("GG".utf8), at: 0, "file is 2 bytes")
        var v1 = Self.file()
        v1[4] = 1
        try expectFailure(v1, at: 4, "unsupported GGUF version 1")
        var bigEndian = Self.file()
        bigEndian[4] = 0; bigEndian[7] = 3
        try expectFailure(bigEndian, at: 4, "big-endian")
    }

    func testCountsThatRunPastTheEndAreRejectedBeforeAllocating() throws {
        var tensors = Self.file()
        tensors.replaceSubrange(8..<16, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian, Array.init))
        try expectFailure(tensors, at: 8, "tensor count 1099511627776 (u64 at byte 8) runs past the end")
        var entries = Self.file()
        entries.replaceSubrange(16..<24, with: withUnsafeBytes(of: UInt64.max.littleEndian, Array.init))
        try expectFailure(entries, at: 16, "metadata entry count")
        let hugeArray = Self.file { b in
            b.string("a"); b.u32(9); b.u32(0); b.u64(1 << 60)  // ARRAY of UINT8, 2^60 elements
            return 1
        }
        try expectFailure(hugeArray, at: 24 + 45 + 8 + 1 + 4 + 4, "element count of metadata \"a\"")
    }

    func testStringLengthPastTheEndIsRejected() throws {
        var bytes = Self.file()
        bytes.replaceSubrange(24..<32, with: withUnsafeBytes(of: UInt64(1 << 50).littleEndian, Array.init))
        try expectFailure(bytes, at: 24, "length of key of metadata entry 0")
        var name = Self.file()
        let at = Self.firstInfo
        name.replaceSubrange(at..<(at + 8), with: withUnsafeBytes(of: UInt64(100_000).littleEndian, Array.init))
        try expectFailure(name, at: at, "length of name of tensor info 0")
    }

    func testUnknownTypeIdsAreRejected() throws {
        let typeAt = Self.firstInfo + 8 + 1 + 4 + 16
        try expectFailure(Self.file(tensors: [("w", [32, 2], 99, 0)]), at: typeAt, "unknown ggml type id 99")
        try expectFailure(Self.file(tensors: [("w", [32, 2], 4, 0)]), at: typeAt, "unknown ggml type id 4", name: "removed-q4_2.gguf")
        let badValue = Self.file { b in b.string("k"); b.u32(13); b.u8(0); return 1 }
        try expectFailure(badValue, at: 24 + 45 + 9, "unknown value type 13")
        let badBool = Self.file { b in b.string("k"); b.u32(7); b.u8(2); return 1 }
        try expectFailure(badBool, at: 24 + 45 + 13, "BOOL holding 2")
    }

    func testMisalignedOverlappingAndOutOfFileDataIsRejected() throws {
        let offsetAt = Self.firstInfo + 8 + 1 + 4 + 16 + 4
        try expectFailure(Self.file(tensors: [("w", [32, 2], 0, 8)]), at: offsetAt, "is not a multiple of the alignment 32")
        try expectFailure(Self.file(dataBytes: 100), at: offsetAt, "past the end of the")
        try expectFailure(Self.file(tensors: [("w", [32, 2], 0, 1 << 40)]), at: offsetAt, "past the end of the")
        let secondOffsetAt = offsetAt + 8 + 8 + 1 + 4 + 8 + 4
        try expectFailure(Self.file(tensors: [("w", [32, 2], 0, 0), ("v", [8], 0, 224)]), at: secondOffsetAt, "overlaps tensor \"w\"")
        let alignment = Self.file { b in b.string("general.alignment"); b.u32(4); b.u32(48); return 1 }
        try expectFailure(alignment, at: 24 + 45 + 8 + 17 + 4, "must be a positive power of two")
    }

    func testShapesThatCannotHoldWholeBlocksOrTooManyDimsAreRejected() throws {
        let dimsAt = Self.firstInfo + 8 + 1
        try expectFailure(Self.file(tensors: [("w", [48, 2], 2, 0)]), at: dimsAt + 4, "row length ne[0] = 48 is not a multiple of the Q4_0 block size 32")
        try expectFailure(Self.file(tensors: [("w", [1, 1, 1, 1, 1], 0, 0)]), at: dimsAt, "has 5 dimensions")
        // Zero dimensions: refused at the count (the old error path indexed ne[0] and trapped).
        try expectFailure(Self.file(tensors: [("w", [], 2, 0)]), at: dimsAt, "has 0 dimensions")
        try expectFailure(Self.file(tensors: [("w", [1 << 62, 1 << 62], 0, 0)]), at: dimsAt + 4, "too large")
    }

    func testDuplicateKeysAndTensorNamesAreRejected() throws {
        let key = Self.file { b in b.string("general.architecture"); b.u32(8); b.string("x"); return 1 }
        try expectFailure(key, at: 24 + 45, "duplicate metadata key \"general.architecture\"")
        try expectFailure(Self.file(tensors: [("w", [32], 0, 0), ("w", [32], 0, 128)]), at: Self.firstInfo + 8 + 1 + 4 + 8 + 4 + 8,
                          "duplicate tensor name \"w\"")
    }

    func testDeeplyNestedArraysAreRejectedNotRecursedForever() throws {
        let deep = Self.file { b in
            b.string("n"); b.u32(9)
            for _ in 0..<40 { b.u32(9); b.u64(1) }  // ARRAY of ARRAY of … each of one element
            b.u32(0); b.u64(0)
            return 1
        }
        let url = try QdistProcess.temporaryDirectory(self).appendingPathComponent("deep.gguf")
        try Data(deep).write(to: url)
        XCTAssertThrowsError(try GGUFFile(url: url)) { error in
            XCTAssertTrue("\(error)".contains("nests arrays more than 16 deep"), "\(error)")
        }
    }

    func testInspectReportsACorruptGGUFInOneLineAndExitsWithStatus1() throws {
        let url = try QdistProcess.temporaryDirectory(self).appendingPathComponent("broken.gguf")
        try Data(Self.file(dataBytes: 100)).write(to: url)
        let result = try QdistProcess.run(["inspect", url.path])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stdout, "")
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, result.stderr)
        XCTAssertTrue(result.stderr.hasPrefix("qdist inspect: error: \(url.path): tensor \"w\""), result.stderr)
        XCTAssertTrue(result.stderr.contains("past the end of the"), result.stderr)
    }
}
