import QDistTensor
import XCTest
@testable import QDistQuant

/// SparseGPT against a Float64 statement of FORMATS.md §12.5 (llm-compressor 0.14 semantics):
/// H = 2XXᵀ/n with dead columns zeroed, damping λ·mean(diag H), U = upper Cholesky factor of
/// H⁻¹, the score W²/U_jj², the unstructured mask fixed at each block's start over the whole
/// slab, N:M groups chosen with the weights as already updated, and the OBS update — written
/// unblocked here (equal to the blocked one in exact arithmetic). Random continuous data, so no
/// ties: masks must agree exactly and weights to 1e-5 of the largest.
final class SparseGPTTests: XCTestCase {
    /// Float64 Cholesky: lower L with L Lᵀ = A.
    func cholesky(_ a: [Double], _ n: Int) -> [Double] {
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var s = a[i * n + j]
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                l[i * n + j] = i == j ? s.squareRoot() : s / l[j * n + j]
            }
        }
        return l
    }

    /// Inverse of an SPD matrix through its Cholesky factor.
    func inverse(_ a: [Double], _ n: Int) -> [Double] {
        let l = cholesky(a, n)
        var linv = [Double](repeating: 0, count: n * n)  // L⁻¹, lower
        for i in 0..<n {
            linv[i * n + i] = 1 / l[i * n + i]
            for j in 0..<i {
                var s = 0.0
                for k in j..<i { s -= l[i * n + k] * linv[k * n + j] }
                linv[i * n + j] = s / l[i * n + i]
            }
        }
        var out = [Double](repeating: 0, count: n * n)  // L⁻ᵀ L⁻¹
        for i in 0..<n { for j in 0..<n { var s = 0.0; for k in max(i, j)..<n { s += linv[k * n + i] * linv[k * n + j] }; out[i * n + j] = s } }
        return out
    }

    /// The reference: returns the pruned weight and mask.
    func reference(_ w0: [Float], rows: Int, cols: Int, x: [Float], tokens: Int, settings s: SparseGPT.Settings) -> ([Double], [Bool]) {
        var h = [Double](repeating: 0, count: cols * cols)
        for i in 0..<cols { for j in 0..<cols { var t = 0.0; for k in 0..<tokens { t += Double(x[i * tokens + k]) * Double(x[j * tokens + k]) }; h[i * cols + j] = 2 * t / Double(tokens) } }
        var w = w0.map(Double.init)
        var pruned = [Bool](repeating: false, count: rows * cols)
        for j in 0..<cols where h[j * cols + j] == 0 { h[j * cols + j] = 1; for r in 0..<rows { w[r * cols + j] = 0; pruned[r * cols + j] = true } }
        // preserve_sparsity_mask: existing zeros score 0 and later blocks' updates skip them.
        let kept = w.map { s.preserveMask && $0 == 0 }
        let mean = (0..<cols).reduce(0.0) { $0 + h[$1 * cols + $1] } / Double(cols)
        for j in 0..<cols { h[j * cols + j] += s.dampening * mean }
        let l2 = cholesky(inverse(h, cols), cols)
        func u(_ i: Int, _ j: Int) -> Double { l2[j * cols + i] }  // U = L2ᵀ
        func score(_ r: Int, _ j: Int) -> Double { kept[r * cols + j] ? 0 : w[r * cols + j] * w[r * cols + j] / (u(j, j) * u(j, j)) }
        var mask = [Bool](repeating: false, count: rows * cols)
        for a in stride(from: 0, to: cols, by: s.blockSize) {
            let b = min(a + s.blockSize, cols)
            let before = (0..<rows).reduce(0) { n, r in n + (a..<b).filter { kept[r * cols + $0] }.count }
            if s.m == 0 && s.preserveMask && Int(Double(rows * (b - a)) * s.sparsity) <= before {
                for r in 0..<rows { for j in a..<b where kept[r * cols + j] { mask[r * cols + j] = true } }
            } else if s.m == 0 {
                let slab = (0..<rows).flatMap { r in (a..<b).map { score(r, $0) } }.sorted()
                let t = slab[Int(Double(slab.count) * s.sparsity)]
                for r in 0..<rows { for j in a..<b where score(r, j) <= t { mask[r * cols + j] = true } }
            }
            for j in a..<b {
                if s.m > 0, (j - a) % s.m == 0 {
                    for r in 0..<rows {
                        for k in (j..<min(j + s.m, b)).sorted(by: { (score(r, $0), $0) < (score(r, $1), $1) }).prefix(s.n) { mask[r * cols + k] = true }
                    }
                }
                for r in 0..<rows {
                    let q = mask[r * cols + j] ? 0 : w[r * cols + j]
                    let e = (w[r * cols + j] - q) / u(j, j)
                    for k in j..<cols where !(k >= b && kept[r * cols + k]) { w[r * cols + k] -= e * u(j, k) }
                    w[r * cols + j] = q
                }
            }
        }
        for i in mask.indices where mask[i] { pruned[i] = true }
        return (w, pruned)
    }

    func data(rows: Int, cols: Int, tokens: Int, seed: UInt64, deadColumn: Int? = nil) -> (Tensor, Tensor, [Float]) {
        var rng = SeededGenerator(state: seed)
        let w = (0..<(rows * cols)).map { _ in Float.random(in: -1...1, using: &rng) }
        var x = (0..<(cols * tokens)).map { i in Float.random(in: -1...1, using: &rng) * (1 + Float(i / tokens % 5)) }
        if let d = deadColumn { for k in 0..<tokens { x[d * tokens + k] = 0 } }
        var h = [Float](repeating: 0, count: cols * cols)
        for i in 0..<cols { for j in 0..<cols { var t = 0.0; for k in 0..<tokens { t += Double(x[i * tokens + k]) * Double(x[j * tokens + k]) }; h[i * cols + j] = Float(2 * t / Double(tokens)) } }
        return (Tensor(shape: [rows, cols], scalars: w), Tensor(shape: [cols, cols], scalars: h), x)
    }

    func check(_ settings: SparseGPT.Settings, deadColumn: Int? = nil, zeroing: (Int) -> Bool = { _ in false },
               file: StaticString = #filePath, line: UInt = #line) throws -> SparseGPT.Result {
        let (rows, cols, tokens) = (12, 64, 160)
        var (w, h, x) = data(rows: rows, cols: cols, tokens: tokens, seed: 11, deadColumn: deadColumn)
        for i in 0..<w.count where zeroing(i) { w.scalars[i] = 0 }
        let got = try SparseGPT.prune(w, hessian: h, settings: settings)
        let (want, mask) = reference(w.scalars, rows: rows, cols: cols, x: x, tokens: tokens, settings: settings)
        XCTAssertEqual(got.pruned, mask, "masks", file: file, line: line)
        let scale = want.map(abs).max()!
        let worst = zip(got.weight.scalars, want).map { abs(Double($0) - $1) }.max()!
        XCTAssertLessThan(worst / scale, 1e-5, "weights", file: file, line: line)
        XCTAssertTrue(zip(got.weight.scalars, got.pruned).allSatisfy { !$1 || $0.bitPattern == 0 }, "pruned weights are +0.0", file: file, line: line)
        return got
    }

    func testUnstructuredPrunesTheSlabThresholdAtEachBlockStartLikeTheFloat64Reference() throws {
        let r = try check(.init(sparsity: 0.5, blockSize: 16))
        // ⌊p · count⌋ + 1 per 12 × 16 slab (no ties), unevenly over the rows.
        for a in stride(from: 0, to: 64, by: 16) {
            let count = (0..<12).reduce(0) { n, row in n + (a..<a + 16).filter { r.pruned[row * 64 + $0] }.count }
            XCTAssertEqual(count, 96 + 1)
        }
        XCTAssertFalse(r.usedIdentityFactor)
        XCTAssertGreaterThan(r.loss, 0)
    }

    func testTwoOfFourAndFourOfEightPruneNPerGroupWithUpdatedWeights() throws {
        for (n, m) in [(2, 4), (4, 8), (1, 4)] {
            let r = try check(.init(n: n, m: m, blockSize: 16))
            for row in 0..<12 {
                for g in stride(from: 0, to: 64, by: m) {
                    XCTAssertEqual((g..<g + m).filter { r.pruned[row * 64 + $0] }.count, n, "\(n):\(m) row \(row) group \(g)")
                }
            }
        }
    }

    func testADeadInputColumnIsZeroedAndCountsAsPruned() throws {
        let r = try check(.init(sparsity: 0.25, blockSize: 32), deadColumn: 5)
        XCTAssertEqual(r.deadColumns, 1)
        XCTAssertTrue((0..<12).allSatisfy { r.pruned[$0 * 64 + 5] && r.weight.scalars[$0 * 64 + 5] == 0 })
    }

    /// `preserve_sparsity_mask`: a weight already pruned in part keeps every old zero (it scores
    /// 0, so it is chosen first, and no later block's update moves it) and gains new ones up to
    /// the target; a block already sparse enough keeps its old mask; a weight sparser than the
    /// target is refused, as llm-compressor raises.
    func testPreservingTheMaskKeepsOldZerosAndMatchesTheReference() throws {
        // Unstructured 50 % over a weight with a zero at every 5th element; one 16-column block
        // (columns 48…63) already 62.5 % zero, so its old mask stands.
        let cols = 64
        let r = try check(.init(sparsity: 0.5, blockSize: 16, preserveMask: true), zeroing: { $0 % 5 == 0 || ($0 % cols >= 48 && $0 % 8 < 5) })
        for i in 0..<r.pruned.count where i % 5 == 0 { XCTAssertTrue(r.pruned[i] && r.weight.scalars[i] == 0, "old zero \(i) kept") }
        // 2:4 over a weight with one zero in every group of four (at the group's third input).
        let nm = try check(.init(n: 2, m: 4, blockSize: 16, preserveMask: true), zeroing: { $0 % 4 == 2 })
        for i in 0..<nm.pruned.count where i % 4 == 2 { XCTAssertTrue(nm.pruned[i], "old zero \(i) chosen first") }
        let (w, h, _) = data(rows: 4, cols: 16, tokens: 40, seed: 3)
        var sparse = w
        for i in 0..<40 { sparse.scalars[i] = 0 }
        XCTAssertThrowsError(try SparseGPT.prune(sparse, hessian: h, settings: .init(sparsity: 0.5, blockSize: 16, preserveMask: true))) {
            XCTAssertTrue("\($0)".contains("already"), "\($0)")
        }
    }

    func testSettingsTheReferenceCannotRunAreRefused() {
        let (w, h, _) = data(rows: 4, cols: 16, tokens: 40, seed: 3)
        for s in [SparseGPT.Settings(n: 2, m: 4, blockSize: 6), .init(sparsity: 1), .init(n: 5, m: 4, blockSize: 8)] {
            XCTAssertThrowsError(try SparseGPT.prune(w, hessian: h, settings: s), "\(s)")
        }
    }
}
