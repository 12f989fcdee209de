import Foundation
import QDistComm
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor

/// The quantization job (DESIGN.md, "Distributed quantization"): block by block with one
/// block's weights in memory, calibration activations flowing through the already-quantized
/// blocks (`sequential: block`, or group by group with `linear`), GPTQ or round-to-nearest per
/// linear, and the chosen checkpoint format. W8A8 recipes also calibrate static input scales in
/// the same observing pass (`ActivationCalibration`; round-to-nearest then forwards calibration
/// data too), and quantized linears carry their input quantizer, so propagation sees the
/// activation fake-quant that inference will apply.
///
/// With P ranks: each rank forwards only its share of the calibration windows; partial Hessians
/// go by `Reduce(SUM)` to the rank that solves the linear (`SolveAssignment`: by solve cost,
/// rows split when ranks outnumber linears); owners share codes and scales, never floats
/// (`QuantizedLinearExchange`); every rank re-forwards its windows through the quantized block.
/// Each finished block is recorded in the staging folder (`QuantizeProgressFolder`), so a rerun
/// resumes; at the end each rank writes its own shard (`ShardedQuantizedOutput`). P = 1 is the
/// same algorithm without collectives. Recipes that need no forward pass skip the block loop:
/// `CalibrationFreeQuantizer` deals the whole model's linears at once.
public enum SequentialQuantizer {
    /// Everything the job needs, already resolved from recipe + command line.
    public struct Job {
        public var bundle: ModelBundle
        public var plan: QuantizationPlan
        public var format: QuantizeJobConfig.OutputFormat
        public var sequential: QuantizeJobConfig.SequentialMode
        public var calibration: CalibrationConfig
        public var output: URL
        public var overwrite: Bool
        public var recipeName: String
        /// False discards recorded blocks of an unfinished run instead of resuming after them.
        public var resume: Bool = true
        /// Stop (with an error) once this block is recorded: splits a long job across
        /// allocations, and lets tests interrupt a run at a known point.
        public var stopAfterBlock: Int? = nil
        /// Test hook: this rank throws when it reaches this block (after calibration), as a
        /// crashing rank would — the job must abort with the rank's reason and resume on rerun.
        public var injectedFailure: (rank: Int, block: Int)? = nil
        /// The model path as given (part of the job's identity for resuming).
        public var modelPath: String = ""
        /// Mixed precision under a bits-per-weight budget: `run` first measures each linear's
        /// sensitivity and gives each entry its allocated scheme (`BudgetSensitivity`).
        public var budget: QuantizationBudget? = nil

        public init(bundle: ModelBundle, plan: QuantizationPlan, format: QuantizeJobConfig.OutputFormat,
                    sequential: QuantizeJobConfig.SequentialMode, calibration: CalibrationConfig, output: URL,
                    overwrite: Bool, recipeName: String) {
            (self.bundle, self.plan, self.format, self.sequential) = (bundle, plan, format, sequential)
            (self.calibration, self.output, self.overwrite, self.recipeName) = (calibration, output, overwrite, recipeName)
        }

        /// What must match for a rerun to resume: model, recipe, format and calibration.
        var fingerprint: JSONValue {
            // The pruning key only where a recipe prunes, so other jobs keep their fingerprints.
            .object((plan.pruning.map { [(key: "pruning", value: JSONValue.string(String(describing: $0)))] } ?? [])
                + (plan.gguf.map { [(key: "gguf", value: JSONValue.string($0.fingerprint))] } ?? []) + [
                (key: "model", value: .string(modelPath)), (key: "recipe", value: .string(recipeName)),
                (key: "format", value: .string(format.rawValue)), (key: "sequential", value: .string(sequential.rawValue)),
                (key: "algorithm", value: .string(plan.recipeName)),
                (key: "smoothing", value: .array(plan.smoothings.map { .string(String(describing: $0)) })),
                (key: "calibration", value: .string("\(calibration.data ?? "-") samples=\(calibration.samples) seq_len=\(calibration.seqLen) seed=\(calibration.seed)\(calibration.sampler == .splitmix64 ? "" : " sampler=" + calibration.sampler.rawValue)")),
                (key: "plan", value: .array(plan.entries.map { .string("\($0.name) \($0.args)" + ($0.inputActivations.map { " input \($0)" } ?? "")
                                                                    + ($0.ggmlType.map { " " + $0.traits.name } ?? "")) })),
            ])
        }
    }

    /// Raised after `stopAfterBlock`: the run stopped on purpose, its blocks are recorded.
    public struct StoppedAfterBlock: Error, CustomStringConvertible {
        public let block: Int
        public let staging: String
        public var description: String {
            "stopped after block \(block) as asked; completed blocks are recorded in \(staging) — rerun the same command to resume"
        }
    }

    public static func run(_ job: Job, communicator comm: any Communicator, log: (String) -> Void) throws -> QuantizationReport {
        let start = Date()
        var job = job
        var report = QuantizationReport()
        var stagedPlan: JSONValue? = nil
        if let budget = job.budget {
            // The plan comes first: the quantization pass (and its resume fingerprint) uses it.
            // A resumed job takes the plan its first run staged.
            let key = StagedBudgetPlan.resumeKey(job, budget: budget)
            let allocation: BudgetPlan
            if let staged = try StagedBudgetPlan.restore(job, budget: budget, communicator: comm) {
                allocation = staged
                log("budget: the plan staged by the earlier run is reused (delete \(QuantizeProgressFolder.stagingURL(for: job.output).path) or pass --no-resume to measure again)")
                log(staged.summary())
            } else {
                allocation = try planBudget(job, budget: budget, communicator: comm, log: log)
            }
            stagedPlan = StagedBudgetPlan.contents(allocation, key: key)
            job.plan = try allocation.applied(to: job.plan)
            job.budget = nil
            report.budget = allocation.jsonValue
            report.seconds["budget"] = allocation.seconds
        }
        let setupStart = Date()
        let config = job.bundle.config
        let rotary = LlamaModel.rotary(for: config)
        report.recipe = job.recipeName
        report.algorithm = job.plan.recipeName
        report.format = job.format.rawValue
        report.worldSize = comm.size
        var timers = RankTimers()

        if job.plan.needsCalibration { try checkCalibrationMemory(job, communicator: comm) }
        let progressFolder = try QuantizeProgressFolder.open(output: job.output, fingerprint: job.fingerprint, fresh: !job.resume,
                                                             communicator: comm)
        if progressFolder.completedBlocks > 0 {
            log("quantize: resuming after block \(progressFolder.completedBlocks - 1) (recorded in \(progressFolder.staging.path))")
        }
        if let plan = stagedPlan, comm.isMain {
            // The allocation on disk before the quantization pass (the report repeats it at the end).
            try AtomicFileWriter.write(Array(plan.serialized(.pretty(sortKeys: false))),
                                       to: progressFolder.staging.appendingPathComponent(StagedBudgetPlan.fileName))
        }

        // Round-to-nearest needs no activations unless it calibrates static input scales; GPTQ
        // calibrates on this rank's windows.
        let needsCalibration = job.plan.needsCalibration
        var activations: [Tensor] = []
        var calibrationTokens = 0  // over every rank: fixes the Hessians' grid
        if needsCalibration {
            guard let data = job.calibration.data else {
                throw QuantizePlanError(description: "\(job.plan.recipeName) needs calibration data (Hessians, smoothing statistics or static input scales): set calibration.data or --data")
            }
            let set = try CalibrationSet.load(path: data, samples: job.calibration.samples, seqLen: job.calibration.seqLen,
                                              seed: job.calibration.seed, sampler: job.calibration.sampler, tokenizer: job.bundle.tokenizer, communicator: comm)
            report.calibrationWindows = set.windows.count
            report.calibrationSeqLen = job.calibration.seqLen
            calibrationTokens = set.windows.reduce(0) { $0 + $1.count }
            let embedding = try job.bundle.weights.tensor("model.embed_tokens.weight", expectedShape: [config.vocabSize, config.hiddenSize])
            activations = set.share(rank: comm.rank, size: comm.size).map { LlamaModel.embed($0, table: embedding) }
        }
        report.seconds["calibration_setup"] = Date().timeIntervalSince(setupStart)
        let globalTokens = report.calibrationWindows * report.calibrationSeqLen

        // Without a forward pass nothing flows between blocks: deal the whole model at once.
        if !needsCalibration {
            try CalibrationFreeQuantizer.run(job, folder: progressFolder, report: &report, timers: &timers, communicator: comm, log: log)
        }
        let progress = ProgressReporter(label: "quantize: block", total: config.numHiddenLayers,
                                        unit: "tokens", enabled: comm.isMain)
        for b in 0..<config.numHiddenLayers where needsCalibration {
            let original = try LlamaBlockWeights.load(block: b, from: job.bundle.weights, config: config)
            var weights = original
            if b < progressFolder.completedBlocks {
                // Recorded already: take its linears from the staging folder and only re-forward.
                let t0 = Date()
                let record = try progressFolder.record(b)
                for file in record.files {
                    for l in try progressFolder.readLinears(file: file) {
                        let suffix = String(l.weights.name.dropFirst("model.layers.\(b).".count))
                        weights.linears = [suffix: LinearLayer(weight: l.weights.dequantize(), bias: l.weights.bias,
                                                               inputQuantizer: l.input?.inputQuantizer)]
                    }
                }
                if let floatFile = record.floatFile {
                    weights = try applyFloatTensors(try progressFolder.readFloatTensors(file: floatFile), block: b, to: weights)
                }
                report.layers += record.layers
                report.smoothing += record.smoothing
                timers.io += Date().timeIntervalSince(t0)
            } else {
                let (solved, prunedFloat, decisions) = try quantizeBlock(b, original: original, weights: &weights, job: job, activations: &activations,
                                                            calibrationTokens: calibrationTokens, windows: report.calibrationWindows,
                                                            rotary: rotary, timers: &timers, communicator: comm)
                let t0 = Date()
                let mine = solved.filter { $0.writer == comm.rank }.map { StagedLinear(weights: $0.linear.weights, input: $0.input) }
                let file = try progressFolder.writeLinears(mine, block: b, rank: comm.rank)
                let files = try comm.allgatherStrings(file ?? "").filter { !$0.isEmpty }
                let layers = (solved.map(\.linear.report) + prunedFloat).sorted { QuantizedCheckpointTensors.naturalOrder($0.name, $1.name) }
                let smoothing = decisions.map(\.jsonValue)
                if comm.isMain {
                    let floatFile = try progressFolder.writeFloatTensors(changedFloatTensors(original, weights, block: b, plan: job.plan), block: b)
                    try progressFolder.recordBlock(b, files: files, layers: layers, floatFile: floatFile, smoothing: smoothing)
                }
                report.layers += layers
                report.smoothing += smoothing
                timers.io += Date().timeIntervalSince(t0)
            }
            if b < progressFolder.completedBlocks {
                // A resumed block only propagates (the staged forward chains to the same result).
                let t0 = Date()
                activations = propagate(activations, block: LlamaBlock(index: b, weights: job.sequential == .none ? original : weights,
                                                                       config: config, rotary: rotary))
                timers.forward += Date().timeIntervalSince(t0)
            }
            timers.sampleMemory()
            progress.update(done: b + 1, work: (b + 1) * globalTokens)
            if let stop = job.stopAfterBlock, b >= stop, b >= progressFolder.completedBlocks {
                try comm.barrier()
                throw StoppedAfterBlock(block: b, staging: progressFolder.staging.path)
            }
        }
        report.seconds["forward"] = timers.forward
        report.seconds["solve"] = timers.solve
        report.seconds["collectives"] = timers.collectives

        let writeStart = Date()
        report.perRank = try timers.gathered(communicator: comm)
        report.peakResidentBytesPerRank = try comm.allgather([ProcessMemory.peakResidentBytes ?? 0])
        report.peakAnonymousBytesPerRank = try comm.allgather([timers.peakPrivateBytes])
        report.seconds["total"] = Date().timeIntervalSince(start)
        try job.format.row.writeOutput(job: job, progress: progressFolder, report: report, communicator: comm)
        if comm.isMain { QuantizeProgressFolder.removeLock(output: job.output) }
        report.seconds["write"] = Date().timeIntervalSince(writeStart)
        report.seconds["total"] = Date().timeIntervalSince(start)
        return report
    }

    /// The allocation of `budget` for `job` (the sensitivity pass), the same on every rank.
    public static func planBudget(_ job: Job, budget: QuantizationBudget, communicator comm: any Communicator,
                                  log: (String) -> Void) throws -> BudgetPlan {
        try checkCalibrationMemory(job, communicator: comm)
        return try BudgetSensitivity.plan(job, budget: budget, communicator: comm, log: log)
    }

    /// Refuses, before anything is loaded, a calibration set whose activations cannot fit: each
    /// rank holds its windows' residual stream plus one stage's pending tensor (at most the MLP
    /// activation) and the window tokens, and with a smoothing the search's copies too. The limit is this node's memory shared by its ranks.
    static func checkCalibrationMemory(_ job: Job, communicator comm: any Communicator) throws {
        let config = job.bundle.config
        let windows = (job.calibration.samples + comm.size - 1) / comm.size
        var perToken = 4 * (config.hiddenSize + max(config.hiddenSize, config.intermediateSize)) + 8
        // A smoothing search also holds its own staged forward, the group's inputs and the
        // parent's reference outputs.
        if !job.plan.smoothings.isEmpty { perToken += 4 * (3 * config.hiddenSize + 2 * max(config.hiddenSize, config.intermediateSize)) }
        let (needed, overflow) = windows.multipliedReportingOverflow(by: job.calibration.seqLen * perToken)
        let available = Int(ProcessInfo.processInfo.physicalMemory) / max(comm.ranksOnNode, 1)
        if overflow || needed > available {
            let gib = { (b: Int) in String(format: "%.1f GiB", Double(b) / Double(1 << 30)) }
            throw QuantizePlanError(description:
                "calibration: \(job.calibration.samples) samples × \(job.calibration.seqLen) tokens need about \(overflow ? "more than 2^63 bytes" : gib(needed)) of activations per rank (\(windows) windows on each of \(comm.size) ranks), but a rank has \(gib(available)) here; lower --samples or --seq-len, or use more nodes")
        }
    }

    /// A solved linear, its input parameters (W8A8) and the rank that writes it.
    struct BlockLinear {
        var linear: QuantizedLinearExchange.SolvedLinear
        var input: InputActivationParameters?
        var writer: Int
    }

    /// The next block's inputs: `block` applied to every window.
    static func propagate(_ activations: [Tensor], block: LlamaBlock) -> [Tensor] {
        var cache: KVCache? = nil
        var none: (any BlockInputObserver)? = nil
        return activations.map { block.forward($0, cache: &cache, observer: &none) }
    }

    /// Calibrates (stage by stage), solves this rank's share, exchanges the results and
    /// propagates: leaves `weights` holding the dequantized linears on every rank and
    /// `activations` holding the next block's inputs.
    ///
    /// Every mode calibrates through the staged forward (`LinearStageCalibration`), which holds
    /// each group's inputs for the statistics passes. `sequential: linear` quantizes group by
    /// group, each stage seeing the earlier groups quantized, and its last stage's state is the
    /// next block's input; `block` observes all four groups with the original weights, solves
    /// them together and propagates through the quantized block; `none` propagates through the
    /// original block.
    static func quantizeBlock(_ b: Int, original: LlamaBlockWeights, weights: inout LlamaBlockWeights, job: Job,
                              activations: inout [Tensor], calibrationTokens: Int, windows: Int, rotary: RotaryEmbedding,
                              timers: inout RankTimers, communicator comm: any Communicator) throws
        -> (linears: [BlockLinear], prunedFloat: [QuantizationReport.Layer], smoothing: [SmoothingDecision])
    {
        let config = job.bundle.config
        let usesHessians = job.plan.needsHessians
        // Transform: fold the recipe's smoothings into the float block first; everything after
        // calibrates and solves the smoothed block (the same function).
        let ts = Date()
        let decisions = try smoothBlock(b, weights: &weights, job: job, activations: activations, windows: windows,
                                        rotary: rotary, communicator: comm)
        timers.forward += Date().timeIntervalSince(ts)
        let entries = job.plan.entries(inBlock: b)
        let prunedFloat = job.plan.prunedFloat(inBlock: b)
        let floatBits = 8 * DType.modelDType(torchDtype: config.torchDtype).byteSize
        var prunedReports: [QuantizationReport.Layer] = []
        let linearMode = job.sequential == .linear
        let stages: [[LinearGroup]] = linearMode ? LinearGroup.allCases.map { [$0] } : [LinearGroup.allCases]
        var calibration = LinearStageCalibration(activations: activations)
        // `block` and `none` propagate from the block's inputs; `linear` carries them staged.
        let blockInputs = linearMode ? [] : activations
        activations = []
        var out: [BlockLinear] = []
        for stage in stages {
            let stageEntries = entries.values.filter { LinearGroup.containing($0.suffix).map(stage.contains) ?? false }
                .sorted { $0.suffix < $1.suffix }
            let stagePruned = prunedFloat.values.filter { LinearGroup.containing($0.suffix).map(stage.contains) ?? false }
                .sorted { $0.suffix < $1.suffix }
            let pruneAssignment = SolveAssignment(linears: stagePruned.map { .init(name: $0.name, rows: $0.outFeatures, columns: $0.inFeatures,
                                                                                  splittable: job.plan.pruning?.rowsAreIndependent ?? true) },
                                                  ranks: comm.size, costModel: .hessianSolve)
            // A per-tensor scale (or a double-quantized absmax, whose offset is the whole weight's
            // mean) belongs to the whole weight: such a linear is never split by rows.
            let assignment = SolveAssignment(linears: stageEntries.map { .init(name: $0.name, rows: $0.outFeatures, columns: $0.inFeatures,
                                                                               splittable: $0.args.strategy != .tensor && !$0.args.doubleQuantize
                                                                                   && job.plan.solver.rowsAreIndependent
                                                                                   && !($0.pruned && job.plan.pruning?.rowsAreIndependent == false)) },
                                             ranks: comm.size, costModel: usesHessians ? .hessianSolve : .elementwise)
            var hessians: [LinearGroup: Tensor] = [:]
            let tf = Date()
            let block = LlamaBlock(index: b, weights: weights, config: config, rotary: rotary)
            let statistics = try collectStatistics(stage: stage, entries: stageEntries, prunedFloat: stagePruned, calibration: &calibration, block: block,
                                                   carryThroughStage: linearMode, usesHessians: usesHessians,
                                                   calibrationTokens: calibrationTokens, communicator: comm)
            timers.forward += Date().timeIntervalSince(tf)
            timers.sampleMemory()
            guard !stageEntries.isEmpty || !stagePruned.isEmpty else { continue }
            let tc = Date()
            if usesHessians {
                let owners = Dictionary(grouping: stageEntries.map(\.suffix) + stagePruned.map(\.suffix)) { LinearGroup.containing($0)! }
                    .mapValues { members in
                        Array(Set(members.flatMap { assignment.owners(of: "model.layers.\(b).\($0)") + pruneAssignment.owners(of: "model.layers.\(b).\($0)") })).sorted()
                    }
                hessians = try HessianExchange.deliver(statistics.hessians, to: owners, communicator: comm)
            }
            var ranges = statistics.ranges
            try ranges.combine(communicator: comm)
            timers.collectives += Date().timeIntervalSince(tc)
            if let f = job.injectedFailure, f.rank == comm.rank, f.block == b {
                throw QuantizePlanError(description: "injected failure in block \(b) (--inject-failure)")
            }
            let inputs = try ActivationCalibration.parameters(for: stageEntries, ranges: ranges)
            let t0 = Date()
            var mine: [QuantizedLinearExchange.SolvedPiece] = []
            for item in assignment.items(of: comm.rank) {
                let entry = stageEntries.first { $0.name == item.name }!
                let layer = weights.linears[entry.suffix]!
                let rows = item.rows.count == layer.outFeatures ? layer.weight : layer.weight.rows(item.rows)
                mine.append(try solve(rows, item: item, entry: entry, hessian: hessians[LinearGroup.containing(entry.suffix)!], plan: job.plan))
            }
            var myPruned: [PrunedFloatLinears.Piece] = []
            for item in pruneAssignment.items(of: comm.rank) {
                let suffix = String(item.name.dropFirst("model.layers.\(b).".count))
                guard let layer = weights.linears[suffix], let group = LinearGroup.containing(suffix) else { continue }
                let rows = item.rows.count == layer.outFeatures ? layer.weight : layer.weight.rows(item.rows)
                myPruned.append(try PrunedFloatLinears.prune(rows, item: item, hessian: hessians[group], plan: job.plan))
            }
            timers.solve += Date().timeIntervalSince(t0)
            let t1 = Date()
            let pruned = try PrunedFloatLinears.share(myPruned, assignment: pruneAssignment, bits: floatBits, communicator: comm)
            let linears = try QuantizedLinearExchange.share(mine, assignment: assignment, template: { name in
                let e = stageEntries.first { $0.name == name }!
                return .init(entry: e, bias: weights.linears[e.suffix]!.bias, kind: usesHessians ? "output" : "weight")
            }, communicator: comm)
            timers.collectives += Date().timeIntervalSince(t1)
            for linear in stagePruned {
                guard let solved = pruned[linear.name], let layer = weights.linears[linear.suffix] else { continue }
                weights.linears = [linear.suffix: LinearLayer(weight: solved.weight, bias: layer.bias, inputQuantizer: layer.inputQuantizer)]
                prunedReports.append(solved.report)
            }
            for entry in stageEntries {
                let solved = linears[entry.name]!
                let input = inputs[entry.name]
                weights.linears = [entry.suffix: LinearLayer(weight: solved.weights.dequantize(), bias: solved.weights.bias,
                                                             inputQuantizer: input?.inputQuantizer)]
                out.append(BlockLinear(linear: solved, input: input, writer: assignment.writer(of: entry.name)))
            }
        }
        // Propagate: the next block sees this block's quantized outputs (or the original
        // model's, for `sequential: none`).
        let t0 = Date()
        if linearMode {
            activations = calibration.finish(block: LlamaBlock(index: b, weights: weights, config: config, rotary: rotary))
        } else {
            activations = propagate(blockInputs, block: LlamaBlock(index: b, weights: job.sequential == .none ? original : weights,
                                                                   config: config, rotary: rotary))
        }
        timers.forward += Date().timeIntervalSince(t0)
        return (out, prunedReports, decisions)
    }

    /// One work item (some rows of a linear): GPTQ with its Hessian, or round-to-nearest; with
    /// its stored form and the error statistics of its report line.
    static func solve(_ w: Tensor, item: SolveAssignment.Item, entry: QuantizationPlan.Entry, hessian: Tensor?, plan: QuantizationPlan) throws
        -> QuantizedLinearExchange.SolvedPiece
    {
        let t0 = Date()
        var pruned = w
        if entry.pruned, let pruning = plan.pruning, !plan.solver.prunesWhileSolving {
            guard let hessian else { throw QuantizePlanError(description: "\(entry.name): \(pruning.name) needs the calibration Hessian") }
            pruned = try pruning.prune(w, hessian: hessian)
        }
        let stored: QuantizedLinearWeights, loss: Double?
        var referenceError: Double? = nil
        if let type = entry.ggmlType {
            // GGUF: llama.cpp's block type, scales from its encoder (with the linear's importance).
            let importance = plan.gguf?.importance(forLinear: entry.name, hessian: hessian)
            let r = try plan.solver.solveGGML(pruned, hessian: hessian, type: type,
                                              importance: importance,
                                              actOrder: entry.args.actorder != nil, scales: plan.gguf?.scales ?? .original)
            stored = try QuantizedLinearWeights(name: entry.name, inFeatures: w.columns, outFeatures: w.rows, ggml: .init(type: type, bytes: r.bytes))
            loss = r.loss
            if let hessian, plan.solver.needsHessian {
                // llama.cpp's own encoding of the same rows, scored on the same inputs.
                let reference = try RoundToNearestSolver().solveGGML(w, hessian: nil, type: type, importance: importance, actOrder: false, scales: .original)
                referenceError = quadratic(w - Tensor(shape: [w.rows, w.columns], scalars: type.dequantize(reference.bytes)), hessian)
            }
        } else {
            let (result, l) = try plan.solver.solve(pruned, hessian: hessian, args: entry.args, keepingZeros: entry.pruned)
            stored = try QuantizedLinearWeights(quantizedWeight: result, name: entry.name, bias: nil,
                                                fractionalZeros: plan.solver.producesFractionalZeroPoints)
            loss = l
        }
        // What every rank will run with: the stored form dequantized (so results cannot depend
        // on which rank solved a linear).
        let dequantized = stored.dequantize()
        if entry.pruned, let pruning = plan.pruning { try pruning.checkPattern(dequantized, name: entry.name) }
        let e = w - dequantized
        let errorQuadratic: Double, weightQuadratic: Double
        if let hessian {
            (errorQuadratic, weightQuadratic) = (quadratic(e, hessian), quadratic(w, hessian))
        } else {
            errorQuadratic = e.scalars.reduce(0) { $0 + Double($1 * $1) }
            weightQuadratic = w.scalars.reduce(0) { $0 + Double($1 * $1) }
        }
        return .init(item: item, weights: stored, gptqLoss: loss, errorQuadratic: errorQuadratic, weightQuadratic: weightQuadratic,
                     seconds: Date().timeIntervalSince(t0),
                     zeros: entry.pruned ? dequantized.scalars.reduce(0) { $0 + ($1 == 0 ? 1 : 0) } : nil,
                     referenceErrorQuadratic: referenceError)
    }

    /// Σ_ij (A·H)_ij · A_ij = tr(A H Aᵀ), in Double; with `rowWeights`, Σ_i w_i·(A H Aᵀ)_ii (a
    /// budget's Fisher-weighted error).
    static func quadratic(_ a: Tensor, _ h: Tensor, rowWeights: [Double]? = nil) -> Double {
        let ah = Tensor.matmul(a, h)
        var s = 0.0
        guard let rowWeights else {
            for i in 0..<a.count { s += Double(ah.scalars[i]) * Double(a.scalars[i]) }
            return s
        }
        for r in 0..<a.rows {
            var row = 0.0
            for c in 0..<a.columns { row += Double(ah.scalars[r * a.columns + c]) * Double(a.scalars[r * a.columns + c]) }
            s += rowWeights[r] * row
        }
        return s
    }
}
