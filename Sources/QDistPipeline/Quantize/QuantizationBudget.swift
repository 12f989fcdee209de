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
    /// Windows of the Fisher's backward pass (`metric: fisher` or `kl`; 0 otherwise).
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
        candidates = format == .gguf
            ? try Self.blockTypeCandidates(config.candidates ?? BudgetConfig.defaultGGUFCandidates, modifier: modifier, solver: solver)
            : try Self.schemeCandidates(config.candidates ?? BudgetConfig.defaultCandidates, modifier: modifier, solver: solver)
        bitsPerWeight = config.bitsPerWeight
        metric = config.metric
        samples = min(config.samples ?? 16, calibrationSamples)
        fisherSamples = config.metric.weighsByFisher ? min(config.fisherSamples ?? 8, samples) : 0
        let floatType = DType.modelDType(torchDtype: model.torchDtype)
        scaleBits = 8 * (floatType == .f32 ? DType.f16 : floatType).byteSize
    }

    /// compressed-tensors candidates: schemes with the modifier's observer and act-order.
    static func schemeCandidates(_ texts: [String], modifier: ModifierConfig, solver: any LinearSolver) throws -> [Candidate] {
        let observer = modifier.weightGroups.first?.weights.observer ?? .minmax
        return try texts.map { text in
            if GGMLType(name: text) != nil {
                throw QuantizePlanError(description: "budget: '\(text)' is a ggml block type: those are candidates for format: gguf")
            }
            var w = try BudgetConfig.weights(of: text)
            w.observer = observer
            if modifier.actorderGiven { w.actorder = modifier.actorder }
            let args = try QuantizationPlan.arguments(w, defaultActOrder: modifier.actorderGiven ? nil : solver.defaultActOrder)
            if args.actorder == .group {
                throw QuantizePlanError(description: "budget: act-order group writes a g_idx per linear; use actorder: static (or null) with a budget")
            }
            return Candidate(label: text, args: args)
        }
    }

    /// GGUF candidates: ggml block types, described for reports as `QuantizationPlan` describes
    /// a mix's types (code bits, sub-block, the modifier's act-order).
    static func blockTypeCandidates(_ texts: [String], modifier: ModifierConfig, solver: any LinearSolver) throws -> [Candidate] {
        let actOrder = modifier.actorderGiven ? modifier.actorder : solver.defaultActOrder
        return try texts.map { text in
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
    }

    /// The candidates that can quantize `entry`, by index; throws when none can (checked when
    /// the job is set up, before the sensitivity pass).
    public func fitting(_ entry: QuantizationPlan.Entry) throws -> [Int] {
        let ks = candidates.indices.filter { fits($0, entry) }
        guard !ks.isEmpty else {
            throw QuantizePlanError(description: "budget: no candidate fits \(entry.name) (\(entry.inFeatures) columns): add one whose group divides it, or a per-channel one")
        }
        return ks
    }

    /// Whether candidate `k` can quantize `entry` (its group, or block, divides the columns).
    public func fits(_ k: Int, _ entry: QuantizationPlan.Entry) -> Bool {
        if let type = candidates[k].ggmlType { return entry.inFeatures % type.traits.blockSize == 0 }
        let a = candidates[k].args
        return a.strategy != .group || (a.groupSize.map { $0 > 0 && entry.inFeatures % $0 == 0 } ?? false)
    }

    /// Storage bits of `entry` under candidate `k`, as the file holds it (compressed-tensors
    /// pack-quantized, or the ggml type's blocks).
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
                _ = try fitting(entry)
                throw QuantizePlanError(description: "budget: \(entry.name) has no measured candidate")
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
