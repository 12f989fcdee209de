import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest

final class SafetensorsReaderTests: XCTestCase {
    private let twoTensorHeader = #"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I8","shape":[2,2],"data_offsets":[8,12]}}"#
    private var twoTensorData: [UInt8] { [0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0] + [1, 0xFF, 3, 0x80] }

    private func writeFile(_ bytes: [UInt8], name: String = "model.safetensors") throws -> URL {
        let url = try QdistProcess.temporaryDirectory(self).appendingPathComponent(name)
        try Fixtures.write(bytes, to: url)
        return url
    }

    func testReadsNamesInfoMetadataAndValues() throws {
        let url = try writeFile(Fixtures.rawSafetensors(header: twoTensorHeader, data: twoTensorData))
        let reader = try SafetensorsReader(url: url)
        XCTAssertEqual(reader.tensorNames, ["a", "b"])
        XCTAssertEqual(reader.metadata, ["format": "pt"])
        let info = try reader.info("b")
        XCTAssertEqual(info.dtype, .i8)
        XCTAssertEqual(info.shape, [2, 2])
        XCTAssertEqual(info.dataOffsets, 8..<12)
        XCTAssertEqual(info.byteRange, (8 + reader.header.headerLength + 8)..<(8 + reader.header.headerLength + 12))
        XCTAssertEqual(try reader.tensor("a"), Tensor(shape: [2], scalars: [1, -2]))
        XCTAssertEqual(try reader.tensor("b").scalars, [1, -1, 3, -128])
        XCTAssertEqual(try reader.storedTensor("b"), StoredTensor(dtype: .i8, shape: [2, 2], bytes: [1, 0xFF, 3, 0x80]))
        let raw = try reader.withRawBytes("a") { Array($0) }
        XCTAssertEqual(raw, Array(twoTensorData[0..<8]))
    }

    func testTensorNamesFollowDataOrderNotHeaderOrder() throws {
        let header = #"{"late":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},"early":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#
        let reader = try SafetensorsReader(url: try writeFile(Fixtures.rawSafetensors(header: header, data: [1, 2, 3])))
        XCTAssertEqual(reader.tensorNames, ["early", "late"])
    }

    func testAcceptsWhitespacePaddingAroundTheHeaderAsTheReferenceDoes() throws {
        let header = "\t\n" + #"{"x":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}"# + "\r \t\n   "
        let reader = try SafetensorsReader(url: try writeFile(Fixtures.rawSafetensors(header: header, data: [7])))
        XCTAssertEqual(try reader.storedTensor("x").bytes, [7])
        XCTAssertTrue(reader.metadata.isEmpty)
    }

    func testEmptyTensorsAndAnEmptyFileOfTensorsAreValid() throws {
        let header = #"{"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"f":{"dtype":"F16","shape":[3,0],"data_offsets":[0,0]}}"#
        let reader = try SafetensorsReader(url: try writeFile(Fixtures.rawSafetensors(header: header)))
        XCTAssertEqual(reader.tensorNames, ["e", "f"])
        XCTAssertEqual(try reader.tensor("e").shape, [0, 3])
        let none = try SafetensorsReader(url: try writeFile(Fixtures.rawSafetensors(header: "{}"), name: "none.safetensors"))
        XCTAssertEqual(none.tensorNames, [])
    }

    func testUnknownTensorNameIsANotFoundErrorNamingTheFile() throws {
        let url = try writeFile(Fixtures.rawSafetensors(header: twoTensorHeader, data: twoTensorData))
        let reader = try SafetensorsReader(url: url)
        XCTAssertThrowsError(try reader.tensor("zzz")) { error in
            XCTAssertEqual((error as? QDistIOError)?.kind, .notFound)
            XCTAssertTrue("\(error)".hasPrefix(url.path + ": no tensor named \"zzz\""), "\(error)")
        }
    }

    func testSizeMismatchMessageNamesFileTensorOffsetsAndNeed() throws {
        let header = #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#
        let url = try writeFile(Fixtures.rawSafetensors(header: header, data: [UInt8](repeating: 0, count: 12)))
        XCTAssertThrowsError(try SafetensorsReader(url: url)) { error in
            XCTAssertEqual("\(error)", url.path + #": tensor "w": data_offsets [0, 12] hold 12 bytes but F32 [2, 2] needs 16"#)
        }
    }

    func testMissingFileAndFolderAreIOErrors() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        XCTAssertThrowsError(try SafetensorsReader(url: folder.appendingPathComponent("absent.safetensors"))) { error in
            XCTAssertEqual((error as? QDistIOError)?.kind, .io)
            XCTAssertTrue("\(error)".contains("absent.safetensors: cannot open: No such file"), "\(error)")
        }
        XCTAssertThrowsError(try SafetensorsReader(url: folder)) { error in
            XCTAssertTrue("\(error)".contains("not a regular file"), "\(error)")
        }
    }

    func testReaderDecodesEveryDTypeLikeStoredTensor() throws {
        let tensors = Fixtures.allDTypeTensors()
        let url = try writeFile(try SafetensorsWriter.serialize(tensors))
        let reader = try SafetensorsReader(url: url)
        for (name, stored) in tensors {
            let decoded = try reader.tensor(name)
            XCTAssertEqual(decoded.shape, stored.shape, name)
            XCTAssertEqual(decoded.scalars.map(\.bitPattern), stored.toTensor().scalars.map(\.bitPattern), name)
        }
    }
}
