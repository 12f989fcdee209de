import XCTest
@testable import QDistTensor

/// The unstructured (≥50% zeros, any pattern) compressed matrix: detection, layout, and its
/// product against a float64 recomputation of x · Wᵀ.
final class UnstructuredSparseMatrixTests: XCTestCase {
    /// A (rows, columns) matrix in [-1, 1] with each entry zero with probability `sparsity`.
    static func random(rows: Int, columns: Int, sparsity: Float, seed: UInt64) -> Tensor {
        var rng = SeededGenerator(state: seed)
        return Tensor(shape: [rows, columns], scalars: (0..<(rows * columns)).map { _ in
            let v = rng.nextFloat(in: -1...1)
            return rng.nextUniform() < sparsity ? 0 : v
        })
    }

    private func assertMatchesReference(_ w: Tensor, tokens: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let sparse = try XCTUnwrap(UnstructuredSparseMatrix.detect(w), "\(w.shape) is half zeros", file: file, line: line)
        XCTAssertEqual(sparse.dense(), w, "round trip", file: file, line: line)
        let x = LinearAlgebraTests.random([tokens, w.columns], seed: UInt64(tokens + w.columns))
        let y = sparse.multiply(x, threads: 2)
        XCTAssertEqual(y.shape, [tokens, w.rows], file: file, line: line)
        let (ref, mag) = SemiStructuredSparseMatrixTests.reference(x, w)
        var worst = 0.0
        for i in 0..<ref.count { worst = max(worst, abs(Double(y.scalars[i]) - ref[i]) / max(mag[i], 1e-30)) }
        XCTAssertLessThan(worst, 1e-5, "\(w.shape), \(tokens) tokens: worst error relative to Σ|x·w|", file: file, line: line)
    }

    func testProductMatchesFloat64OnSmolLM2ShapesAtSeveralSparsities() throws {
        for (rows, columns) in [(576, 1536), (1536, 576), (37, 576)] {
            for sparsity: Float in [0.55, 0.75, 0.95] {
                try assertMatchesReference(Self.random(rows: rows, columns: columns, sparsity: sparsity, seed: UInt64(rows)), tokens: 1)
            }
        }
        try assertMatchesReference(Self.random(rows: 33, columns: 576, sparsity: 0.6, seed: 1), tokens: 3)
    }

    func testRowsWithFullGroupsEmptyRowsAndTailGroups() throws {
        // Row 0 dense in its first half, row 1 all zeros, row 2 a single entry at the last column;
        // 24 columns = 6 groups: no full 8-group step, all tail.
        var s = [Float](repeating: 0, count: 3 * 24)
        for c in 0..<12 { s[c] = Float(c + 1) / 8 }
        s[3 * 24 - 1] = -2
        try assertMatchesReference(Tensor(shape: [3, 24], scalars: s), tokens: 2)
        // 72 columns = 18 groups: two full steps and a tail of two, half of every row nonzero in a block.
        var t = [Float](repeating: 0, count: 4 * 72)
        for r in 0..<4 { for c in (r * 9)..<(r * 9 + 36) { t[r * 72 + c] = Float(c - 30) / 16 } }
        try assertMatchesReference(Tensor(shape: [4, 72], scalars: t), tokens: 1)
    }

    func testDetectNeedsHalfZerosFiniteValuesAndColumnsInWholeBytes() {
        XCTAssertNil(UnstructuredSparseMatrix.detect(Self.random(rows: 16, columns: 64, sparsity: 0.3, seed: 2)), "30% zeros")
        XCTAssertNotNil(UnstructuredSparseMatrix.detect(Self.random(rows: 16, columns: 64, sparsity: 0.6, seed: 2)))
        var w = Tensor.zeros([2, 8])
        XCTAssertNotNil(UnstructuredSparseMatrix.detect(w))
        w.scalars[3] = .infinity
        XCTAssertNil(UnstructuredSparseMatrix.detect(w), "0 · ∞ in a padded lane would be NaN")
        XCTAssertNil(UnstructuredSparseMatrix.detect(Tensor.zeros([2, 12])), "12 columns: a half-filled mask byte")
    }

    func testProductIsBitIdenticalForOneTwoAndThreeThreads() throws {
        let sparse = try XCTUnwrap(UnstructuredSparseMatrix.detect(Self.random(rows: 1536, columns: 576, sparsity: 0.6, seed: 4)))
        let x = LinearAlgebraTests.random([2, 576], seed: 6)
        let bits = [1, 2, 3].map { sparse.multiply(x, threads: $0).scalars.map(\.bitPattern) }
        XCTAssertEqual(bits[0], bits[1], "1 vs 2 threads")
        XCTAssertEqual(bits[0], bits[2], "1 vs 3 threads")
    }
}
