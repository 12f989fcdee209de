import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest

/// `GGUFWriter` against gguf-py (llama.cpp's Python writer, `gguf` in the repository's .venv):
/// a file gguf-py wrote, read by `GGUFFile` and written again by `GGUFWriter` with the same
/// metadata, tensor list and bytes, must come out byte for byte the same file — header, value
/// encodings, tensor infos, offsets, padding. And gguf-py must read what qdist writes.
final class GGUFWriterTests: XCTestCase {
    /// Re-writes `url` through qdist and returns both files' bytes.
    private func rewrite(_ url: URL, into dir: URL) throws -> (original: Data, ours: Data) {
        let file = try GGUFFile(url: url)
        let out = dir.appendingPathComponent("ours-\(url.lastPathComponent)")
        let specs = file.tensorInfos.map { GGUFWriter.TensorSpec(name: $0.name, dims: $0.dims, type: $0.type) }
        try GGUFWriter.write(to: out, metadata: file.metadata, tensors: specs) { i in try file.rawBytes(specs[i].name) }
        return (try Data(contentsOf: url), try Data(contentsOf: out))
    }

    func testEveryMetadataTypeAndCustomAlignmentRewriteByteIdenticallyToGGUFPy() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let path = dir.appendingPathComponent("metadata.gguf")
        try GGUFReference.run(["metadata", path.path])
        let (original, ours) = try rewrite(path, into: dir)
        XCTAssertEqual(try GGUFFile(url: path).alignment, 64, "the file under test must use a custom alignment")
        XCTAssertEqual(ours.count, original.count)
        XCTAssertTrue(ours == original, "qdist's rewrite of gguf-py's metadata file differs")
    }

    func testEveryBlockTypeRewritesByteIdenticallyToGGUFPy() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        try GGUFReference.run(["types", dir.path])
        let path = dir.appendingPathComponent("types.gguf")
        let file = try GGUFFile(url: path)
        XCTAssertGreaterThanOrEqual(Set(file.tensorInfos.map(\.type)).count, 15, "the file must hold every type gguf-py writes")
        let (original, ours) = try rewrite(path, into: dir)
        XCTAssertEqual(ours.count, original.count)
        XCTAssertTrue(ours == original, "qdist's rewrite of gguf-py's types file differs")
    }

    func testGGUFPyReadsQdistFileAndDequantizesEqually() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let out = dir.appendingPathComponent("ours.gguf")
        var meta = GGUFMetadata()
        meta["general.architecture"] = .string("llama")
        meta["t.names"] = .array(.string(["α", "b"]))
        // Q8_0 blocks with finite fp16 scales: d = 0.5, codes -64…63.
        var q8: [UInt8] = []
        for block in 0..<6 {
            q8 += [0x00, 0x38]  // fp16 0.5
            q8 += (0..<32).map { UInt8(bitPattern: Int8(truncatingIfNeeded: block * 7 + $0 * 3 - 64)) }
        }
        let f32 = (0..<5).map { Float($0) * 0.25 - 0.5 }
        let specs = [GGUFWriter.TensorSpec(name: "vec", shape: [5], type: .f32),
                     GGUFWriter.TensorSpec(name: "mat", shape: [3, 64], type: .q8_0)]
        let layout = try GGUFWriter.write(to: out, metadata: meta, tensors: specs) { i in
            i == 0 ? f32.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } : q8
        }
        XCTAssertEqual(layout.fileSize % 32, 0)
        XCTAssertEqual(try Data(contentsOf: out).count, layout.fileSize)
        let expected = dir.appendingPathComponent("expected.safetensors")
        try GGUFReference.run(["dequantize", out.path, expected.path])
        let reference = try SafetensorsReader(url: expected)
        let ours = try GGUFFile(url: out)
        XCTAssertEqual(try reference.tensor("vec").scalars, f32)
        XCTAssertEqual(try reference.tensor("mat").shape, [3, 64])
        XCTAssertEqual(try reference.tensor("mat").scalars, try ours.tensor("mat").scalars)
        XCTAssertEqual(ours.metadata.stringArray("t.names"), ["α", "b"])
    }

    func testInvalidTensorsAreRefusedBeforeAnythingIsWritten() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let out = dir.appendingPathComponent("x.gguf")
        try Data("keep me".utf8).write(to: out)
        let meta = GGUFMetadata()
        let cases: [([GGUFWriter.TensorSpec], String)] = [
            ([.init(name: "a", shape: [2, 48], type: .q8_0)], "not a whole number of Q8_0 blocks"),
            ([.init(name: "a", shape: [4], type: .f32), .init(name: "a", shape: [4], type: .f32)], "listed twice"),
            ([.init(name: String(repeating: "n", count: 64), shape: [4], type: .f32)], "1 to 63 bytes"),
            ([.init(name: "a", dims: [1, 1, 1, 1, 1], type: .f32)], "1 to 4 positive dimensions"),
        ]
        for (specs, message) in cases {
            XCTAssertThrowsError(try GGUFWriter.write(to: out, metadata: meta, tensors: specs) { _ in [] }) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
                XCTAssertTrue("\(error)".contains(out.path), "the error names the file: \(error)")
            }
        }
        var badAlignment = GGUFMetadata()
        badAlignment["general.alignment"] = .uint32(48)
        XCTAssertThrowsError(try GGUFWriter.write(to: out, metadata: badAlignment, tensors: []) { _ in [] })
        // A callback that returns the wrong byte count fails after the header: still no file.
        XCTAssertThrowsError(try GGUFWriter.write(to: out, metadata: meta, tensors: [.init(name: "a", shape: [4], type: .f32)]) { _ in [0, 1] }) { error in
            XCTAssertTrue("\(error)".contains("2 bytes given"), "\(error)")
        }
        XCTAssertEqual(try String(contentsOf: out, encoding: .utf8), "keep me", "a failed write must leave the destination untouched")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0 != "x.gguf" }
        XCTAssertEqual(leftovers, [], "no temporary file may remain")
    }
}
