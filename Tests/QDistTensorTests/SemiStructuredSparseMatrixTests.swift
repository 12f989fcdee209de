import XCTest
@testable import QDistTensor

/// The 2:4 compressed matrix: detection, the compressed layout, and its product against a
/// float64 recomputation of x · Wᵀ on SmolLM2's linear shapes.
final class SemiStructuredSparseMatrixTests: XCTestCase {
    private var savedThreads = 1
    override func setUp() { savedThreads = BLASThreads.current }
    override func tearDown() { BLASThreads.set(savedThreads) }

    /// A (rows, columns) matrix in [-1, 1] with `zeros` random positions of every group of four
    /// set to zero (2 = exactly 2:4; 3 and 4 exercise the padded groups).
    static func random24(rows: Int, columns: Int, seed: UInt64, zeros: ClosedRange<Int> = 2...2) -> Tensor {
        var rng = SeededGenerator(state: seed)
        var w = (0..<(rows * columns)).map { _ in rng.nextFloat(in: -1...1) }
        for g in 0..<(rows * columns / 4) {
            let count = Int.random(in: zeros, using: &rng)
            for j in Array(0..<4).shuffled(using: &rng).prefix(count) { w[4 * g + j] = 0 }
        }
        return Tensor(shape: [rows, columns], scalars: w)
    }

    /// x · Wᵀ in float64, and Σ|x|·|w| per element (the scale a Float32 rounding error is relative to).
    static func reference(_ x: Tensor, _ w: Tensor) -> (product: [Double], magnitude: [Double]) {
        let (tokens, rows, columns) = (x.rows, w.rows, w.columns)
        let xs = x.scalars.map(Double.init), ws = w.scalars.map(Double.init)
        var product = [Double](repeating: 0, count: tokens * rows), magnitude = product
        for t in 0..<tokens {
            for r in 0..<rows {
                var s = 0.0, m = 0.0
                for c in 0..<columns {
                    s += xs[t * columns + c] * ws[r * columns + c]
                    m += abs(xs[t * columns + c] * ws[r * columns + c])
                }
                product[t * rows + r] = s
                magnitude[t * rows + r] = m
            }
        }
        return (product, magnitude)
    }

    private func assertMatchesReference(rows: Int, columns: Int, tokens: Int, zeros: ClosedRange<Int> = 2...2,
                                        file: StaticString = #filePath, line: UInt = #line) throws {
        let w = Self.random24(rows: rows, columns: columns, seed: UInt64(rows * 31 + columns), zeros: zeros)
        let x = LinearAlgebraTests.random([tokens, columns], seed: UInt64(tokens + columns))
        let sparse = try XCTUnwrap(SemiStructuredSparseMatrix.detect(w), "\(rows)×\(columns) is 2:4", file: file, line: line)
        let y = sparse.multiply(x, threads: 2)
        XCTAssertEqual(y.shape, [tokens, rows], file: file, line: line)
        let (ref, mag) = Self.reference(x, w)
        var worst = 0.0
        for i in 0..<ref.count { worst = max(worst, abs(Double(y.scalars[i]) - ref[i]) / max(mag[i], 1e-30)) }
        XCTAssertLessThan(worst, 1e-5, "\(rows)×\(columns), \(tokens) tokens: worst error relative to Σ|x·w|",
                          file: file, line: line)
    }

    func testProductMatchesFloat64OnSmolLM2ShapesAndOddRowCounts() throws {
        for (rows, columns) in [(576, 1536), (1536, 576), (192, 576), (37, 576), (33, 1536)] {
            for tokens in [1, 3, 8] { try assertMatchesReference(rows: rows, columns: columns, tokens: tokens) }
        }
    }

    func testProductHandlesRowsShorterThanOneUnrolledStepAndTailGroups() throws {
        // 4 columns (1 group), 12 (3 groups: no full 8-group step), 36 (9: one step + 1 tail), 60 (15).
        for columns in [4, 12, 36, 60] { try assertMatchesReference(rows: 5, columns: columns, tokens: 2) }
    }

    func testGroupsWithThreeOrFourZerosCompressAndMultiplyExactly() throws {
        try assertMatchesReference(rows: 64, columns: 576, tokens: 2, zeros: 2...4)
        let w = Self.random24(rows: 64, columns: 576, seed: 3, zeros: 3...4)
        let sparse = try XCTUnwrap(SemiStructuredSparseMatrix.detect(w))
        XCTAssertEqual(sparse.dense(), w, "the padded groups decompress to the same matrix")
        XCTAssertEqual(sparse.values.count, 64 * 288, "every group keeps exactly two values, zeros included")
        let allZero = try XCTUnwrap(SemiStructuredSparseMatrix.detect(Tensor.zeros([3, 8])))
        XCTAssertEqual(allZero.multiply(Tensor.zeros([0, 8])).shape, [0, 3], "no tokens, no rows")
        XCTAssertEqual(allZero.multiply(LinearAlgebraTests.random([1, 8], seed: 1)).scalars, [0, 0, 0])
    }

    func testDetectRejectsAnyGroupWithOnlyOneZero() {
        var w = Self.random24(rows: 40, columns: 576, seed: 9)
        XCTAssertNotNil(SemiStructuredSparseMatrix.detect(w))
        // The last group of the last row: refill one of its zeros.
        let g = w.count / 4 - 1
        let zero = (0..<4).first { w.scalars[4 * g + $0] == 0 }!
        w.scalars[4 * g + zero] = 0.5
        XCTAssertNil(SemiStructuredSparseMatrix.detect(w))
        XCTAssertNil(SemiStructuredSparseMatrix.detect(LinearAlgebraTests.random([8, 16], seed: 2)), "a dense matrix")
    }

    func testDetectNeedsColumnsInWholeGroupsAndCountsSignedZerosButNotNaN() {
        XCTAssertNil(SemiStructuredSparseMatrix.detect(Tensor.zeros([4, 6])), "6 columns: a truncated group")
        XCTAssertNil(SemiStructuredSparseMatrix.detect(Tensor.zeros([4])), "a vector")
        XCTAssertNotNil(SemiStructuredSparseMatrix.detect(Tensor(shape: [1, 4], scalars: [-0.0, 1, -0.0, 2])))
        XCTAssertNil(SemiStructuredSparseMatrix.detect(Tensor(shape: [1, 4], scalars: [.nan, 1, 0, 2])))
    }

    func testProductIsBitIdenticalForOneTwoAndThreeThreads() throws {
        for (rows, columns) in [(1536, 576), (576, 1536), (37, 576)] {
            let sparse = try XCTUnwrap(SemiStructuredSparseMatrix.detect(Self.random24(rows: rows, columns: columns, seed: 5)))
            let x = LinearAlgebraTests.random([4, columns], seed: 6)
            let bits = [1, 2, 3].map { threads in sparse.multiply(x, threads: threads).scalars.map(\.bitPattern) }
            XCTAssertEqual(bits[0], bits[1], "\(rows)×\(columns): 1 vs 2 threads")
            XCTAssertEqual(bits[0], bits[2], "\(rows)×\(columns): 1 vs 3 threads")
            // The default follows the OpenBLAS count.
            BLASThreads.set(2)
            XCTAssertEqual(sparse.multiply(x).scalars.map(\.bitPattern), bits[0], "\(rows)×\(columns): default threads")
        }
    }
}
