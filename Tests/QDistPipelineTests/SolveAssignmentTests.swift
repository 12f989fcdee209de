@testable import QDistPipeline
import XCTest

/// Owners by solve cost: every row solved exactly once, loads balanced, rows split only when
/// ranks outnumber linears, and the same answer on every rank.
final class SolveAssignmentTests: XCTestCase {
    let block: [SolveAssignment.Linear] = [
        .init(name: "q", rows: 576, columns: 576), .init(name: "k", rows: 192, columns: 576),
        .init(name: "v", rows: 192, columns: 576), .init(name: "o", rows: 576, columns: 576),
        .init(name: "gate", rows: 1536, columns: 576), .init(name: "up", rows: 1536, columns: 576),
        .init(name: "down", rows: 576, columns: 1536),
    ]

    func assertEveryRowOnce(_ a: SolveAssignment, _ linears: [SolveAssignment.Linear], file: StaticString = #filePath, line: UInt = #line) {
        for l in linears {
            let pieces = a.items.filter { $0.name == l.name }.map(\.rows).sorted { $0.lowerBound < $1.lowerBound }
            XCTAssertEqual(pieces.first?.lowerBound, 0, l.name, file: file, line: line)
            XCTAssertEqual(pieces.last?.upperBound, l.rows, l.name, file: file, line: line)
            for (x, y) in zip(pieces, pieces.dropFirst()) { XCTAssertEqual(x.upperBound, y.lowerBound, l.name, file: file, line: line) }
        }
    }

    func testOneRankSolvesEverythingWhole() {
        let a = SolveAssignment(linears: block, ranks: 1)
        XCTAssertEqual(a.items.count, 7)
        XCTAssertTrue(a.items.allSatisfy { $0.owner == 0 })
    }

    func testFewerRanksThanLinearsBalancesWholeLinears() {
        for ranks in 2...7 {
            let a = SolveAssignment(linears: block, ranks: ranks)
            XCTAssertEqual(a.items.count, 7, "no splits while linears ≥ ranks")
            assertEveryRowOnce(a, block)
            let loads = a.loads, biggest = a.items.map(\.cost).max()!
            // LPT: the busiest rank exceeds the ideal share by at most one item.
            XCTAssertLessThanOrEqual(loads.max()!, loads.reduce(0, +) / Double(ranks) + biggest, "\(ranks) ranks")
            XCTAssertTrue(Set(a.items.map(\.owner)).count == ranks, "every rank gets work at \(ranks) ranks")
        }
    }

    func testMoreRanksThanLinearsSplitsRowsAndKeepsEveryRankBusy() {
        for ranks in [8, 16, 64] {
            let a = SolveAssignment(linears: block, ranks: ranks)
            assertEveryRowOnce(a, block)
            XCTAssertEqual(Set(a.items.map(\.owner)).count, ranks, "\(ranks) ranks all busy")
            XCTAssertTrue(a.items.allSatisfy { $0.rows.count >= SolveAssignment.minimumRowsPerItem })
            // Split linears are written by their lowest owner.
            XCTAssertEqual(a.writer(of: "gate"), a.owners(of: "gate").first)
        }
    }

    func testASingleSmallLinearIsNotSplitBelowTheMinimum() {
        let a = SolveAssignment(linears: [.init(name: "o", rows: 40, columns: 64)], ranks: 8)
        XCTAssertEqual(a.items.count, 2, "40 rows split once into 20 + 20, not further")
        assertEveryRowOnce(a, [.init(name: "o", rows: 40, columns: 64)])
    }

    func testALinearWithOnePerTensorScaleIsNeverSplitEvenWhenRanksIdle() {
        let a = SolveAssignment(linears: [.init(name: "o", rows: 576, columns: 576, splittable: false),
                                          .init(name: "d", rows: 576, columns: 1536)], ranks: 4)
        XCTAssertEqual(a.items.filter { $0.name == "o" }.map(\.rows), [0..<576], "one item holds every row")
        XCTAssertGreaterThan(a.items.filter { $0.name == "d" }.count, 1, "a splittable linear still is")
    }

    /// Without a Hessian the work is a pass over the elements: a SmolLM2 block's seven linears
    /// split evenly over two ranks, where GPTQ's cubic model would put down_proj alone on one.
    func testElementwiseCostBalancesABlockOfHessianFreeSolvesByElements() {
        let block: [SolveAssignment.Linear] = [("q", 576, 576), ("k", 192, 576), ("v", 192, 576), ("o", 576, 576),
                                               ("gate", 1536, 576), ("up", 1536, 576), ("down", 576, 1536)].map {
            .init(name: $0.0, rows: $0.1, columns: $0.2, splittable: false)
        }
        let elementwise = SolveAssignment(linears: block, ranks: 2, costModel: .elementwise).loads
        XCTAssertEqual(elementwise[0], elementwise[1], "1.77 M elements each")
        let gptq = SolveAssignment(linears: block, ranks: 2).items
        let alone = gptq.filter { $0.owner == gptq.first { $0.name == "down" }!.owner }
        XCTAssertEqual(alone.map(\.name), ["down"], "the cubic model gives down_proj a rank to itself")
    }

    func testTheAssignmentIsDeterministic() {
        XCTAssertEqual(SolveAssignment(linears: block, ranks: 12), SolveAssignment(linears: block, ranks: 12))
    }
}
