import Foundation
import QDistIO
import QDistModel
import QDistQuant
import QDistTrain

/// What the command line may override in a finetune config (nil: keep the file's value).
public struct FinetuneOverrides: Sendable {
    public var model: String?
    public var output: String?
    public var data: String?
    public var zeroStage: Int?
    public var steps: Int?
    /// End this invocation after this many completed steps (a checkpoint is written), as a job
    /// with a time limit would; running again resumes.
    public var stopAfter: Int?
    /// Start afresh, deleting the output folder (its checkpoints and adapter).
    public var overwrite = false

    public init(model: String? = nil, output: String? = nil, data: String? = nil, zeroStage: Int? = nil, steps: Int? = nil,
                stopAfter: Int? = nil, overwrite: Bool = false) {
        self.model = model
        self.output = output
        self.data = data
        self.zeroStage = zeroStage
        self.steps = steps
        self.stopAfter = stopAfter
        self.overwrite = overwrite
    }
}

/// Why a finetune job was refused before it started; the message names the file or flag.
public struct FinetuneSetupError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A checked `qdist finetune` job: the config file with the flags applied, paths resolved and
/// every input problem (bad key, missing model or data, impossible sizes) found before any
/// computation or output.
public struct FinetuneJob: Sendable {
    public var config: FinetuneJobConfig
    public var configName: String
    public var modelPath: String
    public var output: URL
    public var dataPath: String
    /// The files and folders the run reads: its output must keep clear of them.
    public var inputs: [URL] { [modelPath, dataPath].map { URL(fileURLWithPath: $0) } }
    public var lora: LoRAConfig
    public var zeroStage: ZeROStage
    public var stopAfter: Int?
    public var overwrite: Bool

    public static func resolve(configPath: String, overrides o: FinetuneOverrides) throws -> FinetuneJob {
        var config = try FinetuneJobConfig.load(URL(fileURLWithPath: configPath))
        if let steps = o.steps {
            guard steps >= 1 else { throw FinetuneSetupError("--steps must be at least 1") }
            config.steps = steps
        }
        if let stage = o.zeroStage {
            guard (0...3).contains(stage) else { throw FinetuneSetupError("--zero-stage must be 0, 1, 2 or 3") }
            config.zeroOptimization.stage = stage
        }
        if let stop = o.stopAfter, stop < 1 { throw FinetuneSetupError("--stop-after must be at least 1") }
        guard let model = (o.model ?? config.model).map(expand) else {
            throw FinetuneSetupError("\(configPath): no model (set model: in the config or pass --model)")
        }
        guard let output = (o.output ?? config.output).map(expand) else {
            throw FinetuneSetupError("\(configPath): no output (set output: in the config or pass --output)")
        }
        guard let data = (o.data ?? config.data).map(expand) else {
            throw FinetuneSetupError("\(configPath): no data (set data: in the config or pass --data)")
        }
        guard FileManager.default.fileExists(atPath: model) else { throw FinetuneSetupError("\(model): model not found") }
        guard FileManager.default.fileExists(atPath: data) else { throw FinetuneSetupError("\(data): training data not found") }
        let lora: LoRAConfig
        do { lora = try config.lora.config() } catch { throw FinetuneSetupError("\(configPath): lora: \(error)") }
        return FinetuneJob(config: config, configName: URL(fileURLWithPath: configPath).lastPathComponent, modelPath: model,
                           output: URL(fileURLWithPath: output), dataPath: data, lora: lora,
                           zeroStage: ZeROStage(rawValue: config.zeroOptimization.stage)!, stopAfter: o.stopAfter,
                           overwrite: o.overwrite)
    }

    /// `~/x` → the home folder's `x`.
    static func expand(_ path: String) -> String {
        path.hasPrefix("~/") ? FileManager.default.homeDirectoryForCurrentUser.path + String(path.dropFirst(1)) : path
    }

    /// The optimizer settings for `examples` examples on `ranks` ranks.
    func settings(exampleCount: Int, ranks: Int) -> TrainerSettings {
        let c = config
        return TrainerSettings(
            zeroStage: zeroStage,
            schedule: LearningRateSchedule(peakLearningRate: c.learningRate, warmupSteps: c.warmupSteps, totalSteps: c.steps),
            adamW: AdamWHyperparameters(beta1: c.adamBeta1, beta2: c.adamBeta2, epsilon: c.adamEpsilon, weightDecay: c.weightDecay),
            maxGradNorm: c.maxGradNorm > 0 ? c.maxGradNorm : nil, microBatchSize: c.microBatchSize,
            batches: BatchSchedule(exampleCount: exampleCount, globalBatchSize: c.globalBatch(ranks: ranks), seed: c.seed))
    }

    /// The per-rank memory `qdist memory --train` predicts for this job's base format.
    func predictedMemory(_ model: ModelConfiguration, ranks: Int) -> FinetuneRankMemory {
        let linears = model.linearLayers
        let summary = ModelParameterSummary(total: Double(model.parameterCount),
                                            linear: Double(linears.reduce(0) { $0 + $1.inFeatures * $1.outFeatures }),
                                            linearShapes: linears.map { ($0.inFeatures, $0.outFeatures) })
        let layout = TrainableParameterLayout(config: model, lora: lora)
        let shape = LoRAShapeSummary(rank: lora.rank, parameters: Double(layout.count),
                                     inputFeaturesPerLayer: lora.targets.reduce(0) { $0 + $1.features(model).inFeatures },
                                     targetsPerLayer: lora.targets.count, dropout: lora.dropout > 0)
        let fp32 = NumberFormat.named("fp32")!
        let base: NumberFormat
        switch config.baseQuantType {
        case .nf4: base = NumberFormat.named("nf4_dq")!
        case .fp4: base = NumberFormat.named("fp4_dq") ?? NumberFormat.named("nf4_dq")!  // same layout as NF4
        case .fp32: base = fp32
        }
        return MemoryEstimator.finetune(summary, config: model, lora: shape, microBatchSize: config.microBatchSize,
                                        seqLen: config.seqLen, zeroStage: zeroStage.rawValue, worldSize: ranks,
                                        baseFormat: base, keptFormat: fp32)
    }
}
