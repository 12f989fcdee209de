import XCTest
@testable import QDistTensor

/// BLAS/LAPACK-backed products and factorizations checked against float64 re-computations.
final class LinearAlgebraTests: XCTestCase {
    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SeededGenerator(state: seed)
        return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in rng.nextFloat(in: -1...1) })
    }

    /// op(a)·op(b) in float64 with plain loops: the independent reference.
    static func referenceProduct(_ a: Tensor, _ b: Tensor, ta: Bool, tb: Bool) -> [Double] {
        let m = ta ? a.shape[1] : a.shape[0], k = ta ? a.shape[0] : a.shape[1]
        let n = tb ? b.shape[0] : b.shape[1]
        var out = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let x = Double(ta ? a[p, i] : a[i, p]), y = Double(tb ? b[j, p] : b[p, j])
                s += x * y
            }
            out[i * n + j] = s
        } }
        return out
    }

    /// A well-conditioned SPD matrix: XᵀX/rows + I.
    static func spd(_ n: Int, seed: UInt64) -> Tensor {
        let x = random([3 * n, n], seed: seed)
        var h = Tensor.identity(n)
        Tensor.gramAccumulate(x, into: &h, alpha: 1 / Float(3 * n), beta: 1)
        return h
    }

    func testMatmulMatchesFloat64ReferenceForAllTransposeCombinations() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (m, k, n) = (37, 53, 29)
            let a = Self.random(ta ? [k, m] : [m, k], seed: 1)
            let b = Self.random(tb ? [n, k] : [k, n], seed: 2)
            let c = Tensor.matmul(a, b, transposeA: ta, transposeB: tb)
            XCTAssertEqual(c.shape, [m, n])
            let ref = Self.referenceProduct(a, b, ta: ta, tb: tb)
            for i in 0..<ref.count { XCTAssertEqual(Double(c.scalars[i]), ref[i], accuracy: 1e-5, "ta=\(ta) tb=\(tb) at \(i)") }
        }
    }

    func testGemmAccumulatesWithAlphaAndBeta() {
        let a = Self.random([8, 5], seed: 3), b = Self.random([5, 6], seed: 4)
        var c = Self.random([8, 6], seed: 5)
        let before = c
        Tensor.gemm(a, b, into: &c, alpha: 0.5, beta: 2)
        let ref = Self.referenceProduct(a, b, ta: false, tb: false)
        for i in 0..<ref.count { XCTAssertEqual(Double(c.scalars[i]), 0.5 * ref[i] + 2 * Double(before.scalars[i]), accuracy: 1e-5) }
    }

    func testGramAccumulateEqualsXTransposeXInBothTriangles() {
        let x = Self.random([40, 17], seed: 6)
        var h = Tensor.zeros([17, 17])
        Tensor.gramAccumulate(x, into: &h, alpha: 1, beta: 0)
        Tensor.gramAccumulate(x, into: &h, alpha: 1, beta: 1)  // twice: accumulation works
        let ref = Self.referenceProduct(x, x, ta: true, tb: false)
        for i in 0..<ref.count { XCTAssertEqual(Double(h.scalars[i]), 2 * ref[i], accuracy: 1e-4) }
    }

    func testCholeskyFactorsReconstructTheMatrix() throws {
        let a = Self.spd(24, seed: 7)
        let l = try a.cholesky(.lower)
        let u = try a.cholesky(.upper)
        let llt = Self.referenceProduct(l, l, ta: false, tb: true)
        let utu = Self.referenceProduct(u, u, ta: true, tb: false)
        for i in 0..<a.count {
            XCTAssertEqual(llt[i], Double(a.scalars[i]), accuracy: 1e-5)
            XCTAssertEqual(utu[i], Double(a.scalars[i]), accuracy: 1e-5)
        }
        for i in 0..<24 { for j in 0..<24 where j > i { XCTAssertEqual(l[i, j], 0); XCTAssertEqual(u[j, i], 0) } }
    }

    func testCholeskyInverseTimesMatrixIsIdentity() throws {
        let a = Self.spd(31, seed: 8)
        let inv = try a.choleskyInverse()
        let prod = Self.referenceProduct(a, inv, ta: false, tb: false)
        for i in 0..<31 { for j in 0..<31 {
            XCTAssertEqual(prod[i * 31 + j], i == j ? 1 : 0, accuracy: 1e-4)
            XCTAssertEqual(inv[i, j], inv[j, i], "inverse must be symmetric")
        } }
    }

    func testTriangularInverseOfUpperFactor() throws {
        let u = try Self.spd(19, seed: 9).cholesky(.upper)
        let inv = try u.triangularInverse(.upper)
        let prod = Self.referenceProduct(u, inv, ta: false, tb: false)
        for i in 0..<19 { for j in 0..<19 { XCTAssertEqual(prod[i * 19 + j], i == j ? 1 : 0, accuracy: 1e-4) } }
    }

    func testCholeskyOfIndefiniteMatrixThrowsNotPositiveDefinite() {
        var a = Tensor.identity(4)
        a[2, 2] = -1
        XCTAssertThrowsError(try a.cholesky()) { error in
            XCTAssertEqual(error as? LinearAlgebraError, .notPositiveDefinite(minor: 3))
        }
    }

    func testSingularTriangularMatrixThrows() {
        var a = Tensor.identity(3)
        a[1, 1] = 0
        XCTAssertThrowsError(try a.triangularInverse(.lower)) { error in
            XCTAssertEqual(error as? LinearAlgebraError, .singular(index: 2))
        }
    }

    func testTransposeOfNonSquareMatrix() {
        let a = Self.random([70, 45], seed: 10)
        let t = a.transposed()
        XCTAssertEqual(t.shape, [45, 70])
        for i in 0..<70 { for j in 0..<45 { XCTAssertEqual(t[j, i], a[i, j]) } }
    }

    func testBLASThreadRuleGivesOneThreadPerRankWhenOversubscribed() {
        XCTAssertEqual(BLASThreads.recommended(ranksOnNode: 4, cores: 2, environment: [:]).threads, 1)
        XCTAssertEqual(BLASThreads.recommended(ranksOnNode: 2, cores: 16, environment: [:]).threads, 8)
        let fixed = BLASThreads.recommended(ranksOnNode: 4, cores: 2, environment: ["OPENBLAS_NUM_THREADS": "3"])
        XCTAssertEqual(fixed.threads, 3)
        XCTAssertTrue(fixed.fromEnvironment)
    }
}
