import QDistTensor
import XCTest
@testable import QDistQuant

/// Bit-level checks of both int32 packings against layouts spelled out independently here
/// (compressed-tensors' docstring example, AutoGPTQ's 3-bit word map from FORMATS.md §4.2).
final class QuantizedFormatPackingTests: XCTestCase {
    private var rng = SeededGenerator(state: 7)

    private func randomValues(_ n: Int, bits: Int) -> [Int32] {
        (0..<n).map { _ in Int32.random(in: 0..<(1 << bits), using: &rng) }
    }

    func testWordAlignedRoundTripsEveryWidthAndOddLengths() throws {
        for bits in [2, 3, 4, 8] {
            for (rows, columns) in [(1, 1), (3, 7), (5, 33), (2, 100), (4, 10 * 32 / bits + 1)] {
                let values = randomValues(rows * columns, bits: bits)
                let words = try PackedInt32.pack(values, rows: rows, columns: columns, bits: bits, layout: .wordAligned)
                let pf = 32 / bits
                XCTAssertEqual(words.count, rows * ((columns + pf - 1) / pf), "\(bits)-bit (\(rows), \(columns))")
                let back = try PackedInt32.unpack(words, rows: rows, columns: columns, bits: bits, layout: .wordAligned)
                XCTAssertEqual(back, values, "\(bits)-bit (\(rows), \(columns))")
            }
        }
    }

    func testBitStreamRoundTripsAndRejectsPartialWords() throws {
        for bits in [2, 3, 4, 8] {
            let unit = bits == 3 ? 32 : 32 / bits
            for (rows, columns) in [(1, unit), (3, 2 * unit), (2, 5 * unit)] {
                let values = randomValues(rows * columns, bits: bits)
                let words = try PackedInt32.pack(values, rows: rows, columns: columns, bits: bits, layout: .bitStream)
                XCTAssertEqual(words.count, rows * columns * bits / 32)
                XCTAssertEqual(try PackedInt32.unpack(words, rows: rows, columns: columns, bits: bits, layout: .bitStream), values)
                if bits != 3 {
                    XCTAssertEqual(words, try PackedInt32.pack(values, rows: rows, columns: columns, bits: bits, layout: .wordAligned),
                                   "2/4/8-bit GPTQ packing is the word-aligned one")
                }
            }
            XCTAssertThrowsError(try PackedInt32.pack(randomValues(unit + 1, bits: bits), rows: 1, columns: unit + 1,
                                                      bits: bits, layout: .bitStream)) { error in
                XCTAssertTrue("\(error)".contains("multiple of \(unit)"), "\(error)")
            }
        }
    }

    func testFourBitNibblesAreLeastSignificantFirst() throws {
        let words = try PackedInt32.pack([1, 2, 3, 4, 5, 6, 7, 8], rows: 1, columns: 8, bits: 4, layout: .wordAligned)
        XCTAssertEqual(UInt32(bitPattern: words[0]), 0x8765_4321)
        let full = try PackedInt32.pack([Int32](repeating: 255, count: 4), rows: 1, columns: 4, bits: 8, layout: .wordAligned)
        XCTAssertEqual(full, [-1], "words are int32 bit patterns")
    }

    /// AutoGPTQ `pack` for 3 bits, transcribed from FORMATS.md §4.2 (word0 values 0-9 and the
    /// low 2 bits of 10; word1 bit 2 of 10, values 11-20, low bit of 21; word2 the rest).
    func testThreeBitGPTQMatchesAutoGPTQWordMap() throws {
        let v = randomValues(64, bits: 3).map(UInt32.init)
        var expected: [UInt32] = []
        for base in stride(from: 0, to: 64, by: 32) {
            var w0: UInt32 = 0, w1: UInt32 = 0, w2: UInt32 = 0
            for j in 0..<10 { w0 |= v[base + j] << UInt32(3 * j) }
            w0 |= v[base + 10] << 30
            w1 |= (v[base + 10] >> 2) & 1
            for j in 0..<10 { w1 |= v[base + 11 + j] << UInt32(3 * j + 1) }
            w1 |= v[base + 21] << 31
            w2 |= (v[base + 21] >> 1) & 3
            for j in 0..<10 { w2 |= v[base + 22 + j] << UInt32(3 * j + 2) }
            expected += [w0, w1, w2]
        }
        let words = try PackedInt32.pack(v.map { Int32($0) }, rows: 1, columns: 64, bits: 3, layout: .bitStream)
        XCTAssertEqual(words.map { UInt32(bitPattern: $0) }, expected)
    }

    func testThreeBitWordAlignedLeavesTopBitsZero() throws {
        let words = try PackedInt32.pack([Int32](repeating: 7, count: 10), rows: 1, columns: 10, bits: 3, layout: .wordAligned)
        XCTAssertEqual(UInt32(bitPattern: words[0]), 0x3FFF_FFFF)
    }

    func testCompressedTensorsPackToInt32DocstringExampleAndSignedRoundTrip() throws {
        // pack_to_int32 docstring: num_bits=8, [1, 2] → [129, 130, 0, 0] → 33409.
        let (words, shape) = try PackedInt32.packToInt32(signed: [1, 2], rows: 1, columns: 2, bits: 8)
        XCTAssertEqual(words, [33409])
        XCTAssertEqual(shape, [1, 1])
        for bits in [2, 3, 4, 8] {
            let half = Int32(1) << Int32(bits - 1)
            let (rows, columns) = (13, 9)
            let signed = (0..<rows * columns).map { _ in Int32.random(in: -half..<half, using: &rng) }
            for dim in [0, 1] {
                let (w, s) = try PackedInt32.packToInt32(signed: signed, rows: rows, columns: columns, bits: bits, packedDim: dim)
                let pf = 32 / bits
                XCTAssertEqual(s, dim == 1 ? [rows, (columns + pf - 1) / pf] : [(rows + pf - 1) / pf, columns])
                XCTAssertEqual(w.count, s[0] * s[1])
                XCTAssertEqual(try PackedInt32.unpackFromInt32(w, rows: rows, columns: columns, bits: bits, packedDim: dim), signed,
                               "\(bits)-bit packed_dim \(dim)")
            }
        }
    }

    func testOutOfRangeValuesAndWrongWordCountsAreOneLineErrors() {
        XCTAssertThrowsError(try PackedInt32.pack([16], rows: 1, columns: 1, bits: 4, layout: .wordAligned)) { error in
            XCTAssertTrue("\(error)".contains("does not fit in 4 unsigned bits"), "\(error)")
        }
        XCTAssertThrowsError(try PackedInt32.pack([-1], rows: 1, columns: 1, bits: 4, layout: .wordAligned))
        XCTAssertThrowsError(try PackedInt32.unpack([0, 0], rows: 1, columns: 8, bits: 4, layout: .wordAligned)) { error in
            XCTAssertFalse("\(error)".contains("\n"))
        }
    }
}
