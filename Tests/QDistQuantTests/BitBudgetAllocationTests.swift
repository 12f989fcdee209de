import QDistQuant
import QDistTensor
import XCTest

/// The multiple-choice knapsack of mixed precision against brute force over every combination.
final class BitBudgetAllocationTests: XCTestCase {
    typealias Candidate = BitBudgetAllocation.Candidate

    private func randomInstance(layers: Int, candidates: Int, rng: inout SeededGenerator) -> [[Candidate]] {
        (0..<layers).map { _ in
            (0..<candidates).map { _ in Candidate(bits: Int.random(in: 10...400, using: &rng), error: Double.random(in: 0...10, using: &rng)) }
        }
    }

    /// The least error over all combinations within `budget` (nil: none fits).
    private func bruteForce(_ layers: [[Candidate]], budget: Int) -> Double? {
        var best: Double?
        func visit(_ l: Int, bits: Int, error: Double) {
            if bits > budget { return }
            if l == layers.count {
                if best == nil || error < best! { best = error }
                return
            }
            for c in layers[l] { visit(l + 1, bits: bits + c.bits, error: error + c.error) }
        }
        visit(0, bits: 0, error: 0)
        return best
    }

    func testExactUnitMatchesBruteForceOnRandomInstances() throws {
        var rng = SeededGenerator(state: 21)
        var solved = 0
        for _ in 0..<200 {
            let layers = randomInstance(layers: Int.random(in: 1...5, using: &rng), candidates: Int.random(in: 1...4, using: &rng), rng: &rng)
            let budget = Int.random(in: 50...1500, using: &rng)
            guard let optimum = bruteForce(layers, budget: budget) else {
                XCTAssertThrowsError(try BitBudgetAllocation.solve(layers, budgetBits: budget))
                continue
            }
            let plan = try BitBudgetAllocation.solve(layers, budgetBits: budget)
            XCTAssertLessThanOrEqual(plan.totalBits, budget)
            XCTAssertEqual(plan.totalError, optimum, accuracy: 1e-9)
            XCTAssertEqual(plan.totalBits, zip(layers, plan.choices).reduce(0) { $0 + $1.0[$1.1].bits }, "the reported size is the chosen candidates'")
            XCTAssertEqual(plan.guaranteedAgainstBudget, budget)
            solved += 1
        }
        XCTAssertGreaterThan(solved, 100, "most instances must be feasible for the comparison to mean something")
    }

    /// With coarse units the plan still fits the true budget, and is no worse than the best plan
    /// of the smaller budget it guarantees.
    func testCoarseUnitsFitTheBudgetAndBeatTheOptimumOfTheGuaranteedBudget() throws {
        var rng = SeededGenerator(state: 5)
        var checked = 0
        for _ in 0..<200 {
            let layers = randomInstance(layers: Int.random(in: 2...5, using: &rng), candidates: 3, rng: &rng)
            let budget = Int.random(in: 300...1500, using: &rng), unit = Int.random(in: 2...25, using: &rng)
            guard let plan = try? BitBudgetAllocation.solve(layers, budgetBits: budget, unitBits: unit) else { continue }
            XCTAssertLessThanOrEqual(plan.totalBits, budget)
            XCTAssertEqual(plan.guaranteedAgainstBudget, budget - layers.count * unit)
            if let smaller = bruteForce(layers, budget: plan.guaranteedAgainstBudget) {
                XCTAssertLessThanOrEqual(plan.totalError, smaller + 1e-9)
                checked += 1
            }
            XCTAssertGreaterThanOrEqual(plan.totalError, bruteForce(layers, budget: budget)! - 1e-9, "nothing beats the true optimum")
        }
        XCTAssertGreaterThan(checked, 50)
    }

    func testTiesGoToTheEarlierCandidateSoThePlanIsDeterministic() throws {
        let layers = [[Candidate(bits: 10, error: 1), Candidate(bits: 10, error: 1)], [Candidate(bits: 5, error: 2), Candidate(bits: 5, error: 2)]]
        XCTAssertEqual(try BitBudgetAllocation.solve(layers, budgetBits: 100).choices, [0, 0])
    }

    func testRefusesABudgetBelowTheSmallestSchemesAndInvalidCandidates() {
        let layers = [[Candidate(bits: 30, error: 1), Candidate(bits: 60, error: 0)], [Candidate(bits: 40, error: 2)]]
        XCTAssertThrowsError(try BitBudgetAllocation.solve(layers, budgetBits: 69)) { error in
            XCTAssertTrue("\(error)".contains("70 bits"), "\(error)")
        }
        XCTAssertEqual(try BitBudgetAllocation.solve(layers, budgetBits: 70).choices, [0, 0])
        XCTAssertEqual(try BitBudgetAllocation.solve(layers, budgetBits: 100).choices, [1, 0])
        XCTAssertThrowsError(try BitBudgetAllocation.solve([[]], budgetBits: 100))
        XCTAssertThrowsError(try BitBudgetAllocation.solve([[Candidate(bits: 1, error: .nan)]], budgetBits: 100))
        XCTAssertThrowsError(try BitBudgetAllocation.solve(layers, budgetBits: 100, unitBits: 0))
    }
}
