import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest

/// Dequantization of every supported ggml type, against gguf-py (llama.cpp's Python library,
/// `gguf` in the repository's .venv) on files gguf-py wrote. These never skip: a missing
/// Python environment or `gguf` package fails them.
///
/// Tolerance: bit-exact for every type. gguf-py computes each of these in Float32 with the same
/// operation order as ggml-quants.c (scale·code, then − min), and so does `GGMLDequantize`.
final class GGUFDequantizeTests: XCTestCase {
    /// Types gguf-py quantizes itself (random normal data, 3 rows × 512).
    static let quantizedByReference: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .tq1_0, .tq2_0]
    /// Types gguf-py only dequantizes: random block bytes with random finite fp16 super-scales.
    static let randomBlocks: [GGMLType] = [.q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

    func testEveryTypeDequantizesBitIdenticallyToGGUFPy() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        try GGUFReference.run(["types", dir.path])
        let file = try GGUFFile(url: dir.appendingPathComponent("types.gguf"))
        let expected = try SafetensorsReader(url: dir.appendingPathComponent("expected.safetensors"))
        for type in Self.quantizedByReference + Self.randomBlocks {
            let name = type.traits.name
            let info = try file.info(name)
            XCTAssertEqual(info.type, type, name)
            XCTAssertEqual(info.dims, [512, 3], "\(name): ggml dims are innermost first")
            XCTAssertEqual(info.shape, [3, 512], name)
            XCTAssertGreaterThanOrEqual(info.rowLength / type.traits.blockSize, 2, "\(name): rows span 2+ blocks")
            let ours = try file.tensor(name)
            let reference = try expected.tensor(name)
            XCTAssertEqual(ours.shape, reference.shape, name)
            Self.assertBitIdentical(ours.scalars, reference.scalars, name)
        }
        let cube = try file.tensor("Q8_0_3d")
        XCTAssertEqual(try file.info("Q8_0_3d").dims, [64, 3, 2])
        XCTAssertEqual(cube.shape, [2, 3, 64])
        Self.assertBitIdentical(cube.scalars, try expected.tensor("Q8_0_3d").scalars, "Q8_0_3d")
    }

    func testRawBytesAreTheStoredBlocksAndDequantizeThroughTheTraitsTable() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        try GGUFReference.run(["types", dir.path])
        let file = try GGUFFile(url: dir.appendingPathComponent("types.gguf"))
        for name in ["Q4_K", "TQ1_0", "BF16"] {
            let info = try file.info(name)
            let bytes = try file.rawBytes(name)
            XCTAssertEqual(bytes.count, info.byteCount, name)
            XCTAssertEqual(bytes.count, 3 * 512 / info.type.traits.blockSize * info.type.traits.typeSize, name)
            XCTAssertEqual(try file.byteRange(of: name).count, bytes.count)
            Self.assertBitIdentical(info.type.dequantize(bytes), try file.tensor(name).scalars, name)
        }
    }

    /// ggml's `static_assert(sizeof(block_q4_0) == …)`: the table's bytes per block equal the
    /// sum of each block's fields (FORMATS.md §2.3).
    func testTraitsTableBlockSizesMatchTheBlockLayouts() {
        let half = 2, k = 256
        let layouts: [GGMLType: (elements: Int, bytes: Int)] = [
            .f32: (1, 4), .f16: (1, 2), .bf16: (1, 2),
            .q4_0: (32, half + 16), .q4_1: (32, 2 * half + 16), .q5_0: (32, half + 4 + 16),
            .q5_1: (32, 2 * half + 4 + 16), .q8_0: (32, half + 32),
            .q2_K: (k, k / 16 + k / 4 + 2 * half), .q3_K: (k, k / 8 + k / 4 + 12 + half),
            .q4_K: (k, 2 * half + 12 + k / 2), .q5_K: (k, 2 * half + 12 + k / 8 + k / 2),
            .q6_K: (k, k / 2 + k / 4 + k / 16 + half),
            .tq1_0: (k, (k - 4 * k / 64) / 5 + k / 64 + half), .tq2_0: (k, k / 4 + half),
        ]
        for (type, layout) in layouts {
            XCTAssertEqual(type.traits.blockSize, layout.elements, type.traits.name)
            XCTAssertEqual(type.traits.typeSize, layout.bytes, type.traits.name)
            XCTAssertTrue(type.canDequantize, type.traits.name)
        }
        XCTAssertEqual(MemoryLayout<Float16Bits>.size, half)
        for type in [GGMLType.iq2_XXS, .iq4_NL, .q8_1, .q8_K] { XCTAssertFalse(type.canDequantize, type.traits.name) }
        XCTAssertEqual(GGMLType.dequantizable.count, layouts.count + 5, "plus F64, I8, I16, I32, I64")
    }

    func testHandBuiltBlocksDecodeToTheFormulasOfFormatsMd() {
        // Q4_0: d = 0.5, nibbles 0..15 low then high: y = (q − 8)·d.
        var q4 = [UInt8](repeating: 0, count: 18)
        q4[0] = 0x00; q4[1] = 0x38  // fp16 0.5
        for j in 0..<16 { q4[2 + j] = UInt8(j) | UInt8(15 - j) << 4 }
        let y4 = GGMLType.q4_0.dequantize(q4)
        XCTAssertEqual(Array(y4[0..<3]), [-4, -3.5, -3])
        XCTAssertEqual(y4[16], 3.5)  // high nibble of byte 0 is 15
        // Q8_0: d = 2, codes −128, 127.
        var q8 = [UInt8](repeating: 0, count: 34)
        q8[1] = 0x40  // fp16 2.0
        q8[2] = 0x80; q8[3] = 0x7F
        XCTAssertEqual(Array(GGMLType.q8_0.dequantize(q8)[0..<3]), [-256, 254, 0])
        // TQ2_0: codes 0, 1, 2 → −1, 0, 1 at elements 0, 32, 64 (bits 0-1, 2-3, 4-5 of byte 0).
        var t2 = [UInt8](repeating: 0x55, count: 66)  // all codes 1 → 0
        t2[0] = 0b0010_0100; t2[64] = 0x00; t2[65] = 0x3C  // d = 1
        let yt = GGMLType.tq2_0.dequantize(t2)
        XCTAssertEqual([yt[0], yt[32], yt[64], yt[96]], [-1, 0, 1, -1])
        XCTAssertEqual(yt.filter { $0 != 0 }.count, 3)
    }

    static func assertBitIdentical(_ ours: [Float], _ reference: [Float], _ what: String,
                                   file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.count, reference.count, "\(what): element count", file: file, line: line)
        let n = min(ours.count, reference.count)
        guard let i = (0..<n).first(where: { ours[$0].bitPattern != reference[$0].bitPattern }) else { return }
        let mismatches = zip(ours, reference).filter { $0.0.bitPattern != $0.1.bitPattern }.count
        XCTFail("\(what): \(mismatches) of \(ours.count) values differ; first at \(i): ours \(ours[i]) vs gguf-py \(reference[i])",
                file: file, line: line)
    }
}

/// Stands for ggml's `ggml_half` in the layout test.
private typealias Float16Bits = UInt16

/// Runs Tests/Reference/gguf_reference.py with the reference Python; fails with its output.
enum GGUFReference {
    static let script = QdistProcess.repositoryRoot.appendingPathComponent("Tests/Reference/gguf_reference.py").path

    static func run(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try QdistProcess.runProcess(try QdistProcess.python(), [script] + arguments, environment: [:], timeout: 300)
        guard result.status == 0 else {
            XCTFail("gguf_reference.py \(arguments.joined(separator: " ")) failed (\(result.status)); is `gguf` installed in .venv (bash Launch/setup-debian.sh)?\n\(result.stderr)",
                    file: file, line: line)
            throw CocoaError(.executableLoad)
        }
    }
}
