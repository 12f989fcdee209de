/// Mixed precision under a size budget: one candidate scheme per layer (each with its measured
/// error and its honest storage cost in bits) so that the total cost stays within the budget and
/// the summed error is least — a multiple-choice knapsack, solved exactly by dynamic programming
/// over costs counted in whole units of `unitBits`.
///
/// Costs are rounded *up* to units, so every plan it returns fits the true budget; the rounding
/// can only cost optimality, and by at most what `layers × unitBits` of budget would buy: the
/// plan is at least as good as the true optimum under a budget smaller by that much
/// (`Plan.guaranteedAgainstBudget`). With `unitBits` 1 it is the exact optimum.
///
/// Deterministic: among equal errors the earlier candidate (and the earlier layer's choice) wins,
/// so every rank that solves the same statistics gets the same plan. Pure: no I/O, no MPI.
public enum BitBudgetAllocation {
    /// One way to store one layer.
    public struct Candidate: Sendable, Equatable {
        /// Storage in bits, all-in (codes, scales, zero points, group indices).
        public var bits: Int
        /// The error the layer adds with it (any additive measure: output error, GPTQ loss, KL).
        public var error: Double
        public init(bits: Int, error: Double) {
            self.bits = bits
            self.error = error
        }
    }

    /// The chosen candidate per layer and what it adds up to.
    public struct Plan: Sendable, Equatable {
        /// Index into each layer's candidates.
        public var choices: [Int]
        public var totalBits: Int
        public var totalError: Double
        /// This plan's error is at most the best achievable under this many bits (budget minus
        /// the rounding allowance), so the gap to the true optimum is bounded by that slack.
        public var guaranteedAgainstBudget: Int
    }

    /// Why no plan exists.
    public struct Infeasible: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// The least-error plan with `Σ bits ≤ budgetBits`. Throws when even the smallest candidate
    /// of every layer does not fit, or a layer has no candidates, or a cost or error is not
    /// finite and non-negative. `unitBits` ≥ 1 sets the DP's resolution (table size
    /// `budgetBits / unitBits + 1` per layer); `defaultUnit(budgetBits:)` keeps it near 2¹⁶.
    public static func solve(_ layers: [[Candidate]], budgetBits: Int, unitBits: Int = 1) throws -> Plan {
        guard unitBits >= 1 else { throw Infeasible(description: "the cost unit must be at least 1 bit, got \(unitBits)") }
        for (i, candidates) in layers.enumerated() {
            if candidates.isEmpty { throw Infeasible(description: "layer \(i) has no candidate scheme") }
            if let bad = candidates.first(where: { $0.bits < 0 || !$0.error.isFinite || $0.error < 0 }) {
                throw Infeasible(description: "layer \(i): a candidate has cost \(bad.bits) bits and error \(bad.error); both must be finite and non-negative")
            }
        }
        let minimum = layers.reduce(0) { $0 + ($1.map(\.bits).min() ?? 0) }
        if minimum > budgetBits {
            throw Infeasible(description: "the smallest scheme of every layer already takes \(minimum) bits, over the budget of \(budgetBits)")
        }
        let capacity = budgetBits / unitBits
        let units = layers.map { $0.map { ($0.bits + unitBits - 1) / unitBits } }
        // best[u]: least error of the layers so far using at most u units; choice[l][u] remembers
        // which candidate layer l took in that optimum (-1: unreachable).
        var best = [Double](repeating: 0, count: capacity + 1)
        var choice = [[Int32]]()
        choice.reserveCapacity(layers.count)
        for (l, candidates) in layers.enumerated() {
            var next = [Double](repeating: .infinity, count: capacity + 1)
            var taken = [Int32](repeating: -1, count: capacity + 1)
            for (k, candidate) in candidates.enumerated() {
                let cost = units[l][k]
                guard cost <= capacity else { continue }
                for u in cost...capacity {
                    let e = best[u - cost] + candidate.error
                    if e < next[u] {
                        next[u] = e
                        taken[u] = Int32(k)
                    }
                }
            }
            best = next
            choice.append(taken)
        }
        guard best[capacity].isFinite else {
            throw Infeasible(description: "no combination fits \(budgetBits) bits once costs are rounded up to units of \(unitBits) bits; use a smaller unit")
        }
        var choices = [Int](repeating: 0, count: layers.count)
        var u = capacity
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            let k = Int(choice[l][u])
            choices[l] = k
            u -= units[l][k]
        }
        let bits = zip(layers, choices).reduce(0) { $0 + $1.0[$1.1].bits }
        let error = zip(layers, choices).reduce(0.0) { $0 + $1.0[$1.1].error }
        let allowance = unitBits == 1 ? 0 : layers.count * unitBits
        return Plan(choices: choices, totalBits: bits, totalError: error, guaranteedAgainstBudget: max(budgetBits - allowance, 0))
    }

    /// A unit that keeps the DP table near 2¹⁶ entries per layer.
    public static func defaultUnit(budgetBits: Int) -> Int { max(1, budgetBits >> 16) }
}
