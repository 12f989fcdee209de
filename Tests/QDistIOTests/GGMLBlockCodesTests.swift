import Foundation
import QDistIO
import XCTest

/// `GGMLBlockCodes` against ggml's own dequantizer and encoders: the grid it reads (a·q + b per
/// sub-block, from the block's scale bytes) and the codes it reads must give every dequantized
/// value bit for bit, and writing a reference block's codes back into a block whose codes were
/// overwritten must give the reference block's bytes.
final class GGMLBlockCodesTests: XCTestCase {
    static let types: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

    /// Two 512-wide rows with outliers and a row of zeros, so signs, clamps and a zero scale occur.
    static func rows() -> (values: [Float], importance: [Float]) {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24) - 0.5
        }
        var values = (0..<(2 * 512)).map { _ in next() * 0.1 }
        for i in stride(from: 3, to: values.count, by: 97) { values[i] *= 25 }
        values += [Float](repeating: 0, count: 512)
        let importance = (0..<512).map { _ in 0.01 + abs(next()) * 4 }
        return (values, importance)
    }

    func testGridAndCodesReproduceTheDequantizerBitForBit() throws {
        let (values, importance) = Self.rows()
        for type in Self.types {
            for imatrix in [nil, importance] {
                let bytes = try GGMLQuantize.quantize(type, values, rowLength: 512, importance: imatrix)
                let reference = type.dequantize(bytes)
                let layout = try XCTUnwrap(GGMLBlockCodes.layout(type))
                let n = type.traits.blockSize, size = type.traits.typeSize
                var a = [Float](repeating: 0, count: n / layout.subBlock), b = a
                var mismatches = 0, outOfRange = 0
                bytes.withUnsafeBytes { raw in
                    for blk in 0..<(bytes.count / size) {
                        let p = raw.baseAddress! + blk * size
                        GGMLBlockCodes.grid(type, block: p, scales: &a, offsets: &b)
                        for e in 0..<n {
                            let q = GGMLBlockCodes.code(type, block: p, element: e)
                            if q < layout.codeMin || q > layout.codeMax { outOfRange += 1 }
                            let j = e / layout.subBlock
                            let value = a[j] * Float(q) + b[j]
                            if value.bitPattern != reference[blk * n + e].bitPattern && !(value == 0 && reference[blk * n + e] == 0) { mismatches += 1 }
                        }
                    }
                }
                XCTAssertEqual(mismatches, 0, "\(type.traits.name) imatrix \(imatrix != nil)")
                XCTAssertEqual(outOfRange, 0, "\(type.traits.name)")
            }
        }
    }

    func testWritingTheCodesBackGivesTheReferenceBlocks() throws {
        let (values, importance) = Self.rows()
        for type in Self.types {
            let bytes = try GGMLQuantize.quantize(type, values, rowLength: 512, importance: importance)
            let layout = try XCTUnwrap(GGMLBlockCodes.layout(type))
            let n = type.traits.blockSize, size = type.traits.typeSize
            var scrambled = bytes
            bytes.withUnsafeBytes { src in
                scrambled.withUnsafeMutableBytes { dst in
                    for blk in 0..<(bytes.count / size) {
                        let codes = (0..<n).map { GGMLBlockCodes.code(type, block: src.baseAddress! + blk * size, element: $0) }
                        // Overwrite every code with another value first, so stale bits would show.
                        for e in 0..<n { GGMLBlockCodes.setCode(type, block: dst.baseAddress! + blk * size, element: e, e % 2 == 0 ? layout.codeMax : layout.codeMin) }
                        for e in 0..<n { GGMLBlockCodes.setCode(type, block: dst.baseAddress! + blk * size, element: e, codes[e]) }
                    }
                }
            }
            XCTAssertEqual(scrambled, bytes, type.traits.name)
            // And a changed code changes only that weight's value, to a·q + b.
            var edited = bytes
            edited.withUnsafeMutableBytes { GGMLBlockCodes.setCode(type, block: $0.baseAddress!, element: 5, layout.codeMax) }
            let before = type.dequantize(bytes), after = type.dequantize(edited)
            var a = [Float](repeating: 0, count: n / layout.subBlock), b = a
            edited.withUnsafeBytes { GGMLBlockCodes.grid(type, block: $0.baseAddress!, scales: &a, offsets: &b) }
            XCTAssertEqual(after[5], a[0] * Float(layout.codeMax) + b[0], type.traits.name)
            XCTAssertEqual(zip(before, after).enumerated().filter { $0.offset != 5 && $0.element.0 != $0.element.1 }.count, 0, type.traits.name)
        }
    }

    func testTypesWithoutAnIntegerGridHaveNoLayout() {
        for type in [GGMLType.f32, .f16, .bf16, .tq1_0, .tq2_0] { XCTAssertNil(GGMLBlockCodes.layout(type), type.traits.name) }
    }
}
