import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// The ggml encoders against llama.cpp itself: Fixtures/ggml_quantize_vectors.vectors holds
/// `ggml_quantize_chunk`'s output (libggml-base.so, see Tests/Reference/ggml_quantize_vectors.py)
/// for every type qdist writes, without importance and with two imatrix vectors. Tolerance:
/// none — every byte must match.
final class GGMLQuantizeTests: XCTestCase {
    /// Block types: all three importance choices are in the fixture.
    static let blockTypes: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .tq1_0, .tq2_0]
    static let floatTypes: [GGMLType] = [.f32, .f16, .bf16]

    func testEveryTypeAndImportanceChoiceIsByteIdenticalToLlamaCpp() throws {
        let fixture = try GGMLQuantizeFixture.load()
        XCTAssertTrue(fixture.source.contains("llama.cpp"), fixture.source)
        var covered: Set<String> = []
        var vectors = 0, rowsChecked = 0
        for matrix in fixture.matrices {
            for entry in matrix.entries {
                let importance = entry.importance == 0 ? nil : matrix.importance[entry.importance - 1]
                let ours = try GGMLQuantize.quantize(entry.type, matrix.values, rowLength: matrix.rowLength, importance: importance)
                let what = "\(matrix.name) \(entry.type.traits.name) importance \(entry.importance)"
                Self.assertSameBlocks(ours, entry.bytes, type: entry.type, rowLength: matrix.rowLength, what)
                covered.insert("\(entry.type.traits.name)/\(entry.importance)")
                vectors += 1
                rowsChecked += matrix.rows
            }
        }
        // Every type qdist writes is in the fixture, block types under all three choices.
        for type in Self.blockTypes { for k in 0...2 { XCTAssertTrue(covered.contains("\(type.traits.name)/\(k)"), "\(type.traits.name)/\(k)") } }
        for type in Self.floatTypes { XCTAssertTrue(covered.contains("\(type.traits.name)/0"), type.traits.name) }
        XCTAssertEqual(Set(GGMLType.quantizable), Set(Self.blockTypes + Self.floatTypes))
        if GGMLQuantizeFixture.isCommitted {
            XCTAssertEqual(fixture.matrices.map(\.name), ["mixed", "short", "nonfinite", "specials"])
            XCTAssertEqual(vectors, 3 * Self.blockTypes.count * 3 + 4 * Self.floatTypes.count, "fixture entries")
        }
        print("GGMLQuantizeTests: checked \(vectors) llama.cpp vectors (\(rowsChecked) rows) from \(GGMLQuantizeFixture.url.lastPathComponent)")
    }

    /// ggml passes no imatrix to the float converters and Q8_0/TQ1_0/TQ2_0 ignore it, so an
    /// importance vector must not change their bytes; the other block types must use it.
    func testImportanceChangesExactlyTheTypesWhoseGGMLEncoderReadsIt() throws {
        let fixture = try GGMLQuantizeFixture.load()
        let matrix = try XCTUnwrap(fixture.matrices.first { $0.name == "mixed" })
        for type in GGMLType.quantizable {
            let plain = try GGMLQuantize.quantize(type, matrix.values, rowLength: matrix.rowLength)
            let weighted = try GGMLQuantize.quantize(type, matrix.values, rowLength: matrix.rowLength, importance: matrix.importance[0])
            let usesImportance = try XCTUnwrap(type.traits.quantize).usesImportance
            XCTAssertEqual(plain != weighted, usesImportance, type.traits.name)
        }
        let readers: Set<GGMLType> = [.q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]
        XCTAssertEqual(Set(GGMLType.quantizable.filter { $0.traits.quantize?.usesImportance == true }), readers)
    }

    /// Rows are independent: encoding row ranges into slices of one buffer (what a parallel
    /// caller does) gives the bytes of encoding the whole matrix at once.
    func testRowRangesEncodeIntoSlicesExactlyAsTheWholeMatrix() throws {
        let fixture = try GGMLQuantizeFixture.load()
        let matrix = try XCTUnwrap(fixture.matrices.first { $0.name == "mixed" })
        for type in [GGMLType.q4_K, .q5_0, .q3_K] {
            let rowBytes = try XCTUnwrap(type.byteCount(elements: matrix.rowLength))
            let whole = try GGMLQuantize.quantize(type, matrix.values, rowLength: matrix.rowLength, importance: matrix.importance[1])
            var pieced = [UInt8](repeating: 0xAB, count: whole.count)
            try matrix.values.withUnsafeBufferPointer { values in
                try matrix.importance[1].withUnsafeBufferPointer { importance in
                    try pieced.withUnsafeMutableBytes { out in
                        for (start, end) in [(0, 5), (5, 6), (6, 12)] {
                            let rows = UnsafeBufferPointer(rebasing: values[start * matrix.rowLength..<end * matrix.rowLength])
                            let slice = UnsafeMutableRawBufferPointer(rebasing: out[start * rowBytes..<end * rowBytes])
                            try GGMLQuantize.quantize(type, rows: rows, rowLength: matrix.rowLength, importance: importance, into: slice)
                        }
                    }
                }
            }
            XCTAssertEqual(pieced, whole, type.traits.name)
        }
    }

    /// The threaded whole-matrix entry gives the single-threaded bytes for every thread count,
    /// with and without importance, and the same errors.
    func testThreadedEncodingIsByteIdenticalForAnyThreadCount() throws {
        let rows = 200, n = 512
        let x = GGMLQuantizeAccuracyTests.gaussian(rows * n, seed: 77, scale: 0.02)
        let importance = GGMLQuantizeAccuracyTests.gaussian(n, seed: 78).map { $0 * $0 + 0.01 }
        for type in [GGMLType.q4_K, .q3_K, .q5_1, .q8_0] {
            for imp in [nil, importance] {
                let single = try GGMLQuantize.quantize(type, x, rowLength: n, importance: imp)
                for threads in [2, 3, 7] {
                    let threaded = try x.withUnsafeBufferPointer { try GGMLQuantize.quantize(type, rows: $0, rowLength: n, importance: imp, threads: threads) }
                    XCTAssertEqual(threaded, single, "\(type.traits.name), \(threads) threads, importance \(imp != nil)")
                }
            }
        }
        XCTAssertThrowsError(try x.withUnsafeBufferPointer { try GGMLQuantize.quantize(.q4_K, rows: $0, rowLength: n, importance: [1, 2], threads: 4) })
    }

    func testBadRowLengthsUnsupportedTypesAndImportanceLengthsThrowClearErrors() throws {
        let values = [Float](repeating: 0.5, count: 512)
        XCTAssertThrowsError(try GGMLQuantize.quantize(.q4_K, values, rowLength: 128)) { error in
            XCTAssertEqual(error as? GGMLQuantizeError, .rowLength(.q4_K, rowLength: 128, blockSize: 256))
            XCTAssertTrue("\(error)".contains("blocks of 256"), "\(error)")
        }
        XCTAssertThrowsError(try GGMLQuantize.quantize(.q8_0, values, rowLength: 48)) {
            XCTAssertEqual($0 as? GGMLQuantizeError, .rowLength(.q8_0, rowLength: 48, blockSize: 32))
        }
        XCTAssertThrowsError(try GGMLQuantize.quantize(.f16, values, rowLength: 0)) {
            XCTAssertEqual($0 as? GGMLQuantizeError, .rowLength(.f16, rowLength: 0, blockSize: 1))
        }
        XCTAssertThrowsError(try GGMLQuantize.quantize(.q8_0, Array(values[0..<480]), rowLength: 64)) {
            XCTAssertEqual($0 as? GGMLQuantizeError, .valueCount(480, rowLength: 64))
        }
        for type in [GGMLType.iq2_XXS, .iq4_NL, .q8_1, .q8_K, .i8, .f64] {
            XCTAssertFalse(type.canQuantize, type.traits.name)
            XCTAssertThrowsError(try GGMLQuantize.quantize(type, values, rowLength: 256)) { error in
                XCTAssertEqual(error as? GGMLQuantizeError, .noEncoder(type))
                XCTAssertTrue("\(error)".contains("cannot quantize to \(type.traits.name)"), "\(error)")
                XCTAssertTrue("\(error)".contains("Q4_K"), "lists what can be written: \(error)")
            }
        }
        XCTAssertThrowsError(try GGMLQuantize.quantize(.q4_K, values, rowLength: 256, importance: [Float](repeating: 1, count: 512))) { error in
            XCTAssertEqual(error as? GGMLQuantizeError, .importanceLength(512, rowLength: 256))
            XCTAssertTrue("\(error)".contains("per input column"), "\(error)")
        }
        // Types that ignore importance still reject a vector of the wrong length: it means the
        // caller paired the wrong imatrix entry with this tensor.
        XCTAssertThrowsError(try GGMLQuantize.quantize(.q8_0, values, rowLength: 256, importance: [1, 2, 3]))
        var small = [UInt8](repeating: 0, count: 10)
        XCTAssertThrowsError(try values.withUnsafeBufferPointer { v in
            try small.withUnsafeMutableBytes { try GGMLQuantize.quantize(.q8_0, rows: v, rowLength: 256, importance: nil, into: $0) }
        }) { XCTAssertEqual($0 as? GGMLQuantizeError, .destinationSize(expected: 2 * 272, actual: 10)) }
        XCTAssertEqual(try GGMLQuantize.quantize(.q4_K, [], rowLength: 256), [], "zero rows encode to zero bytes")
    }

    /// Inputs C accepts without complaint (NaN, infinities, huge values) must not trap in
    /// Swift: every float→integer step is spelled as C's x86 conversion, never a checked cast.
    func testNonFiniteAndHugeInputsEncodeWithoutTrapping() throws {
        var row = (0..<512).map { Float(sin(Double($0))) }
        row[3] = .nan
        row[40] = .infinity
        row[300] = -.infinity
        row[77] = 3e38
        row[400] = -3e38
        row[500] = .leastNonzeroMagnitude
        let importance = (0..<512).map { $0 % 5 == 0 ? Float.nan : Float($0) }
        for type in GGMLType.quantizable {
            let plain = try GGMLQuantize.quantize(type, row, rowLength: 512)
            let weighted = try GGMLQuantize.quantize(type, row, rowLength: 512, importance: importance)
            XCTAssertEqual(plain.count, type.byteCount(elements: 512), type.traits.name)
            XCTAssertEqual(weighted.count, plain.count, type.traits.name)
        }
    }

    /// Compares encodings block by block so a failure names the first wrong block.
    static func assertSameBlocks(_ ours: [UInt8], _ expected: [UInt8], type: GGMLType, rowLength: Int, _ what: String,
                                 file: StaticString = #filePath, line: UInt = #line) {
        guard ours != expected else { return }
        guard ours.count == expected.count else {
            return XCTFail("\(what): \(ours.count) bytes, llama.cpp wrote \(expected.count)", file: file, line: line)
        }
        let size = type.traits.typeSize, blocksPerRow = rowLength / type.traits.blockSize
        let bad = stride(from: 0, to: ours.count, by: size).filter { ours[$0..<$0 + size] != expected[$0..<$0 + size] }
        let first = bad[0]
        let hex = { (b: ArraySlice<UInt8>) in b.map { String(format: "%02x", $0) }.joined() }
        XCTFail("""
            \(what): \(bad.count) of \(ours.count / size) blocks differ; first is block \(first / size % blocksPerRow) of row \(first / size / blocksPerRow)
              ours      \(hex(ours[first..<first + size]))
              llama.cpp \(hex(expected[first..<first + size]))
            """, file: file, line: line)
    }
}
