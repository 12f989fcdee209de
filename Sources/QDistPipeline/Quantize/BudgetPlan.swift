import Foundation
import QDistIO

/// The allocation of a budget: one candidate per planned linear, with what it costs and what
/// the measured errors were. Printed before the quantization pass, kept in
/// quantization_report.json (`budget`), and applied to the plan's entries.
public struct BudgetPlan: Sendable {
    public var budget: QuantizationBudget
    public var names: [String]
    public var weights: [Int]
    /// Chosen candidate index per linear.
    public var choices: [Int]
    /// Stored bits per linear under its choice.
    public var bits: [Int]
    /// Measured error per linear and candidate (nil: does not fit).
    public var errors: [[Double?]]
    public var totalBits: Int
    public var totalError: Double
    public var budgetBits: Int
    /// Seconds the sensitivity pass took.
    public var seconds: Double = 0
    /// Of those, on this rank: the Fisher's backward passes, the Hessians' forward, the
    /// candidates' solves.
    public var secondsByStep: [String: Double] = [:]

    /// All-in bits per weight of the planned linears: what `qdist inspect` will report.
    public var bitsPerWeight: Double { Double(totalBits) / Double(max(weights.reduce(0, +), 1)) }

    /// The plan with each entry's weight arguments (and, for GGUF, block type) replaced by its
    /// chosen candidate.
    public func applied(to plan: QuantizationPlan) throws -> QuantizationPlan {
        var plan = plan
        let chosen = Dictionary(uniqueKeysWithValues: zip(names, choices))
        for i in plan.entries.indices {
            guard let k = chosen[plan.entries[i].name] else {
                throw QuantizePlanError(description: "budget: \(plan.entries[i].name) has no allocation")
            }
            let candidate = budget.candidates[k]
            plan.entries[i].args = candidate.args
            if let type = candidate.ggmlType {
                plan.entries[i].ggmlType = type
                plan.gguf?.types[plan.entries[i].name + ".weight"] = type
            }
        }
        return plan
    }

    /// How many linears (and weights) each candidate got, in candidate order.
    public var counts: [(label: String, linears: Int, weights: Int)] {
        budget.candidates.indices.map { k in
            let members = choices.indices.filter { choices[$0] == k }
            return (budget.candidates[k].label, members.count, members.reduce(0) { $0 + weights[$1] })
        }
    }

    /// Lines for the terminal: target and result, then the share of each candidate, then the
    /// choice per linear kind and block.
    public func summary() -> String {
        let total = Double(weights.reduce(0, +))
        var lines = [String(format: "budget: %.3f bits per weight asked, %.4f planned (%d linears, %@ metric, %d windows, %.1f s: fisher %.1f, forward %.1f, solves %.1f)",
                            budget.bitsPerWeight, bitsPerWeight, names.count, budget.metric.rawValue, budget.samples, seconds,
                            secondsByStep["fisher"] ?? 0, secondsByStep["forward"] ?? 0, secondsByStep["solve"] ?? 0)]
        for c in counts where c.linears > 0 {
            // %-14@ does not pad an object: pad the label itself.
            let label = c.label.count < 14 ? c.label + String(repeating: " ", count: 14 - c.label.count) : c.label
            lines.append("  " + label + String(format: " %4d linears, %5.1f %% of weights", c.linears, 100 * Double(c.weights) / total))
        }
        // One row per block: the candidate of each linear, in the block's order.
        let blocks = Dictionary(grouping: names.indices) { names[$0].split(separator: ".").dropFirst(2).first.map(String.init) ?? "" }
        for key in blocks.keys.sorted(by: { (Int($0) ?? 0) < (Int($1) ?? 0) }) {
            let row = blocks[key]!.sorted { names[$0] < names[$1] }.map { i in
                "\(names[i].split(separator: ".").last ?? "")=\(budget.candidates[choices[i]].label)"
            }
            lines.append("  block \(key): " + row.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }

    /// quantization_report.json's `budget`.
    public var jsonValue: JSONValue {
        .object([
            (key: "bits_per_weight_target", value: .number(budget.bitsPerWeight)),
            (key: "bits_per_weight_planned", value: .number(bitsPerWeight)),
            (key: "metric", value: .string(budget.metric.rawValue)),
            (key: "windows", value: .integer(budget.samples)),
            (key: "fisher_windows", value: .integer(budget.fisherSamples)),
            (key: "seconds", value: .number(seconds)),
            (key: "seconds_by_step", value: .object(secondsByStep.sorted { $0.key < $1.key }.map { (key: $0.key, value: .number($0.value)) })),
            (key: "budget_bits", value: .integer(budgetBits)),
            (key: "planned_bits", value: .integer(totalBits)),
            (key: "total_error", value: .number(totalError)),
            (key: "candidates", value: .array(budget.candidates.map { .string($0.label) })),
            (key: "linears", value: .array(names.indices.map { i in
                .object([
                    (key: "name", value: .string(names[i])),
                    (key: "scheme", value: .string(budget.candidates[choices[i]].label)),
                    (key: "bits", value: .integer(bits[i])),
                    (key: "bits_per_weight", value: .number(Double(bits[i]) / Double(weights[i]))),
                    (key: "errors", value: .array(errors[i].map { $0.map(JSONValue.number) ?? .null })),
                ])
            })),
        ])
    }
}
