import Foundation
import QDistComm
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor

/// The sensitivity pass of a budgeted job: before anything is quantized, the float model is
/// forwarded block by block on the first `budget.samples` calibration windows; each linear's
/// input Hessian is formed (exact fixed-point sums, as in the quantization pass), and every
/// (linear, candidate) pair is solved with the recipe's solver and scored on that Hessian —
/// `output_error` is ‖(W − Ŵ)X‖² = tr(ΔW·H·ΔWᵀ), `gptq_loss` GPTQ's own loss. Then one candidate
/// per linear is chosen under the budget (`QuantizationBudget.allocate`).
///
/// With P ranks: windows are split as in the quantization pass, each group's Hessian goes to the
/// ranks that solve a pair reading it, pairs are dealt whole (never split by rows, so each
/// error is computed by one rank in one order) and the errors are summed across ranks with
/// zeros elsewhere — exact — so the plan is the same for every P and thread count.
enum BudgetSensitivity {
    /// The allocation for `job` under `budget` (every rank returns the same plan).
    static func plan(_ job: SequentialQuantizer.Job, budget: QuantizationBudget, communicator comm: any Communicator,
                     log: (String) -> Void) throws -> BudgetPlan {
        let start = Date()
        let config = job.bundle.config
        let entries = job.plan.entries
        guard let data = job.calibration.data else {
            throw QuantizePlanError(description: "budget: the sensitivity pass needs calibration data: set calibration.data or --data")
        }
        let set = try CalibrationSet.load(path: data, samples: job.calibration.samples, seqLen: job.calibration.seqLen,
                                          seed: job.calibration.seed, sampler: job.calibration.sampler,
                                          tokenizer: job.bundle.tokenizer, communicator: comm)
        let windows = Array(set.windows.prefix(budget.samples))
        let tokens = windows.reduce(0) { $0 + $1.count }
        let embedding = try job.bundle.weights.tensor("model.embed_tokens.weight", expectedShape: [config.vocabSize, config.hiddenSize])
        var activations = windows.indices.filter { $0 % comm.size == comm.rank }.map { LlamaModel.embed(windows[$0], table: embedding) }
        let rotary = LlamaModel.rotary(for: config)
        var errors = [[Double]](repeating: [Double](repeating: 0, count: budget.candidates.count), count: entries.count)
        let index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
        let progress = ProgressReporter(label: "budget: sensitivity, block", total: config.numHiddenLayers, unit: "tokens", enabled: comm.isMain)
        for b in 0..<config.numHiddenLayers {
            let weights = try LlamaBlockWeights.load(block: b, from: job.bundle.weights, config: config)
            let block = LlamaBlock(index: b, weights: weights, config: config, rotary: rotary)
            let blockEntries = job.plan.entries(inBlock: b).values.sorted { $0.suffix < $1.suffix }
            var calibration = LinearStageCalibration(activations: activations)
            activations = []
            let statistics = try SequentialQuantizer.collectStatistics(
                stage: LinearGroup.allCases, entries: blockEntries, calibration: &calibration, block: block,
                carryThroughStage: true, usesHessians: true, calibrationTokens: tokens, communicator: comm)
            // Pairs (linear, candidate) dealt whole, costliest first.
            var pairs: [(entry: QuantizationPlan.Entry, candidate: Int)] = []
            for e in blockEntries { for k in budget.candidates.indices where budget.fits(k, e) { pairs.append((e, k)) } }
            let assignment = SolveAssignment(linears: pairs.map { .init(name: pairName($0.entry, $0.candidate), rows: $0.entry.outFeatures,
                                                                         columns: $0.entry.inFeatures, splittable: false) },
                                             ranks: comm.size, costModel: .hessianSolve)
            let owners = Dictionary(grouping: pairs) { LinearGroup.containing($0.entry.suffix)! }
                .mapValues { ps in Array(Set(ps.flatMap { assignment.owners(of: pairName($0.entry, $0.candidate)) })).sorted() }
            let hessians = try HessianExchange.deliver(statistics.hessians, to: owners, communicator: comm)
            var mine = [Double](repeating: 0, count: entries.count * budget.candidates.count)
            for item in assignment.items(of: comm.rank) {
                guard let pair = pairs.first(where: { pairName($0.entry, $0.candidate) == item.name }),
                      let hessian = hessians[LinearGroup.containing(pair.entry.suffix)!], let layer = weights.linears[pair.entry.suffix] else {
                    throw QuantizePlanError(description: "budget: \(item.name) has no Hessian on rank \(comm.rank)")
                }
                var entry = pair.entry
                entry.args = budget.candidates[pair.candidate].args
                let solved = try SequentialQuantizer.solve(layer.weight, item: item, entry: entry, hessian: hessian, plan: job.plan)
                let score = budget.metric == .gptqLoss ? (solved.gptqLoss ?? 0) : solved.errorQuadratic
                guard score.isFinite else {
                    throw QuantizePlanError(description: "budget: \(entry.name) with \(budget.candidates[pair.candidate].label) gave a non-finite error (non-finite calibration inputs?)")
                }
                mine[index[entry.name]! * budget.candidates.count + pair.candidate] = max(score, 0)
            }
            // Each pair was scored by one rank; the others contribute exact zeros.
            if comm.size > 1 { try comm.allreduce(&mine, op: .sum) }
            for (i, row) in errors.indices.enumerated() where entries[i].block == b {
                for k in budget.candidates.indices { errors[row][k] = mine[i * budget.candidates.count + k] }
            }
            activations = calibration.finish(block: block)
            progress.update(done: b + 1, work: (b + 1) * tokens)
        }
        let fitted: [[Double?]] = entries.indices.map { i in
            budget.candidates.indices.map { k in budget.fits(k, entries[i]) ? errors[i][k] : nil }
        }
        var plan = try budget.allocate(entries, errors: fitted)
        plan.seconds = Date().timeIntervalSince(start)
        log(plan.summary())
        return plan
    }

    static func pairName(_ entry: QuantizationPlan.Entry, _ k: Int) -> String { "\(entry.name)#\(k)" }
}
