import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// The encoders against a second, independent implementation: gguf-py's `gguf.quants.quantize`
/// (numpy ports of ggml's reference quantizers, in the repository's .venv), for every type it
/// implements. Inputs are the llama.cpp fixture's matrices (ties, tiny values, constant and
/// all-zero blocks included). Never skips: a missing `gguf` package fails the test.
///
/// Tolerance: byte-identical, with two known gguf-py departures from ggml, where qdist follows
/// ggml (the llama.cpp fixture pins that): NaN inputs are left out for F16 (numpy keeps a NaN's
/// payload, ggml writes the canonical 0x7E00), and in a Q4_0/Q5_0 block whose values are all
/// zero ggml always writes `d = −0` (its running max starts at +0 and is divided by −8) while
/// gguf-py divides the block's first element, so a block starting with −0 gets +0 there.
final class GGMLQuantizeInteropTests: XCTestCase {
    /// The types gguf-py 0.19 can encode (the k-quants it only decodes).
    static let ggufPyTypes: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .tq1_0, .tq2_0]

    func testEveryTypeGGUFPyEncodesMatchesItByteForByte() throws {
        let fixture = try GGMLQuantizeFixture.load()
        var compared = 0
        for matrix in fixture.matrices where matrix.name != "nonfinite" {
            let finite = matrix.values.allSatisfy(\.isFinite)
            let types = Self.ggufPyTypes.filter { finite || $0 == .bf16 || $0 == .f32 }
            let blocked = types.filter { matrix.rowLength % $0.traits.blockSize == 0 }
            let theirs = try Self.ggufPyQuantize(matrix.values, rowLength: matrix.rowLength, types: blocked)
            for type in blocked {
                var ours = try GGMLQuantize.quantize(type, matrix.values, rowLength: matrix.rowLength)
                if type == .q4_0 || type == .q5_0 { Self.matchGGUFPyZeroScaleSign(&ours, type: type, values: matrix.values) }
                GGMLQuantizeTests.assertSameBlocks(ours, try XCTUnwrap(theirs[type]), type: type, rowLength: matrix.rowLength,
                                                   "\(matrix.name) \(type.traits.name) vs gguf-py")
                compared += 1
            }
        }
        XCTAssertEqual(compared, 2 * Self.ggufPyTypes.count + 2, "mixed and short: every type; specials: F32, BF16")
    }

    /// Rewrites the scale of all-zero blocks from ggml's −0 to gguf-py's `first / −8` (see the
    /// class comment), checking first that ggml's is exactly −0.
    static func matchGGUFPyZeroScaleSign(_ bytes: inout [UInt8], type: GGMLType, values: [Float]) {
        let size = type.traits.typeSize
        for b in 0..<values.count / 32 where values[b * 32..<(b + 1) * 32].allSatisfy({ $0 == 0 }) {
            XCTAssertEqual([bytes[b * size], bytes[b * size + 1]], [0x00, 0x80], "\(type.traits.name) block \(b): ggml's d is −0")
            bytes[b * size + 1] = values[b * 32].sign == .minus ? 0x00 : 0x80
        }
    }

    /// Writes `values` for Tests/Reference/gguf_reference.py, runs `quantize`, reads back the
    /// bytes per type.
    static func ggufPyQuantize(_ values: [Float], rowLength: Int, types: [GGMLType]) throws -> [GGMLType: [UInt8]] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ggml-quantize-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("rows.f32")
        try values.withUnsafeBytes { try Data($0).write(to: input) }
        try GGUFReference.run(["quantize", input.path, String(rowLength), dir.path] + types.map(\.traits.name))
        var out: [GGMLType: [UInt8]] = [:]
        for type in types {
            out[type] = [UInt8](try Data(contentsOf: dir.appendingPathComponent("\(type.traits.name).bin")))
        }
        return out
    }
}
