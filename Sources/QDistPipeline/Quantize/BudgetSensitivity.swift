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
/// `output_error` is ‖(W − Ŵ)X‖² = tr(ΔW·H·ΔWᵀ), `fisher` the same with each output row weighted
/// by the loss's Fisher diagonal (one backward pass per window over the first `fisher_samples`
/// windows first), `gptq_loss` GPTQ's own loss. Then one candidate per linear is chosen under
/// the budget (`QuantizationBudget.allocate`).
///
/// With P ranks: windows are split as in the quantization pass, each group's Hessian goes to the
/// ranks that solve a linear reading it, linears are dealt whole with all their candidates
/// (never split by rows, so each error is computed by one rank in one order) and the errors are
/// summed across ranks with zeros elsewhere — exact — so the plan is the same for every P and
/// thread count.
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
        let fisherStart = Date()
        let fisher = budget.metric.weighsByFisher
            ? try outputFisher(job, windows: Array(windows.prefix(budget.fisherSamples)), embedding: embedding,
                               sampledLabels: budget.metric == .kl, communicator: comm) : [:]
        var timings = ["fisher": Date().timeIntervalSince(fisherStart), "forward": 0, "solve": 0]
        var errors = [[Double?]](repeating: [Double?](repeating: nil, count: budget.candidates.count), count: entries.count)
        let index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
        let progress = ProgressReporter(label: "budget: sensitivity, block", total: config.numHiddenLayers, unit: "tokens", enabled: comm.isMain)
        for b in 0..<config.numHiddenLayers {
            let weights = try LlamaBlockWeights.load(block: b, from: job.bundle.weights, config: config)
            let block = LlamaBlock(index: b, weights: weights, config: config, rotary: rotary)
            let blockEntries = job.plan.entries(inBlock: b).values.sorted { $0.suffix < $1.suffix }
            let forwardStart = Date()
            var calibration = LinearStageCalibration(activations: activations)
            activations = []
            let statistics = try SequentialQuantizer.collectStatistics(
                stage: LinearGroup.allCases, entries: blockEntries, calibration: &calibration, block: block,
                carryThroughStage: true, usesHessians: true, calibrationTokens: tokens, communicator: comm)
            // Linears dealt whole with all their candidates (one factorization serves them all),
            // costliest first.
            let fitting = Dictionary(uniqueKeysWithValues: try blockEntries.map { e in (e.name, try budget.fitting(e)) })
            let assignment = SolveAssignment(linears: blockEntries.map { .init(name: $0.name, rows: $0.outFeatures * fitting[$0.name]!.count,
                                                                               columns: $0.inFeatures, splittable: false) },
                                             ranks: comm.size, costModel: .hessianSolve)
            let owners = Dictionary(grouping: blockEntries) { LinearGroup.containing($0.suffix)! }
                .mapValues { es in Array(Set(es.flatMap { assignment.owners(of: $0.name) })).sorted() }
            let hessians = try HessianExchange.deliver(statistics.hessians, to: owners, communicator: comm)
            timings["forward", default: 0] += Date().timeIntervalSince(forwardStart)
            let solveStart = Date()
            var mine = [Double](repeating: 0, count: entries.count * budget.candidates.count)
            for item in assignment.items(of: comm.rank) {
                guard let entry = blockEntries.first(where: { $0.name == item.name }), let ks = fitting[item.name],
                      let hessian = hessians[LinearGroup.containing(entry.suffix)!], let layer = weights.linears[entry.suffix] else {
                    throw QuantizePlanError(description: "budget: \(item.name) has no Hessian on rank \(comm.rank)")
                }
                let scores = try Self.scores(layer.weight, candidates: ks.map { budget.candidates[$0] }, linear: entry.name, hessian: hessian,
                                             plan: job.plan, metric: budget.metric, outputWeights: fisher[entry.name])
                for (k, score) in zip(ks, scores) {
                    guard score.isFinite else {
                        throw QuantizePlanError(description: "budget: \(entry.name) with \(budget.candidates[k].label) gave a non-finite error (non-finite calibration inputs?)")
                    }
                    mine[index[entry.name]! * budget.candidates.count + k] = score
                }
            }
            timings["solve", default: 0] += Date().timeIntervalSince(solveStart)
            // Each pair was scored by one rank; the others contribute exact zeros.
            if comm.size > 1 { try comm.allreduce(&mine, op: .sum) }
            for e in blockEntries {
                let i = index[e.name]!
                for k in fitting[e.name]! { errors[i][k] = mine[i * budget.candidates.count + k] }
            }
            let propagateStart = Date()
            activations = calibration.finish(block: block)
            timings["forward", default: 0] += Date().timeIntervalSince(propagateStart)
            progress.update(done: b + 1, work: (b + 1) * tokens)
        }
        var plan = try budget.allocate(entries, errors: errors)
        plan.seconds = Date().timeIntervalSince(start)
        plan.secondsByStep = timings
        log(plan.summary())
        return plan
    }

    /// Each candidate's error on one linear: the solver's quantized weight (`solveCandidates`; a
    /// ggml type through `solveGGML` with the job's importance vector and scales), dequantized
    /// from the form the writer stores (so the error is the written model's, up to a folder's
    /// scale dtype), scored on the input Hessian — tr(ΔW·H·ΔWᵀ), each output row weighted by
    /// `outputWeights` (the Fisher diagonal) when given — or GPTQ's own loss.
    static func scores(_ w: Tensor, candidates: [QuantizationBudget.Candidate], linear: String, hessian: Tensor, plan: QuantizationPlan,
                       metric: BudgetConfig.Metric, outputWeights: [Double]? = nil) throws -> [Double] {
        var solved: [(dequantized: Tensor, loss: Double?)?] = candidates.map { _ in nil }
        let integer = candidates.indices.filter { candidates[$0].ggmlType == nil }
        for (i, r) in zip(integer, try plan.solver.solveCandidates(w, hessian: hessian, args: integer.map { candidates[$0].args })) {
            let stored = try QuantizedLinearWeights(quantizedWeight: r.weight, name: linear, bias: nil, fractionalZeros: false)
            solved[i] = (stored.dequantize(), r.loss)
        }
        let typed = candidates.indices.filter { candidates[$0].ggmlType != nil }
        // Block-type candidates share the recipe's act-order; they are solved together by it.
        for actOrder in [false, true] {
            let group = typed.filter { (candidates[$0].args.actorder != nil) == actOrder }
            guard !group.isEmpty else { continue }
            let types = group.compactMap { candidates[$0].ggmlType }
            let results = try plan.solver.solveGGMLCandidates(w, hessian: hessian, types: types,
                                                              importance: plan.gguf?.importance(forLinear: linear, hessian: hessian),
                                                              actOrder: actOrder, scales: plan.gguf?.scales ?? .original)
            for (i, (type, r)) in zip(group, zip(types, results)) {
                solved[i] = (Tensor(shape: w.shape, scalars: type.dequantize(r.bytes)), r.loss)
            }
        }
        return try solved.map { entry in
            guard let (dequantized, loss) = entry else { throw QuantizePlanError(description: "budget: \(linear): a candidate was not solved") }
            if metric == .gptqLoss { return max(loss ?? 0, 0) }
            return max(SequentialQuantizer.quadratic(w - dequantized, hessian, rowWeights: outputWeights), 0)
        }
    }

    /// The Fisher diagonal of every planned linear's output (`LinearOutputFisher`) over
    /// `windows`, summed in window order across ranks (the same bits for any P), keyed by name.
    /// With `sampledLabels`, window i's labels are drawn from the float model with a seed fixed
    /// by the calibration seed and i (`labelSeed`): the same labels on whichever rank.
    static func outputFisher(_ job: SequentialQuantizer.Job, windows: [[Int]], embedding: Tensor, sampledLabels: Bool,
                             communicator comm: any Communicator) throws -> [String: [Double]] {
        let config = job.bundle.config
        let source = job.bundle.weights
        let head = config.tieWordEmbeddings || !source.contains("lm_head.weight") ? embedding
            : try source.tensor("lm_head.weight", expectedShape: [config.vocabSize, config.hiddenSize])
        let norm = try source.tensor("model.norm.weight", expectedShape: [config.hiddenSize])
        let frozen = FrozenWeightClosures(embedding: { embedding }, finalNorm: { norm }, outputHead: { head },
                                          block: { i, _ in try LlamaBlockWeights.load(block: i, from: source, config: config) })
        let entries = job.plan.entries
        let length = entries.reduce(0) { $0 + $1.outFeatures }
        var perWindow: [[Double]] = []
        let progress = ProgressReporter(label: "budget: fisher, window", total: windows.count, unit: "tokens", enabled: comm.isMain)
        for i in windows.indices where i % comm.size == comm.rank {
            let labels: LinearOutputFisher.Labels = sampledLabels ? .sampled(seed: labelSeed(job.calibration.seed, window: i)) : .data
            let f = try LinearOutputFisher.measure(tokens: windows[i], config: config, frozen: frozen, labels: labels)
            var flat: [Double] = []
            flat.reserveCapacity(length)
            for e in entries {
                guard let target = LoRATarget(rawValue: String(e.suffix.split(separator: ".").last ?? "")),
                      let squares = f.blocks[e.block][target], squares.count == e.outFeatures else {
                    throw QuantizePlanError(description: "budget: no output gradient for \(e.name)")
                }
                flat += squares
            }
            perWindow.append(flat)
            progress.update(done: i + 1, work: (i + 1) * windows[i].count)
        }
        let total = try WindowOrderedSum.vectors(perWindow, length: length, windows: windows.count, communicator: comm)
        var out: [String: [Double]] = [:]
        var offset = 0
        for e in entries {
            out[e.name] = Array(total[offset..<offset + e.outFeatures])
            offset += e.outFeatures
        }
        return out
    }

    /// The seed of window i's sampled labels: distinct per window, fixed by the calibration seed.
    static func labelSeed(_ calibrationSeed: UInt64, window i: Int) -> UInt64 {
        var g = SeededGenerator(seed: calibrationSeed &* 0x1_0000_0001 &+ UInt64(i))
        return g.next()
    }
}
