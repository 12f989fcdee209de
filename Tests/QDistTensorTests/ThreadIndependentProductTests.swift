import XCTest
@testable import QDistTensor

/// Products give the same bits for any thread count (`BLAS`'s fixed tiles, OpenBLAS on one
/// thread): the shapes are the real model's (tokens 512, hidden 576, intermediate 1536), with
/// depths OpenBLAS blocks in different ways, large enough to be cut into many tiles; and the
/// tiled products (edges, strides, alpha and beta, the Gram's upper triangle) equal a float64
/// product.
final class ThreadIndependentProductTests: XCTestCase {
    private var savedThreads = 1
    override func setUp() { savedThreads = BLASThreads.current }
    override func tearDown() { BLASThreads.set(savedThreads) }

    static let depths = [64, 500, 512, 576, 700, 777, 1000, 1536]

    private func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

    /// How many elements differ in any bit (0 is the claim; the count makes a failure readable).
    private func differing(_ a: [UInt32], _ b: [UInt32]) -> Int { zip(a, b).filter { $0 != $1 }.count + abs(a.count - b.count) }

    func testMatmulIsBitIdenticalForOneTwoAndThreeThreads() {
        for k in Self.depths {
            for (ta, tb) in [(false, true), (false, false), (true, false)] {
                let (m, n) = (512, 576)
                let a = LinearAlgebraTests.random(ta ? [k, m] : [m, k], seed: UInt64(k))
                let b = LinearAlgebraTests.random(tb ? [n, k] : [k, n], seed: UInt64(k + 1))
                var results: [[UInt32]] = []
                for threads in [1, 2, 3] {
                    BLASThreads.set(threads)
                    results.append(bits(Tensor.matmul(a, b, transposeA: ta, transposeB: tb)))
                }
                XCTAssertEqual(differing(results[0], results[1]), 0, "k=\(k) ta=\(ta) tb=\(tb): 1 vs 2 threads")
                XCTAssertEqual(differing(results[0], results[2]), 0, "k=\(k) ta=\(ta) tb=\(tb): 1 vs 3 threads")
            }
        }
    }

    func testGramIsBitIdenticalForOneAndTwoThreads() {
        for k in [500, 512, 700, 1000] {
            let x = LinearAlgebraTests.random([k, 576], seed: UInt64(k))
            var results: [[UInt32]] = []
            for threads in [1, 2] {
                BLASThreads.set(threads)
                var g = Tensor.zeros([576, 576])
                Tensor.gramAccumulate(x, into: &g, alpha: 2, beta: 0)
                results.append(bits(g))
            }
            XCTAssertEqual(differing(results[0], results[1]), 0, "gram with depth \(k)")
        }
    }

    func testTiledProductsEqualAFloat64ProductAtTheEdges() {
        // Several row and column tiles with partial edges, decoding's one row, alpha and beta.
        for (m, n, k) in [(300, 2100, 37), (1, 700, 576), (130, 129, 512), (9, 7, 37)] {
            for (ta, tb) in [(false, true), (false, false), (true, false)] {
                let a = LinearAlgebraTests.random(ta ? [k, m] : [m, k], seed: 5), b = LinearAlgebraTests.random(tb ? [n, k] : [k, n], seed: 6)
                var c = LinearAlgebraTests.random([m, n], seed: 7)
                let c0 = c
                Tensor.gemm(a, b, into: &c, transposeA: ta, transposeB: tb, alpha: 0.5, beta: 2)
                let ref = LinearAlgebraTests.referenceProduct(a, b, ta: ta, tb: tb)
                var worst = 0.0
                for i in 0..<(m * n) { worst = max(worst, abs(Double(c.scalars[i]) - (0.5 * ref[i] + 2 * Double(c0.scalars[i])))) }
                XCTAssertLessThan(worst, 1e-4, "\(m)×\(n)×\(k) ta=\(ta) tb=\(tb)")
            }
        }
        var empty = LinearAlgebraTests.random([9, 7], seed: 7)
        let c0 = empty
        Tensor.gemm(Tensor.zeros([9, 0]), Tensor.zeros([0, 7]), into: &empty, alpha: 1, beta: 3)
        XCTAssertEqual(empty.scalars, c0.scalars.map { $0 * 3 })
    }

    func testTiledGramWritesTheUpperTriangleOnly() {
        // 300 columns: three diagonal blocks of 128 (the last partial) and the blocks above them.
        let (k, n) = (200, 300)
        let x = LinearAlgebraTests.random([k, n], seed: 3)
        var g = Tensor(repeating: 7, shape: [n, n])
        x.withUnsafeBufferPointer { a in
            g.withUnsafeMutableBufferPointer { c in
                BLAS.ssyrkUpperTransposed(n: n, k: k, alpha: 2, a: a.baseAddress!, lda: n, beta: 0.5, c: c.baseAddress!, ldc: n)
            }
        }
        var worst = 0.0
        for i in 0..<n {
            for j in 0..<n {
                if j < i { XCTAssertEqual(g.scalars[i * n + j], 7, "lower (\(i), \(j)) touched"); continue }
                var dot = 0.0
                for r in 0..<k { dot += Double(x.scalars[r * n + i]) * Double(x.scalars[r * n + j]) }
                worst = max(worst, abs(Double(g.scalars[i * n + j]) - (2 * dot + 3.5)))
            }
        }
        XCTAssertLessThan(worst, 1e-3)
    }
}
