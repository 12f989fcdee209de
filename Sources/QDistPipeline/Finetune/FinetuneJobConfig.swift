import Foundation
import QDistModel

/// A `qdist finetune` job as its YAML file states it. Keys are named as the libraries people
/// know name them: PEFT's LoraConfig under `lora:` (r, lora_alpha, lora_dropout,
/// target_modules, use_rslora), DeepSpeed's `zero_optimization.stage`, HF TrainingArguments'
/// learning_rate, warmup_steps, weight_decay, max_grad_norm, adam_beta1/2, adam_epsilon, seed,
/// save_steps, gradient_accumulation_steps.
///
/// ```yaml
/// model: ~/.cache/qdist/smollm2-135m-instruct
/// output: out/smollm2-qlora
/// data: ../shared/data/wikitext-2/valid.txt   # .txt, or .jsonl with text | prompt+completion
/// seq_len: 256
/// micro_batch_size: 2          # sequences per forward/backward on one rank
/// global_batch_size: 8         # sequences per optimizer step, over all ranks (fixed for any P)
/// steps: 100
/// learning_rate: 2.0e-4
/// warmup_steps: 10             # then cosine decay to 0 at `steps`
/// lora: {r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: [q_proj, v_proj]}
/// zero_optimization: {stage: 3}
/// bnb_4bit_quant_type: nf4     # the frozen base: nf4 (default, double-quantized), fp4 or fp32
/// ```
/// Without `global_batch_size` the global batch is DeepSpeed's
/// micro_batch_size × gradient_accumulation_steps × ranks. Every key is checked: an unknown
/// one is an error naming the file, line and key.
public struct FinetuneJobConfig: Decodable, Sendable, Equatable {
    public var model: String?
    public var output: String?
    public var data: String?
    public var seqLen: Int = 512
    public var microBatchSize: Int = 1
    public var gradientAccumulationSteps: Int?
    public var globalBatchSize: Int?
    public var steps: Int = 100
    public var learningRate: Double = 2e-4
    public var warmupSteps: Int = 0
    public var weightDecay: Double = 0
    public var maxGradNorm: Double = 1
    public var adamBeta1: Double = 0.9
    public var adamBeta2: Double = 0.999
    public var adamEpsilon: Double = 1e-8
    public var seed: UInt64 = 0
    /// Checkpoint every this many steps (0: only when a run stops early).
    public var saveSteps: Int = 0
    public var lora = LoRASection()
    public var zeroOptimization = ZeROSection()
    /// The frozen base's decoder linears, as bitsandbytes' `bnb_4bit_quant_type` names them:
    /// `nf4` (QLoRA, double-quantized absmax), `fp4`, or `fp32` to keep them unquantized.
    public var baseQuantType: BaseQuantType = .nf4

    /// How the frozen base's decoder linears are stored during training.
    public enum BaseQuantType: String, Decodable, Sendable, Equatable { case nf4, fp4, fp32 }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, output, data, seqLen = "seq_len", microBatchSize = "micro_batch_size"
        case gradientAccumulationSteps = "gradient_accumulation_steps", globalBatchSize = "global_batch_size"
        case steps, learningRate = "learning_rate", warmupSteps = "warmup_steps", weightDecay = "weight_decay"
        case maxGradNorm = "max_grad_norm", adamBeta1 = "adam_beta1", adamBeta2 = "adam_beta2", adamEpsilon = "adam_epsilon"
        case seed, saveSteps = "save_steps", lora, zeroOptimization = "zero_optimization", baseQuantType = "bnb_4bit_quant_type"
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        output = try c.decodeIfPresent(String.self, forKey: .output)
        data = try c.decodeIfPresent(String.self, forKey: .data)
        seqLen = try c.decodeIfPresent(Int.self, forKey: .seqLen) ?? seqLen
        microBatchSize = try c.decodeIfPresent(Int.self, forKey: .microBatchSize) ?? microBatchSize
        gradientAccumulationSteps = try c.decodeIfPresent(Int.self, forKey: .gradientAccumulationSteps)
        globalBatchSize = try c.decodeIfPresent(Int.self, forKey: .globalBatchSize)
        steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? steps
        learningRate = try c.decodeIfPresent(Double.self, forKey: .learningRate) ?? learningRate
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps) ?? warmupSteps
        weightDecay = try c.decodeIfPresent(Double.self, forKey: .weightDecay) ?? weightDecay
        maxGradNorm = try c.decodeIfPresent(Double.self, forKey: .maxGradNorm) ?? maxGradNorm
        adamBeta1 = try c.decodeIfPresent(Double.self, forKey: .adamBeta1) ?? adamBeta1
        adamBeta2 = try c.decodeIfPresent(Double.self, forKey: .adamBeta2) ?? adamBeta2
        adamEpsilon = try c.decodeIfPresent(Double.self, forKey: .adamEpsilon) ?? adamEpsilon
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? seed
        saveSteps = try c.decodeIfPresent(Int.self, forKey: .saveSteps) ?? saveSteps
        lora = try c.decodeIfPresent(LoRASection.self, forKey: .lora) ?? lora
        zeroOptimization = try c.decodeIfPresent(ZeROSection.self, forKey: .zeroOptimization) ?? zeroOptimization
        baseQuantType = try c.decodeIfPresent(BaseQuantType.self, forKey: .baseQuantType) ?? baseQuantType
        func require(_ ok: Bool, _ key: CodingKeys, _ message: String) throws {
            if !ok { throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [key], debugDescription: message)) }
        }
        try require(seqLen >= 2, .seqLen, "must be at least 2")
        try require(microBatchSize >= 1, .microBatchSize, "must be at least 1")
        try require((gradientAccumulationSteps ?? 1) >= 1, .gradientAccumulationSteps, "must be at least 1")
        try require((globalBatchSize ?? 1) >= 1, .globalBatchSize, "must be at least 1")
        try require(globalBatchSize == nil || gradientAccumulationSteps == nil, .gradientAccumulationSteps,
                    "give global_batch_size or gradient_accumulation_steps, not both")
        try require(steps >= 1, .steps, "must be at least 1")
        try require(learningRate >= 0, .learningRate, "must not be negative")
        try require(warmupSteps >= 0, .warmupSteps, "must not be negative")
        try require(maxGradNorm >= 0, .maxGradNorm, "must not be negative (0 turns clipping off)")
        try require((0..<1).contains(adamBeta1), .adamBeta1, "must be in [0, 1)")
        try require((0..<1).contains(adamBeta2), .adamBeta2, "must be in [0, 1)")
        try require(saveSteps >= 0, .saveSteps, "must not be negative")
    }

    /// Sequences per optimizer step over `ranks` ranks.
    public func globalBatch(ranks: Int) -> Int {
        globalBatchSize ?? microBatchSize * (gradientAccumulationSteps ?? 1) * ranks
    }

    /// Reads and strictly decodes a job file.
    public static func load(_ url: URL) throws -> FinetuneJobConfig {
        try StrictYAML.decode(FinetuneJobConfig.self, contentsOf: url)
    }
}

/// `lora:`: PEFT's LoraConfig keys for the adapters.
public struct LoRASection: Decodable, Sendable, Equatable {
    public var r = 8
    public var loraAlpha: Double = 8
    public var loraDropout: Double = 0
    public var targetModules = ["q_proj", "v_proj"]
    public var useRSLoRA = false

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case r, loraAlpha = "lora_alpha", loraDropout = "lora_dropout", targetModules = "target_modules", useRSLoRA = "use_rslora"
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        r = try c.decodeIfPresent(Int.self, forKey: .r) ?? r
        loraAlpha = try c.decodeIfPresent(Double.self, forKey: .loraAlpha) ?? loraAlpha
        loraDropout = try c.decodeIfPresent(Double.self, forKey: .loraDropout) ?? loraDropout
        if let single = try? c.decode(String.self, forKey: .targetModules) {
            targetModules = [single]  // PEFT's "all-linear"
        } else {
            targetModules = try c.decodeIfPresent([String].self, forKey: .targetModules) ?? targetModules
        }
        useRSLoRA = try c.decodeIfPresent(Bool.self, forKey: .useRSLoRA) ?? useRSLoRA
        do {
            _ = try config()
        } catch let error as LoRAConfigError {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: error.description))
        }
    }

    /// The model-side LoRA configuration.
    public func config() throws -> LoRAConfig {
        try LoRAConfig(rank: r, alpha: loraAlpha, dropout: loraDropout, targetModules: targetModules, useRSLoRA: useRSLoRA)
    }
}

/// `zero_optimization:`: DeepSpeed's key for the ZeRO stage.
public struct ZeROSection: Decodable, Sendable, Equatable {
    public var stage = 0

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable { case stage }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        stage = try c.decodeIfPresent(Int.self, forKey: .stage) ?? stage
        if !(0...3).contains(stage) {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.stage], debugDescription: "must be 0, 1, 2 or 3"))
        }
    }
}
