// Per-rank memory of a QLoRA fine-tuning run by category, predicted from the model's shapes:
// what `qdist memory --train` prints and what `qdist finetune` prints next to its measurements.

import QDistIO
import QDistQuant

/// Bytes one rank of a LoRA fine-tuning run holds, by category.
public struct FinetuneRankMemory: Sendable, Equatable {
    /// The frozen base: every block's linears and norms, the embedding, final norm and head.
    public var baseWeights: Double
    /// The fp32 LoRA parameters this rank keeps between steps.
    public var adapters: Double
    /// The fp32 gradients kept between the backward and the optimizer step, with the exact
    /// fixed-point sum they are made from (`FixedPointLimbs`: 24 bytes per gradient).
    public var gradients: Double
    /// AdamW's fp32 m and v.
    public var optimizerState: Double
    /// Activations of one micro-batch under per-block gradient checkpointing, plus the step's
    /// transient buffers (logit chunk; the backward's full-size gradient scratch;
    /// under ZeRO-3 one gathered block and the gathered embedding).
    public var activations: Double

    public init(baseWeights: Double, adapters: Double, gradients: Double, optimizerState: Double, activations: Double) {
        self.baseWeights = baseWeights
        self.adapters = adapters
        self.gradients = gradients
        self.optimizerState = optimizerState
        self.activations = activations
    }

    public var total: Double { baseWeights + adapters + gradients + optimizerState + activations }

    /// The categories in report order, with the names `--json` output uses.
    public var categories: [(name: String, bytes: Double)] {
        [("base_weights", baseWeights), ("adapters", adapters), ("gradients", gradients),
         ("optimizer_state", optimizerState), ("activations", activations)]
    }
}

/// What the LoRA part of a run looks like, for the memory prediction.
public struct LoRAShapeSummary: Sendable, Equatable {
    /// The adapter rank r.
    public var rank: Int
    /// Trainable parameters in all: Σ r·(in + out) over adapted linears.
    public var parameters: Double
    /// Σ in over one layer's adapted linears (what each adapter saves of its input).
    public var inputFeaturesPerLayer: Int
    /// Adapted linears per layer.
    public var targetsPerLayer: Int
    /// Whether LoRA dropout keeps a mask per adapter.
    public var dropout: Bool

    public init(rank: Int, parameters: Double, inputFeaturesPerLayer: Int, targetsPerLayer: Int, dropout: Bool) {
        self.rank = rank
        self.parameters = parameters
        self.inputFeaturesPerLayer = inputFeaturesPerLayer
        self.targetsPerLayer = targetsPerLayer
        self.dropout = dropout
    }

    /// LoRA on every decoder linear of `config` (the `--lora-rank` case of `qdist memory`).
    public static func allLinear(_ config: ModelConfiguration, rank: Int, dropout: Bool = false) -> LoRAShapeSummary {
        let layer = config.linearLayers(inLayer: 0)
        let perLayer = layer.reduce(0) { $0 + rank * ($1.inFeatures + $1.outFeatures) }
        return LoRAShapeSummary(rank: rank, parameters: Double(perLayer * config.numHiddenLayers),
                                inputFeaturesPerLayer: layer.reduce(0) { $0 + $1.inFeatures },
                                targetsPerLayer: layer.count, dropout: dropout)
    }
}

extension MemoryEstimator {
    /// Float elements the training graph keeps for one micro-batch of `tokens` tokens in
    /// sequences of `seqLen`: the per-block checkpoints (L·T·h), one block's recomputed
    /// activations, the adapters' saved inputs and projections, one sequence's attention
    /// scores, and the head's logit chunk with its gradient (`CausalLMLoss.maxLogitElements`).
    public static func checkpointedActivationElements(_ c: ModelConfiguration, lora: LoRAShapeSummary,
                                                      tokens: Int, seqLen: Int) -> Double {
        let t = Double(tokens), h = Double(c.hiddenSize), i = Double(c.intermediateSize)
        let q = Double(c.numAttentionHeads * c.headDim), kv = Double(c.numKeyValueHeads * c.headDim)
        let checkpoints = Double(c.numHiddenLayers) * t * h
        let block = t * (4 * h + q + 2 * kv + 3 * i)  // input, residual, dx, norms; q, k, v; gate, up, product
        let adapterInputs = Double(lora.inputFeaturesPerLayer) * (lora.dropout ? 2 : 1) + Double(lora.targetsPerLayer * lora.rank)
        let scores = Double(c.numAttentionHeads) * Double(seqLen) * Double(seqLen)
        let logitRows = min(t, Double(max(1, (1 << 23) / max(c.vocabSize, 1))))
        return checkpoints + block + t * adapterInputs + scores + 2 * logitRows * Double(c.vocabSize)
    }

    /// QLoRA fine-tuning per rank at a ZeRO stage, by category: the frozen base (decoder linears
    /// in `baseFormat`, the rest in `keptFormat`; sharded only at stage 3), fp32 adapters
    /// (sharded at 3), fp32 gradients with their exact sum (2), AdamW m and v (1), and activations
    /// with the step's transient buffers. `model` comes from the config or the checkpoint headers.
    public static func finetune(_ model: ModelParameterSummary, config: ModelConfiguration, lora: LoRAShapeSummary,
                                microBatchSize: Int, seqLen: Int, zeroStage: Int, worldSize: Int,
                                baseFormat: NumberFormat, keptFormat: NumberFormat) -> FinetuneRankMemory {
        precondition((0...3).contains(zeroStage) && worldSize >= 1, "ZeRO stage 0–3 and world size ≥ 1")
        let n = Double(worldSize)
        let base = weightBytes(parameters: model.linear, format: baseFormat)
            + weightBytes(parameters: model.total - model.linear, format: keptFormat)
        var activations = 4 * checkpointedActivationElements(config, lora: lora, tokens: microBatchSize * seqLen, seqLen: seqLen)
        activations += 4 * lora.parameters  // the backward's full-size gradient scratch (one micro-batch)
        if zeroStage >= 3 {
            // One block gathered (payload and its decoded fp32 weights), and the embedding.
            let blockLinear = model.linear / Double(max(config.numHiddenLayers, 1))
            activations += weightBytes(parameters: blockLinear, format: baseFormat) + 4 * blockLinear
            activations += 4 * Double(config.vocabSize * config.hiddenSize)
        }
        return FinetuneRankMemory(baseWeights: base / (zeroStage >= 3 ? n : 1),
                                  adapters: 4 * lora.parameters / (zeroStage >= 3 ? n : 1),
                                  // fp32 gradients and their exact sum (FixedPointLimbs digits)
                                  gradients: Double(4 + 8 * FixedPointLimbs.gradients.limbs) * lora.parameters / (zeroStage >= 2 ? n : 1),
                                  optimizerState: 8 * lora.parameters / (zeroStage >= 1 ? n : 1),
                                  activations: activations)
    }
}
