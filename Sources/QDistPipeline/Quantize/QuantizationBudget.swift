import Foundation
import QDistIO
import QDistQuant
import QDistTensor

/// A job's `budget:` resolved against its recipe and model: the candidate schemes as the
/// quantizing modifier would apply them (its observer and act-order), which candidates fit each
/// planned linear (a group must divide its columns), and what each costs in the written file.
/// `allocate` turns measured sensitivities into one candidate per linear (`BudgetAllocation`).
public struct QuantizationBudget: Sendable {
    /// One candidate scheme.
    public struct Candidate: Sendable, Equatable {
        /// As the recipe wrote it (`W3 g64 asym`, `Q4_K`).
        public var label: String
        /// The weight arguments (for a ggml type: its code bits and sub-block, for reports).
        public var args: QuantizationArgs
        /// The ggml block type of a `format: gguf` candidate; nil for compressed-tensors schemes.
        public var ggmlType: GGMLType? = nil
    }

    public var bitsPerWeight: Double
    public var candidates: [Candidate]
    public var metric: BudgetConfig.Metric
    /// Calibration windows the sensitivity pass forwards.
    public var samples: Int
    /// Windows of the Fisher's backward pass (`metric: fisher`; 0 otherwise).
    public var fisherSamples: Int
    /// Bits of one stored scale (the writers' scale dtype: fp16 for an fp32 model, else its own).
    public var scaleBits: Int

    /// Checks the budget against the recipe: a weight-only integer recipe written as
    /// compressed-tensors (candidates: schemes) or GGUF (candidates: ggml block types), with a
    /// solver that can be measured per candidate.
    public init(_ config: BudgetConfig, recipe: RecipeConfig, format: QuantizeJobConfig.OutputFormat,
                model: ModelConfiguration, calibrationSamples: Int) throws {
        try config.validate()
        guard let modifier = recipe.modifier else {
            throw QuantizePlanError(description: "budget: the recipe only prunes; a budget needs a quantizing modifier (GPTQModifier or QuantizationModifier)")
        }
        guard format == .compressedTensors || format == .gguf else {
            throw QuantizePlanError(description: "budget: mixed precision is written as compressed-tensors (one config group per scheme) or GGUF (a block type per tensor); \(format) cannot hold several schemes")
        }
        if !recipe.smoothings.isEmpty || recipe.pruning != nil {
            throw QuantizePlanError(description: "budget: \(recipe.name) smooths or prunes before quantizing; a budget takes a recipe of one quantizing modifier")
        }
        if modifier.quantizesActivations {
            throw QuantizePlanError(description: "budget: the recipe quantizes input activations; a bits-per-weight budget plans weight-only schemes")
        }
        let solver = recipe.solver
        guard !solver.producesFractionalZeroPoints, !solver.prunesWhileSolving else {
            throw QuantizePlanError(description: "budget: \(recipe.name) stores float zero points or prunes; use GPTQModifier or QuantizationModifier")
        }
        if config.metric == .gptqLoss && !solver.needsHessian {
            throw QuantizePlanError(description: "budget: metric gptq_loss needs GPTQModifier (\(recipe.name) has no GPTQ loss); use output_error")
        }
        let first = modifier.weightGroups.first?.weights
        if format == .gguf {
            let actOrder = modifier.actorderGiven ? modifier.actorder : solver.defaultActOrder
            candidates = try (config.candidates ?? BudgetConfig.defaultGGUFCandidates).map { text in
                guard let type = GGMLType(name: text) else {
                    throw QuantizePlanError(description: "budget: format gguf takes ggml block types as candidates (Q4_0, Q5_K, …), not '\(text)'")
                }
                let layout = GGMLBlockCodes.layout(type)
                guard layout != nil || !solver.needsHessian else {
                    throw QuantizePlanError(description: "budget: \(type.traits.name) has no integer grid GPTQ can solve on; drop it from candidates")
                }
                var args = QuantizationArgs(numBits: layout?.bits ?? 2, type: .int, symmetric: true, strategy: .group,
                                            groupSize: layout?.subBlock ?? type.traits.blockSize)
                args.actorder = actOrder.map { _ in QuantizationArgs.ActivationOrdering.static }
                return Candidate(label: type.traits.name, args: args, ggmlType: type)
            }
        } else {
        candidates = try (config.candidates ?? BudgetConfig.defaultCandidates).map { text in
            if GGMLType(name: text) != nil {
                throw QuantizePlanError(description: "budget: '\(text)' is a ggml block type: those are candidates for format: gguf")
            }
            var w = try BudgetConfig.weights(of: text)
            w.observer = first?.observer ?? .minmax
            if modifier.actorderGiven { w.actorder = modifier.actorder }
            let args = try QuantizationPlan.arguments(w, defaultActOrder: modifier.actorderGiven ? nil : solver.defaultActOrder)
            if args.actorder == .group {
                throw QuantizePlanError(description: "budget: act-order group writes a g_idx per linear; use actorder: static (or null) with a budget")
            }
            return Candidate(label: text, args: args)
        }
        }
        bitsPerWeight = config.bitsPerWeight
        metric = config.metric
        samples = min(config.samples ?? 16, calibrationSamples)
        fisherSamples = config.metric == .fisher ? min(config.fisherSamples ?? 8, samples) : 0
        let floatType = DType.modelDType(torchDtype: model.torchDtype)
        scaleBits = 8 * (floatType == .f32 ? DType.f16 : floatType).byteSize
    }

    /// Whether candidate `k` can quantize `entry` (its group, or block, divides the columns).
    public func fits(_ k: Int, _ entry: QuantizationPlan.Entry) -> Bool {
        if let type = candidates[k].ggmlType { return entry.inFeatures % type.traits.blockSize == 0 }
        let a = candidates[k].args
        return a.strategy != .group || (a.groupSize.map { $0 > 0 && entry.inFeatures % $0 == 0 } ?? false)
    }

    /// Storage bits of `entry` under candidate `k`, as compressed-tensors pack-quantized holds it.
    public func bits(_ k: Int, _ entry: QuantizationPlan.Entry) throws -> Int {
        if let type = candidates[k].ggmlType {
            do { return try SchemeStorageCost.ggufBits(type, outFeatures: entry.outFeatures, inFeatures: entry.inFeatures) } catch {
                throw QuantizePlanError(description: "budget: \(candidates[k].label): \(error)")
            }
        }
        let a = candidates[k].args
        let scheme = QuantizedLinearScheme(numBits: a.numBits, symmetric: a.symmetric, groupSize: a.strategy == .group ? a.groupSize : nil,
                                           actOrder: a.actorder == .group, perTensor: a.strategy == .tensor)
        do {
            return try SchemeStorageCost.compressedTensorsBits(scheme, outFeatures: entry.outFeatures, inFeatures: entry.inFeatures, scaleBits: scaleBits)
        } catch {
            throw QuantizePlanError(description: "budget: \(candidates[k].label): \(error)")
        }
    }

    /// The least-error choice per entry under the budget, from `errors[i][k]` (nil where
    /// candidate k does not fit entry i).
    public func allocate(_ entries: [QuantizationPlan.Entry], errors: [[Double?]]) throws -> BudgetPlan {
        var layers: [[BitBudgetAllocation.Candidate]] = []
        var indices: [[Int]] = []
        var weights = 0
        for (i, entry) in entries.enumerated() {
            var options: [BitBudgetAllocation.Candidate] = []
            var which: [Int] = []
            for k in candidates.indices {
                guard let e = errors[i][k] else { continue }
                options.append(.init(bits: try bits(k, entry), error: e))
                which.append(k)
            }
            guard !options.isEmpty else {
                throw QuantizePlanError(description: "budget: no candidate fits \(entry.name) (\(entry.inFeatures) columns): add one whose group divides it, or a per-channel one")
            }
            layers.append(options)
            indices.append(which)
            weights += entry.inFeatures * entry.outFeatures
        }
        let budgetBits = Int((bitsPerWeight * Double(weights)).rounded(.down))
        let plan: BitBudgetAllocation.Plan
        do {
            plan = try BitBudgetAllocation.solve(layers, budgetBits: budgetBits, unitBits: BitBudgetAllocation.defaultUnit(budgetBits: budgetBits))
        } catch let e as BitBudgetAllocation.Infeasible {
            let least = layers.reduce(0) { $0 + ($1.map(\.bits).min() ?? 0) }
            throw QuantizePlanError(description: String(format: "budget: %.3f bits per weight cannot be met: the smallest candidate of every linear already takes %.3f (%@)",
                                                        bitsPerWeight, Double(least) / Double(max(weights, 1)), e.description))
        }
        let choices = zip(plan.choices, indices).map { $1[$0] }
        return BudgetPlan(budget: self, names: entries.map(\.name), weights: entries.map { $0.inFeatures * $0.outFeatures },
                          choices: choices, bits: zip(plan.choices, layers).map { $1[$0].bits }, errors: errors,
                          totalBits: plan.totalBits, totalError: plan.totalError, budgetBits: budgetBits)
    }
}

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
            lines.append(String(format: "  %-14@ %4d linears, %5.1f %% of weights", c.label as NSString, c.linears, 100 * Double(c.weights) / total))
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
