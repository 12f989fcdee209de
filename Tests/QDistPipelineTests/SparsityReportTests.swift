import QDistTensor
import XCTest
@testable import QDistPipeline

/// `qdist inspect --sparsity`'s measure: exact zeros, and N:M read as llm-compressor checks it
/// (at least N zeros in every group of M consecutive inputs of each row, groups from input 0).
final class SparsityReportTests: XCTestCase {
    func testTwoOfFourNeedsTwoZerosInEveryGroupOfFourOfEveryRow() {
        var w = (0..<48).map { Float($0 + 1) }  // 2 rows × 24 inputs, no zeros
        for i in stride(from: 0, to: 48, by: 4) { w[i] = 0; w[i + 2] = 0 }
        w[5] = 0  // a third zero in one group is fine
        let two = SparsityReport.measure(Tensor(shape: [2, 24], scalars: w), name: "a")
        XCTAssertEqual(two.zeros, 25)
        XCTAssertEqual(two.structure, "2:4")
        XCTAssertEqual(two.sparsity, 25.0 / 48.0, accuracy: 1e-12)
        // One group with a single zero breaks 2:4; every group of 8 still holds ≥ 3 zeros.
        w[42] = 1
        let broken = SparsityReport.measure(Tensor(shape: [2, 24], scalars: w), name: "b")
        XCTAssertEqual(broken.zerosPerFour, 1)
        XCTAssertEqual(broken.zerosPerEight, 3)
        XCTAssertNil(broken.structure)
    }

    func testFourOfEightIsReportedWhenTheZerosAreUnevenWithinEight() {
        // Per row of 16: zeros at 0,1,2,3 and 12,13,14,15 — every 8 holds 4, but 4..7 holds none.
        var w = (0..<16).map { Float($0 + 1) }
        for i in [0, 1, 2, 3, 12, 13, 14, 15] { w[i] = 0 }
        let r = SparsityReport.measure(Tensor(shape: [1, 16], scalars: w), name: "c")
        XCTAssertEqual(r.zerosPerFour, 0)
        XCTAssertEqual(r.structure, "4:8")
    }

    func testRowsThatGroupsDoNotTileFollowNoPattern() {
        let w = Tensor(shape: [2, 6], scalars: [Float](repeating: 0, count: 12))
        let r = SparsityReport.measure(w, name: "d")
        XCTAssertEqual(r.zeros, 12)
        XCTAssertNil(r.structure, "6 inputs are not whole groups of 4")
        XCTAssertEqual(SparsityReport(linears: [r, SparsityReport.measure(Tensor(shape: [1, 4], scalars: [1, 2, 3, 4]), name: "e")]).overall,
                       12.0 / 16.0)
    }
}
