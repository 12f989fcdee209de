import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest

final class SafetensorsWriterTests: XCTestCase {
    func testEveryDTypeRoundTripsBitExactly() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let url = folder.appendingPathComponent("all.safetensors")
        let tensors = Fixtures.allDTypeTensors()
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt", "qdist.recipe": "W4A16"], to: url)
        let reader = try SafetensorsReader(url: url)
        XCTAssertEqual(Set(reader.tensorNames), Set(tensors.keys))
        for (name, stored) in tensors {
            XCTAssertEqual(try reader.storedTensor(name), stored, name)
        }
        XCTAssertEqual(reader.metadata, ["format": "pt", "qdist.recipe": "W4A16"])
    }

    func testFloatTensorsRoundTripThroughEncodeAndDecode() throws {
        let url = try QdistProcess.temporaryDirectory(self).appendingPathComponent("f.safetensors")
        let values = Tensor(shape: [2, 3], scalars: [0, 1, -2.5, 0.125, 65504, -1e-3])
        try SafetensorsWriter.write(["f32": StoredTensor(values, as: .f32), "bf16": StoredTensor(values, as: .bf16)], to: url)
        let reader = try SafetensorsReader(url: url)
        XCTAssertEqual(try reader.tensor("f32"), values)
        XCTAssertEqual(try reader.tensor("bf16"), StoredTensor(values, as: .bf16).toTensor())
    }

    func testHeaderIsPaddedWithSpacesToAMultipleOf8() throws {
        for n in 1...9 {
            let name = String(repeating: "x", count: n)
            let bytes = try SafetensorsWriter.serialize([name: StoredTensor(dtype: .u8, shape: [1], bytes: [5])])
            let length = Int(bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            XCTAssertEqual(length % 8, 0, name)
            XCTAssertEqual(bytes.count, 8 + length + 1)
            let json = bytes[8..<(8 + length)]
            let trimmed = json.reversed().drop { $0 == 0x20 }.count
            XCTAssertEqual(json.last == 0x20, trimmed < length)
            XCTAssertEqual(bytes.last, 5)
        }
    }

    func testOrderIsDTypeDescendingThenNameSoEveryTensorIsAligned() throws {
        let tensors: [String: StoredTensor] = [
            "b8": StoredTensor(dtype: .u8, shape: [3], bytes: [1, 2, 3]),
            "a8": StoredTensor(dtype: .i8, shape: [1], bytes: [4]),
            "z64": StoredTensor(dtype: .f64, shape: [1], bytes: [UInt8](repeating: 0, count: 8)),
            "m16": StoredTensor(dtype: .bf16, shape: [1], bytes: [0, 0]),
            "k16": StoredTensor(dtype: .f16, shape: [1], bytes: [0, 0]),
            "B32": StoredTensor(dtype: .f32, shape: [1], bytes: [0, 0, 0, 0]),
            "a32": StoredTensor(dtype: .f32, shape: [1], bytes: [0, 0, 0, 0]),
            "e4": StoredTensor(dtype: .f8E4M3, shape: [1], bytes: [0]),
            "e5": StoredTensor(dtype: .f8E5M2, shape: [1], bytes: [0]),
        ]
        let layout = try SafetensorsLayout(tensors: tensors, metadata: nil, path: "x")
        XCTAssertEqual(layout.entries.map(\.declaration.name), ["z64", "B32", "a32", "m16", "k16", "e4", "e5", "a8", "b8"])
        for (d, range) in layout.entries {
            XCTAssertEqual((layout.dataStart + range.lowerBound) % d.dtype.byteSize, 0, d.name)
        }
        let header = try JSONParser.parse(Array(layout.prefix.dropFirst(8)))
        XCTAssertEqual(header.objectValue?.map(\.key), layout.entries.map(\.declaration.name))
    }

    func testMetadataComesFirstWithKeysSortedAndEmptyMetadataIsWrittenAsAnEmptyObject() throws {
        let t = ["t": StoredTensor(dtype: .u8, shape: [1], bytes: [0])]
        let with = try SafetensorsLayout(tensors: t, metadata: ["z": "1", "a": "2"], path: "x")
        XCTAssertTrue(String(decoding: with.prefix.dropFirst(8), as: UTF8.self).hasPrefix(#"{"__metadata__":{"a":"2","z":"1"},"t":"#))
        let empty = try SafetensorsLayout(tensors: t, metadata: [:], path: "x")
        XCTAssertTrue(String(decoding: empty.prefix.dropFirst(8), as: UTF8.self).hasPrefix(#"{"__metadata__":{},"t":"#))
        let none = try SafetensorsLayout(tensors: t, metadata: nil, path: "x")
        XCTAssertTrue(String(decoding: none.prefix.dropFirst(8), as: UTF8.self).hasPrefix(#"{"t":"#))
    }

    func testLayoutRejectsDuplicateAndReservedNames() {
        let d = SafetensorsLayout.Declaration(name: "w", dtype: .f32, shape: [1])
        XCTAssertThrowsError(try SafetensorsLayout(tensors: [d, d], metadata: nil, path: "out.safetensors")) {
            XCTAssertEqual("\($0)", #"out.safetensors: tensor "w" is given twice"#)
        }
        let reserved = SafetensorsLayout.Declaration(name: "__metadata__", dtype: .f32, shape: [1])
        XCTAssertThrowsError(try SafetensorsLayout(tensors: [reserved], metadata: nil, path: "x"))
    }

    func testAtomicWriteReplacesTheFileAndLeavesNoTemporaryFiles() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let url = folder.appendingPathComponent("model.safetensors")
        try SafetensorsWriter.write(["a": StoredTensor(dtype: .u8, shape: [1], bytes: [1])], to: url)
        try SafetensorsWriter.write(["b": StoredTensor(dtype: .u8, shape: [2], bytes: [2, 3])], to: url)
        XCTAssertEqual(try SafetensorsReader(url: url).tensorNames, ["b"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["model.safetensors"])
    }

    func testAFailedWriteLeavesTheOldFileAndNoPartialOutput() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let url = folder.appendingPathComponent("out.bin")
        try AtomicFileWriter.write(Array("old".utf8), to: url)
        struct Boom: Error {}
        XCTAssertThrowsError(try AtomicFileWriter.write(to: url) { writer in
            try writer.write(Array("half of the new con".utf8))
            throw Boom()
        }) { XCTAssertTrue($0 is Boom) }
        XCTAssertEqual(try Data(contentsOf: url), Data("old".utf8))
        XCTAssertEqual(try Fixtures.temporaryLeftovers(in: folder), [])
    }

    func testADroppedWriterRemovesItsTemporaryFile() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        do {
            let writer = try AtomicFileWriter(destination: folder.appendingPathComponent("x.json"))
            try writer.write(Array("{".utf8))
            XCTAssertEqual(try Fixtures.temporaryLeftovers(in: folder).count, 1)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])
    }

    func testWritingIntoAMissingFolderFailsWithOneLineNamingTheFile() throws {
        let url = try QdistProcess.temporaryDirectory(self).appendingPathComponent("no/such/folder/model.safetensors")
        XCTAssertThrowsError(try SafetensorsWriter.write([:], to: url)) { error in
            XCTAssertTrue("\(error)".hasPrefix(url.path + ": cannot create a temporary file"), "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
    }

    func testStreamWriterProducesTheSameBytesInAnyWriteOrder() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let tensors = Fixtures.allDTypeTensors()
        let url = folder.appendingPathComponent("stream.safetensors")
        let declarations = tensors.map { SafetensorsLayout.Declaration(name: $0.key, dtype: $0.value.dtype, shape: $0.value.shape) }
        let stream = try SafetensorsStreamWriter(url: url, tensors: declarations, metadata: ["format": "pt"])
        for name in tensors.keys.sorted().reversed() { try stream.write(name, tensors[name]!) }
        try stream.finish()
        XCTAssertEqual([UInt8](try Data(contentsOf: url)), try SafetensorsWriter.serialize(tensors, metadata: ["format": "pt"]))
        XCTAssertEqual(try Fixtures.temporaryLeftovers(in: folder), [])
    }

    func testStreamWriterRejectsWrongSizesUndeclaredNamesAndMissingTensors() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let url = folder.appendingPathComponent("s.safetensors")
        let stream = try SafetensorsStreamWriter(url: url, tensors: [.init(name: "a", dtype: .f32, shape: [2]), .init(name: "b", dtype: .u8, shape: [1])])
        try [UInt8](repeating: 0, count: 7).withUnsafeBytes { raw in
            XCTAssertThrowsError(try stream.write("a", bytes: raw)) { XCTAssertTrue("\($0)".contains("got 7 bytes but F32 [2] needs 8"), "\($0)") }
        }
        XCTAssertThrowsError(try stream.write("zz", StoredTensor(dtype: .u8, shape: [1], bytes: [0])))
        XCTAssertThrowsError(try stream.write("b", StoredTensor(dtype: .i8, shape: [1], bytes: [0]))) {
            XCTAssertTrue("\($0)".contains("declared U8 [1] but is I8 [1]"), "\($0)")
        }
        try stream.write("b", StoredTensor(dtype: .u8, shape: [1], bytes: [0]))
        XCTAssertThrowsError(try stream.finish()) { XCTAssertTrue("\($0)".contains(#"never written ("a")"#), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
        XCTAssertEqual(try Fixtures.temporaryLeftovers(in: folder), [])
    }
}
