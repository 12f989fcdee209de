import Foundation
import QDistComm
import QDistIO
import QDistModel
import QDistTrain

/// What a finetune run did: the losses of the steps it took, speed, and per-rank memory.
public struct FinetuneReport: Sendable {
    /// Steps already done when this invocation started (0, or a checkpoint's step).
    public var startStep: Int
    /// Every step this invocation took, in order.
    public var steps: [TrainingStepResult]
    public var totalSteps: Int
    /// True when `--stop-after` ended the run before `totalSteps` (no adapter yet).
    public var stoppedEarly: Bool
    public var seconds: Double
    public var tokensPerSecond: Double
    public var zeroStage: ZeROStage
    public var worldSize: Int
    public var trainableParameters: Int
    public var examples: Int
    public var globalBatchSize: Int
    /// Measured per rank (activations: the estimate), in rank order.
    public var memoryByRank: [FinetuneRankMemory]
    /// Peak resident set size per rank, bytes (includes the load, when each rank maps the
    /// whole checkpoint).
    public var peakResidentBytesByRank: [Double]
    /// Resident set size per rank at the end of training, bytes.
    public var residentBytesByRank: [Double]
    /// What `qdist memory --train` predicts per rank for this job.
    public var predictedMemory: FinetuneRankMemory
    public var output: URL

    public var jsonValue: JSONValue {
        func memory(_ m: FinetuneRankMemory) -> JSONValue {
            .object(m.categories.map { ($0.name, .number($0.bytes)) } + [("total", .number(m.total))])
        }
        return .object([
            ("output", .string(output.path)), ("zero_stage", .integer(zeroStage.rawValue)), ("world_size", .integer(worldSize)),
            ("start_step", .integer(startStep)), ("total_steps", .integer(totalSteps)), ("stopped_early", .bool(stoppedEarly)),
            ("losses", .array(steps.map { .number($0.loss) })),
            ("learning_rates", .array(steps.map { .number($0.learningRate) })),
            ("gradient_norms", .array(steps.map { .number($0.gradientNorm) })),
            ("seconds", .number(seconds)), ("tokens_per_second", .number(tokensPerSecond)),
            ("trainable_parameters", .integer(trainableParameters)), ("examples", .integer(examples)),
            ("global_batch_size", .integer(globalBatchSize)),
            ("memory_per_rank", .array(memoryByRank.indices.map { r in
                var fields = memory(memoryByRank[r]).objectValue!
                fields.append(("peak_rss", .number(peakResidentBytesByRank[r])))
                fields.append(("rss", .number(residentBytesByRank[r])))
                return .object(fields)
            })),
            ("predicted_memory_per_rank", memory(predictedMemory)),
        ])
    }
}

/// Runs a finetune job on every rank: data, frozen base and trainer set up, resume from the
/// last checkpoint in the output folder, the step loop with progress and checkpoints, and the
/// PEFT adapter written by rank 0 at the end.
public enum FinetuneRun {
    public static func run(_ job: FinetuneJob, communicator comm: any Communicator,
                           log: (String) -> Void) throws -> FinetuneReport {
        try checkMemory(job, communicator: comm)
        try prepareOutput(job, communicator: comm)
        do {
            return try train(job, communicator: comm, log: log)
        } catch {
            // A run that failed before writing anything leaves no folder holding only the marker.
            if comm.isMain, let contents = try? FileManager.default.contentsOfDirectory(atPath: job.output.path),
               contents == [OutputFolderGuard.markerName] {
                try? FileManager.default.removeItem(at: job.output)
            }
            throw error
        }
    }

    /// Refuses, before anything is loaded or written, a run whose predicted per-rank memory (what
    /// `qdist memory --train` prints) exceeds this node's memory shared by its ranks.
    static func checkMemory(_ job: FinetuneJob, communicator comm: any Communicator) throws {
        let config = try ModelBundle.open(job.modelPath).config
        let predicted = job.predictedMemory(config, ranks: comm.size)
        let available = Double(ProcessInfo.processInfo.physicalMemory) / Double(max(comm.ranksOnNode, 1))
        guard predicted.total <= available else {
            let gib = { (b: Double) in String(format: "%.1f GiB", b / Double(1 << 30)) }
            throw FinetuneSetupError("\(job.configName): this run needs about \(gib(predicted.total)) per rank (activations \(gib(predicted.activations)), base weights \(gib(predicted.baseWeights)); see qdist memory --train), but a rank has \(gib(available)) here; lower seq_len or micro_batch_size, or use more ranks with --zero-stage 3")
        }
    }

    static func train(_ job: FinetuneJob, communicator comm: any Communicator,
                      log: (String) -> Void) throws -> FinetuneReport {
        let c = job.config
        let (model, examples, frozen) = try loadInputs(job, communicator: comm)
        let graph = LlamaTrainingGraph(config: model, lora: job.lora)
        let settings = job.settings(exampleCount: examples.count, ranks: comm.size)
        let trainer = DataParallelTrainer(
            graph: graph, frozen: frozen, examples: examples, settings: settings,
            initial: TrainableParameters.initialized(config: model, lora: job.lora, seed: c.seed),
            dropoutSeed: c.seed, communicator: comm)
        if let checkpoint = try TrainingCheckpoint.latest(output: job.output) {
            guard checkpoint.seed == c.seed else {
                throw FinetuneSetupError("\(checkpoint.folder.path): written with seed \(checkpoint.seed), the config says \(c.seed) (the data order would change)")
            }
            try checkpoint.restore(into: trainer)
            log("resuming at step \(checkpoint.step) from \(checkpoint.folder.lastPathComponent) (written by \(checkpoint.worldSize) rank\(checkpoint.worldSize == 1 ? "" : "s"))")
        }
        let startStep = trainer.completedSteps
        log("finetune: \(job.configName): \(model.numHiddenLayers) layers, \(frozen.formatName) base, LoRA r=\(job.lora.rank) on \(job.lora.targetModules.joined(separator: ",")) "
            + "(\(graph.layout.count) trainable), \(examples.count) examples of ≤\(c.seqLen) tokens, global batch \(settings.batches.globalBatchSize), "
            + "ZeRO-\(job.zeroStage.rawValue) over \(comm.size) rank\(comm.size == 1 ? "" : "s")")

        var results: [TrainingStepResult] = []
        let start = Date()
        var tokens = 0
        let last = min(c.steps, job.stopAfter ?? c.steps)
        var savedAt = startStep
        while trainer.completedSteps < last {
            let r = try trainer.step()
            results.append(r)
            tokens += r.inputTokens
            let elapsed = Date().timeIntervalSince(start)
            let eta = elapsed / Double(results.count) * Double(last - r.step)
            log(String(format: "step %d/%d  loss %.4f  lr %.3e  grad-norm %.3f  %.0f tokens/s  ETA %.0fs", r.step, c.steps, r.loss,
                       r.learningRate, r.gradientNorm, Double(tokens) / max(elapsed, 1e-9), eta))
            if c.saveSteps > 0 && r.step % c.saveSteps == 0 && r.step < c.steps {
                try TrainingCheckpoint.save(trainer, output: job.output, seed: c.seed, communicator: comm)
                savedAt = r.step
                log("checkpoint at step \(r.step)")
            }
        }
        let seconds = Date().timeIntervalSince(start)
        let stoppedEarly = trainer.completedSteps < c.steps
        if stoppedEarly && savedAt != trainer.completedSteps {
            try TrainingCheckpoint.save(trainer, output: job.output, seed: c.seed, communicator: comm)
            log("checkpoint at step \(trainer.completedSteps); run again to continue")
        }
        if !stoppedEarly {
            let parameters = try trainer.fullParameters()
            if comm.isMain {
                try PEFTAdapterWriter.writeFiles(config: job.lora, layout: parameters.layout, parameters: parameters.values,
                                                 baseModel: job.modelPath, into: job.output)
            }
        }

        let predicted = job.predictedMemory(model, ranks: comm.size)
        let mine = trainer.heldMemory(activations: predicted.activations)
        let rows = try comm.allgatherv(mine.categories.map(\.bytes)
                                       + [Double(ProcessMemory.peakResidentBytes ?? 0), Double(ProcessMemory.residentBytes ?? 0)])
        try comm.barrier()
        return FinetuneReport(
            startStep: startStep, steps: results, totalSteps: c.steps, stoppedEarly: stoppedEarly, seconds: seconds,
            tokensPerSecond: Double(tokens) / max(seconds, 1e-9), zeroStage: job.zeroStage, worldSize: comm.size,
            trainableParameters: graph.layout.count, examples: examples.count, globalBatchSize: settings.batches.globalBatchSize,
            memoryByRank: rows.map { FinetuneRankMemory(baseWeights: $0[0], adapters: $0[1], gradients: $0[2], optimizerState: $0[3], activations: $0[4]) },
            peakResidentBytesByRank: rows.map { $0[5] }, residentBytesByRank: rows.map { $0[6] }, predictedMemory: predicted, output: job.output)
    }

    /// The model's configuration, the training examples and the frozen base. The model bundle
    /// (and its memory-mapped checkpoint) is released on return, so a rank's resident memory
    /// afterwards holds only the base it keeps.
    static func loadInputs(_ job: FinetuneJob, communicator comm: any Communicator) throws
        -> (ModelConfiguration, [TrainingExample], ShardedFrozenBase) {
        let bundle = try ModelBundle.open(job.modelPath)
        let examples = try TrainingExamples.load(path: job.dataPath, seqLen: job.config.seqLen, tokenizer: bundle.tokenizer,
                                                 communicator: comm)
        let codec: any FrozenBlockCodec
        switch job.config.baseQuantType {
        case .nf4: codec = FourBitBlockCodec(config: bundle.config, source: bundle.weights, type: .nf4)
        case .fp4: codec = FourBitBlockCodec(config: bundle.config, source: bundle.weights, type: .fp4)
        case .fp32: codec = Float32BlockCodec(config: bundle.config, source: bundle.weights)
        }
        let frozen = try ShardedFrozenBase(config: bundle.config, source: bundle.weights, codec: codec,
                                           sharded: job.zeroStage.shardsParameters, communicator: comm)
        return (bundle.config, examples, frozen)
    }

    /// Refuses an output that already holds a finished adapter (unless overwriting), and with
    /// `overwrite` clears it on rank 0 while the others wait. Collective.
    static func prepareOutput(_ job: FinetuneJob, communicator comm: any Communicator) throws {
        let adapter = job.output.appendingPathComponent(PEFTAdapterReader.weightsFileName)
        if !job.overwrite && FileManager.default.fileExists(atPath: adapter.path) {
            throw FinetuneSetupError("\(job.output.path): already holds a finished adapter (pass --overwrite to train again)")
        }
        // A folder this run may continue (its checkpoints) or qdist wrote is fine; anything else
        // is refused rather than written into or deleted.
        let exists = FileManager.default.fileExists(atPath: job.output.path)
        try OutputFolderGuard.check(job.output, inputs: job.inputs, overwrite: true)
        try comm.barrier()
        if job.overwrite && comm.isMain && exists {
            try OutputFolderGuard.replace(job.output, overwrite: true)
        }
        if comm.isMain {
            try FileManager.default.createDirectory(at: job.output, withIntermediateDirectories: true)
            try OutputFolderGuard.mark(job.output)
        }
        try comm.barrier()
    }
}
