import QDistIO
import QDistTensor
@testable import QDistQuant
import XCTest

/// GPTQ on ggml block grids: with no correlation to exploit it is llama.cpp's reference encoding;
/// with a real Hessian its output error is below the reference encoder's, its codes follow a
/// float64 textbook GPTQ on the same grid, and its bytes decode (ggml's dequantizer) to the
/// weight it reports.
final class GGMLBlockGPTQTests: XCTestCase {
    static let kTypes: [GGMLType] = [.q2_K, .q3_K, .q4_K, .q5_K, .q6_K]
    static let legacyTypes: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0]

    func testIdentityHessianGivesTheReferenceEncodersBytesForKQuants() throws {
        let w = QuantTestData.gaussian(24, 512, std: 0.05, seed: 7, outlierFraction: 0.01)
        var identity = Tensor(shape: [512, 512], scalars: [Float](repeating: 0, count: 512 * 512))
        for i in 0..<512 { identity[i, i] = 1 }
        let importance = (0..<512).map { Float(1 + $0 % 7) }
        for type in Self.kTypes {
            for imatrix in [nil, importance] {
                let reference = try w.withUnsafeBufferPointer { try GGMLQuantize.quantize(type, rows: $0, rowLength: 512, importance: imatrix) }
                let r = try GGMLBlockGPTQ.quantize(w, hessian: identity, type: type, importance: imatrix, actOrder: false)
                XCTAssertEqual(r.bytes, reference, "\(type.traits.name) imatrix \(imatrix != nil)")
            }
        }
        // Scales re-encoded block by block from the (here unchanged) weights: without importance
        // the reference encoders are per block, so the bytes are again llama.cpp's.
        for type in Self.kTypes {
            let reference = try w.withUnsafeBufferPointer { try GGMLQuantize.quantize(type, rows: $0, rowLength: 512, importance: nil) }
            let r = try GGMLBlockGPTQ.quantize(w, hessian: identity, type: type, importance: nil, actOrder: false, scales: .updated)
            XCTAssertEqual(r.bytes, reference, "\(type.traits.name) updated scales")
        }
        // Q4_0/Q5_0/Q8_0 round with the unrounded scale, so ties may move; nearly every code agrees.
        for type in Self.legacyTypes {
            let reference = try w.withUnsafeBufferPointer { try GGMLQuantize.quantize(type, rows: $0, rowLength: 512, importance: nil) }
            let r = try GGMLBlockGPTQ.quantize(w, hessian: identity, type: type, importance: nil, actOrder: false)
            let a = type.dequantize(reference), b = type.dequantize(r.bytes)
            let differing = zip(a, b).filter { $0 != $1 }.count
            XCTAssertLessThan(Double(differing) / Double(a.count), 0.01, type.traits.name)
        }
    }

    func testOutputErrorIsBelowTheReferenceEncodersWithTheSameImportance() throws {
        let x = QuantTestData.correlatedInputs(tokens: 2048, columns: 512, seed: 3)
        let h = QuantTestData.hessian(x)
        let w = QuantTestData.gaussian(32, 512, std: 0.05, seed: 11, outlierFraction: 0.005)
        // The imatrix llama.cpp would collect: mean x² per input column.
        let importance = (0..<512).map { h[$0, $0] / 2 }
        for type in Self.kTypes + Self.legacyTypes {
            for (actOrder, scales) in [(false, GGMLBlockGPTQ.Scales.original), (true, .original), (false, .updated), (true, .refined)] {
                let reference = try w.withUnsafeBufferPointer { try GGMLQuantize.quantize(type, rows: $0, rowLength: 512, importance: importance) }
                let r = try GGMLBlockGPTQ.quantize(w, hessian: h, type: type, importance: importance, actOrder: actOrder, scales: scales)
                let rtn = QuantTestData.outputError(w, Tensor(shape: [32, 512], scalars: type.dequantize(reference)), x)
                let gptq = QuantTestData.outputError(w, r.dequantized, x)
                XCTAssertLessThan(gptq, rtn * 0.95, "\(type.traits.name) act-order \(actOrder) scales \(scales): GPTQ \(gptq) vs reference \(rtn)")
                // The bytes are what the result says: ggml's dequantizer gives its weight exactly.
                XCTAssertEqual(type.dequantize(r.bytes), r.dequantized.scalars, type.traits.name)
                XCTAssertEqual(r.bytes.count, reference.count)
            }
        }
    }

    /// Textbook GPTQ in float64 (one column at a time, no blocks, H⁻¹ by Cholesky of H then its
    /// inverse's upper factor) on the grid read from the reference blocks.
    func testCodesFollowAFloat64TextbookGPTQOnTheSameGrid() throws {
        let rows = 8, n = 256
        let x = QuantTestData.correlatedInputs(tokens: 1024, columns: n, seed: 5)
        let h = QuantTestData.hessian(x)
        let w = QuantTestData.gaussian(rows, n, std: 0.05, seed: 13)
        for type in [GGMLType.q3_K, .q4_0, .q4_K] {
            let layout = try XCTUnwrap(GGMLBlockCodes.layout(type))
            let reference = try w.withUnsafeBufferPointer { try GGMLQuantize.quantize(type, rows: $0, rowLength: n, importance: nil) }
            let r = try GGMLBlockGPTQ.quantize(w, hessian: h, type: type, importance: nil, actOrder: false, blockSize: 32)
            // Grid per (row, sub-block).
            let perBlock = type.traits.blockSize / layout.subBlock, blocksPerRow = n / type.traits.blockSize
            var a = [[Double]](repeating: [], count: rows), b = a
            reference.withUnsafeBytes { raw in
                var sa = [Float](repeating: 0, count: perBlock), sb = sa
                for r in 0..<rows {
                    for blk in 0..<blocksPerRow {
                        GGMLBlockCodes.grid(type, block: raw.baseAddress! + (r * blocksPerRow + blk) * type.traits.typeSize, scales: &sa, offsets: &sb)
                        a[r] += sa.map(Double.init); b[r] += sb.map(Double.init)
                    }
                }
            }
            // U upper with UᵀU = (H + damp)⁻¹, in float64.
            var hd = (0..<n).map { i in (0..<n).map { j in Double(h[i, j]) } }
            let damp = 0.01 * (0..<n).reduce(0.0) { $0 + hd[$1][$1] } / Double(n)
            for i in 0..<n { hd[i][i] += damp }
            let inv = Self.inverse(hd)
            let u = Self.upperCholesky(inv)
            var wd = (0..<rows).map { r in (0..<n).map { Double(w[r, $0]) } }
            var codes = [[Int]](repeating: [Int](repeating: 0, count: n), count: rows)
            for c in 0..<n {
                for r in 0..<rows {
                    let j = c / layout.subBlock
                    let q = a[r][j] == 0 ? 0 : min(max(((wd[r][c] - b[r][j]) / a[r][j]).rounded(.toNearestOrEven), Double(layout.codeMin)), Double(layout.codeMax))
                    codes[r][c] = Int(q)
                    let err = (wd[r][c] - (a[r][j] * q + b[r][j])) / u[c][c]
                    for k in (c + 1)..<n { wd[r][k] -= err * u[c][k] }
                }
            }
            var agree = 0
            r.bytes.withUnsafeBytes { raw in
                for row in 0..<rows {
                    for c in 0..<n {
                        let p = raw.baseAddress! + (row * blocksPerRow + c / type.traits.blockSize) * type.traits.typeSize
                        if GGMLBlockCodes.code(type, block: p, element: c % type.traits.blockSize) == codes[row][c] { agree += 1 }
                    }
                }
            }
            // Float32 against float64: a near-tie may flip a code and its error then propagates a
            // little; nearly all codes agree.
            XCTAssertGreaterThan(Double(agree) / Double(rows * n), 0.98, type.traits.name)
        }
    }

    /// A budget's block types solved together (one factorization) give each type's bytes, loss
    /// and dequantized weights exactly as solving it alone, with and without act-order and with
    /// the two-pass scales.
    func testTypesSolvedTogetherEqualEachSolvedAlone() throws {
        var x = QuantTestData.correlatedInputs(tokens: 1024, columns: 256, seed: 8)
        for t in 0..<x.rows { x[t, 3] = 0 }
        let h = QuantTestData.hessian(x)
        let w = QuantTestData.gaussian(16, 256, std: 0.05, seed: 21, outlierFraction: 0.01)
        let importance = (0..<256).map { Float(h[$0, $0]) }
        let types: [GGMLType] = [.q4_0, .q5_1, .q8_0, .q3_K, .q4_K, .q6_K]
        for (actOrder, scales) in [(false, GGMLBlockGPTQ.Scales.original), (true, .original), (true, .refined)] {
            let together = try GGMLBlockGPTQ.quantizeCandidates(w, hessian: h, types: types, importance: importance, actOrder: actOrder,
                                                                scales: scales, blockSize: 64, dampening: 0.02)
            XCTAssertEqual(together.count, types.count)
            for (type, shared) in zip(types, together) {
                let alone = try GGMLBlockGPTQ.quantize(w, hessian: h, type: type, importance: importance, actOrder: actOrder,
                                                       scales: scales, blockSize: 64, dampening: 0.02)
                XCTAssertEqual(shared.bytes, alone.bytes, "\(type.traits.name) act-order \(actOrder) \(scales)")
                XCTAssertEqual(shared.loss, alone.loss, "\(type.traits.name)")
                XCTAssertEqual(shared.dequantized, alone.dequantized, "\(type.traits.name)")
            }
            XCTAssertGreaterThan(together[3].loss, together[5].loss, "Q3_K loses more than Q6_K")
        }
    }

    func testRefusesATypeWithoutAGridAndARowThatIsNotWholeBlocks() {
        let w = QuantTestData.gaussian(4, 96, seed: 1)
        var h = Tensor(shape: [96, 96], scalars: [Float](repeating: 0, count: 96 * 96))
        for i in 0..<96 { h[i, i] = 1 }
        XCTAssertThrowsError(try GGMLBlockGPTQ.quantize(w, hessian: h, type: .q4_K, importance: nil, actOrder: false))
        XCTAssertThrowsError(try GGMLBlockGPTQ.quantize(w, hessian: h, type: .tq2_0, importance: nil, actOrder: false))
        XCTAssertThrowsError(try GGMLBlockGPTQ.quantize(w, hessian: h, type: .q4_0, importance: nil, actOrder: true, scales: .updated))
        XCTAssertThrowsError(try GGMLBlockGPTQ.quantize(w, hessian: h, type: .q4_0, importance: [1, 2], actOrder: false))
    }

    static func inverse(_ m: [[Double]]) -> [[Double]] {
        let n = m.count
        var a = m, inv = (0..<n).map { i in (0..<n).map { $0 == i ? 1.0 : 0.0 } }
        for c in 0..<n {
            let p = (c..<n).max { abs(a[$0][c]) < abs(a[$1][c]) }!
            a.swapAt(c, p); inv.swapAt(c, p)
            let d = a[c][c]
            for k in 0..<n { a[c][k] /= d; inv[c][k] /= d }
            for r in 0..<n where r != c {
                let f = a[r][c]
                if f == 0 { continue }
                for k in 0..<n { a[r][k] -= f * a[c][k]; inv[r][k] -= f * inv[c][k] }
            }
        }
        return inv
    }

    /// U with UᵀU = m (upper Cholesky).
    static func upperCholesky(_ m: [[Double]]) -> [[Double]] {
        let n = m.count
        var u = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n {
            var s = m[i][i]
            for k in 0..<i { s -= u[k][i] * u[k][i] }
            u[i][i] = s.squareRoot()
            for j in (i + 1)..<n {
                var t = m[i][j]
                for k in 0..<i { t -= u[k][i] * u[k][j] }
                u[i][j] = t / u[i][i]
            }
        }
        return u
    }
}
