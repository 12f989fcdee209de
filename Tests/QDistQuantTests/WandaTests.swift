import QDistTensor
import XCTest
@testable import QDistQuant

/// Wanda against a Float64 statement of FORMATS.md §12.5: score |W|·‖x_j‖₂ per row, ⌊in·p⌋ per
/// row unstructured (ties to the lower column), N smallest per absolute group of M, no update.
final class WandaTests: XCTestCase {
    func reference(_ w: [Float], rows: Int, cols: Int, squares: [Float], sparsity: Double, n: Int, m: Int) -> [Bool] {
        var pruned = [Bool](repeating: false, count: rows * cols)
        for r in 0..<rows {
            let score = { (j: Int) in abs(Double(w[r * cols + j])) * Double(squares[j]).squareRoot() }
            let groups = m > 0 ? stride(from: 0, to: cols, by: m).map { $0..<min($0 + m, cols) } : [0..<cols]
            for g in groups {
                let k = m > 0 ? n : Int(Double(cols) * sparsity)
                for j in g.sorted(by: { (score($0), $0) < (score($1), $1) }).prefix(k) { pruned[r * cols + j] = true }
            }
        }
        return pruned
    }

    func testMasksMatchTheFloat64ReferenceAndOnlyPrunedWeightsChange() throws {
        var rng = SeededGenerator(state: 5)
        let (rows, cols) = (9, 40)
        let w = (0..<(rows * cols)).map { _ in Float.random(in: -1...1, using: &rng) }
        let squares = (0..<cols).map { _ in Float.random(in: 0.01...4, using: &rng) }
        for (p, n, m) in [(0.5, 0, 0), (0.3, 0, 0), (0.0, 2, 4), (0.0, 4, 8), (0.0, 1, 4)] {
            let got = try Wanda.prune(Tensor(shape: [rows, cols], scalars: w), inputSquares: squares, sparsity: p, n: n, m: m)
            XCTAssertEqual(got.pruned, reference(w, rows: rows, cols: cols, squares: squares, sparsity: p, n: n, m: m), "p \(p) \(n):\(m)")
            for i in w.indices { XCTAssertEqual(got.weight.scalars[i].bitPattern, got.pruned[i] ? 0 : w[i].bitPattern) }
            if m == 0 {
                for r in 0..<rows { XCTAssertEqual((0..<cols).filter { got.pruned[r * cols + $0] }.count, Int(Double(cols) * p)) }
            }
        }
    }

    func testTiesGoToTheLowerColumnAndTheInputNormWeighsTheScore() throws {
        // Equal |W| in a row: the input norm decides; equal scores: the lower column goes first.
        let w = Tensor(shape: [1, 4], scalars: [1, -1, 1, 1])
        let byNorm = try Wanda.prune(w, inputSquares: [4, 1, 9, 1], sparsity: 0.5)
        XCTAssertEqual(byNorm.pruned, [false, true, false, true])
        let tied = try Wanda.prune(w, inputSquares: [1, 1, 1, 1], sparsity: 0.5)
        XCTAssertEqual(tied.pruned, [true, true, false, false])
        XCTAssertThrowsError(try Wanda.prune(Tensor(shape: [1, 6], scalars: [Float](repeating: 1, count: 6)), inputSquares: [Float](repeating: 1, count: 6),
                                             sparsity: 0, n: 3, m: 4), "a last group of 2 cannot lose 3")
    }
}
