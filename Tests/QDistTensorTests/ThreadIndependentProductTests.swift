import XCTest
@testable import QDistTensor

/// Products give the same bits for any OpenBLAS thread count (`BLAS`'s depth split): the shapes
/// are the real model's (tokens 512, hidden 576, intermediate 1536) and depths that OpenBLAS's
/// one-thread and threaded drivers block differently (between GEMM_Q and 2·GEMM_Q, not a multiple
/// of 32), large enough that OpenBLAS really uses every thread it is given.
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

    func testDepthSplitStillComputesTheProduct() {
        // 37 = 32 + 5: the remainder call must add, not overwrite, and honour alpha and beta.
        let a = LinearAlgebraTests.random([9, 37], seed: 5), b = LinearAlgebraTests.random([37, 7], seed: 6)
        var c = LinearAlgebraTests.random([9, 7], seed: 7)
        let c0 = c
        Tensor.gemm(a, b, into: &c, alpha: 0.5, beta: 2)
        let ref = LinearAlgebraTests.referenceProduct(a, b, ta: false, tb: false)
        for i in 0..<63 {
            XCTAssertEqual(Double(c.scalars[i]), 0.5 * ref[i] + 2 * Double(c0.scalars[i]), accuracy: 1e-5)
        }
        var empty = c0
        Tensor.gemm(Tensor.zeros([9, 0]), Tensor.zeros([0, 7]), into: &empty, alpha: 1, beta: 3)
        XCTAssertEqual(empty.scalars, c0.scalars.map { $0 * 3 })
    }
}
