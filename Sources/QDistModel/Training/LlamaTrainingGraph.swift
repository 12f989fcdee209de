// Backward of modeling_llama.py's LlamaForCausalLM with PEFT LoRA adapters on a frozen base,
// and per-block gradient checkpointing (torch.utils.checkpoint around each decoder layer).
import QDistIO
import QDistTensor

/// One training sequence with Hugging Face's label convention: `labels` has one entry per
/// token, `labels[t]` is the target of the prediction made at position t−1 (the shift happens
/// inside), and `CausalLMLoss.ignoreIndex` (−100) leaves a position out of the loss.
public struct TrainingSequence: Sendable, Equatable {
    public var tokens: [Int]
    public var labels: [Int]
    /// Seeds this sequence's LoRA dropout masks: give each sequence of a step its own (e.g. from
    /// step and global sample index) and the masks do not depend on how the batch is split.
    public var dropoutSeed: UInt64

    /// Labels default to the tokens themselves (plain language modelling).
    public init(tokens: [Int], labels: [Int]? = nil, dropoutSeed: UInt64 = 0) {
        precondition(labels == nil || labels!.count == tokens.count, "\(labels!.count) labels for \(tokens.count) tokens")
        self.tokens = tokens
        self.labels = labels ?? tokens
        self.dropoutSeed = dropoutSeed
    }

    /// A prompt/completion pair: the loss counts completion tokens only.
    public init(prompt: [Int], completion: [Int], dropoutSeed: UInt64 = 0) {
        self.init(tokens: prompt + completion,
                  labels: [Int](repeating: CausalLMLoss.ignoreIndex, count: prompt.count) + completion,
                  dropoutSeed: dropoutSeed)
    }
}

/// The summed token loss of a batch and how many tokens it counted.
public struct LossSummary: Sendable, Equatable {
    /// Σ −log p(target) over counted positions.
    public var sum: Double
    public var countedTokens: Int
    /// sum / countedTokens (0 when nothing is counted): Hugging Face's loss for this batch.
    public var mean: Double { countedTokens == 0 ? 0 : sum / Double(countedTokens) }

    public init(sum: Double, countedTokens: Int) {
        self.sum = sum
        self.countedTokens = countedTokens
    }
}

/// The training forward and backward of a Llama-family decoder with LoRA adapters on a frozen
/// base: loss and dL/d(adapters) for a batch of sequences, as one flat buffer in
/// `layout` order.
///
/// Memory: with `gradientCheckpointing` (the default) the forward keeps only each block's input
/// (tokens × hidden per block); the backward recomputes one block's forward at a time, so
/// activations beyond the checkpoints are about one block's worth. The head's logits are formed
/// a chunk of rows at a time (`CausalLMLoss.maxLogitElements`). Frozen weights come from a
/// `FrozenWeightProvider` block by block, twice per step (forward, then backward).
///
/// The graph holds no weights and no state: it is a value every rank can share.
public struct LlamaTrainingGraph: Sendable {
    public let config: ModelConfiguration
    public let lora: LoRAConfig
    public let layout: TrainableParameterLayout
    /// False keeps every block's activations from the forward instead of recomputing them: more
    /// memory, a third less block compute, identical results.
    public var gradientCheckpointing: Bool

    public init(config: ModelConfiguration, lora: LoRAConfig, gradientCheckpointing: Bool = true) {
        self.config = config
        self.lora = lora
        self.layout = TrainableParameterLayout(config: config, lora: lora)
        self.gradientCheckpointing = gradientCheckpointing
    }

    /// The batch packed row-wise: inputs are each sequence's tokens but the last, targets its
    /// labels but the first. Sequences with no counted target are left out (they would change
    /// neither the loss nor the gradient).
    struct PackedBatch {
        var inputs: [Int] = []
        var targets: [Int] = []
        var segments: [Range<Int>] = []
        var seeds: [UInt64] = []
        var longest: Int { segments.map(\.count).max() ?? 0 }

        init(_ batch: [TrainingSequence]) {
            for s in batch where s.labels.dropFirst().contains(where: { $0 != CausalLMLoss.ignoreIndex }) {
                segments.append(inputs.count..<inputs.count + s.tokens.count - 1)
                inputs += s.tokens.dropLast()
                targets += s.labels.dropFirst()
                seeds.append(s.dropoutSeed)
            }
        }
    }

    /// Block `index` ready to run: its frozen weights for `pass` and its adapters.
    func block(_ index: Int, pass: TrainingPass, batch: PackedBatch, rotary: RotaryTable, frozen: some FrozenWeightProvider,
               adapters source: some AdapterParameterSource, dropout: Bool) throws -> TrainingBlock {
        let weights = try frozen.blockWeights(index, pass: pass)
        let values = try source.adapterValues(block: index, pass: pass)
        let range = layout.blockRange(index)
        precondition(values.count == range.count, "block \(index): \(values.count) adapter values, layout has \(range.count)")
        var adapters: [LoRATarget: LoRAAdapter] = [:]
        for target in lora.targets {
            guard let (a, b) = layout.adapter(block: index, target: target) else { continue }
            func slice(_ e: TrainableParameterLayout.Entry) -> Tensor {
                Tensor(shape: e.shape, scalars: Array(values[(e.offset - range.lowerBound)..<(e.offset - range.lowerBound + e.count)]))
            }
            adapters[target] = LoRAAdapter(a: slice(a), b: slice(b), scaling: lora.scaling)
        }
        return TrainingBlock(
            index: index, weights: weights, adapters: adapters,
            attention: LlamaAttention(heads: config.numAttentionHeads, kvHeads: config.numKeyValueHeads, headDim: config.headDim),
            rotary: LlamaModel.rotary(for: config), rotaryTable: rotary, epsilon: Float(config.rmsNormEps), segments: batch.segments,
            dropout: dropout ? lora.dropout : 0, dropoutSeeds: batch.seeds)
    }

    /// The batch's loss, forward only (no checkpoints kept). Dropout is off unless asked for.
    public func loss(_ batch: [TrainingSequence], frozen: some FrozenWeightProvider,
                     adapters: some AdapterParameterSource, applyDropout: Bool = false) throws -> LossSummary {
        let packed = PackedBatch(batch)
        let table = RotaryTable(LlamaModel.rotary(for: config), positions: packed.longest)
        var x = try frozen.embeddingWeight().gatheringRows(packed.inputs)
        for i in 0..<config.numHiddenLayers {
            x = try block(i, pass: .forward, batch: packed, rotary: table, frozen: frozen, adapters: adapters, dropout: applyDropout).forward(x).output
        }
        let (h, _) = RMSNorm.forward(x, weight: try frozen.finalNormWeight(), epsilon: Float(config.rmsNormEps))
        let r = CausalLMLoss.headLoss(hidden: h, head: try frozen.outputHeadWeight(), targets: packed.targets, gradientScale: nil)
        return LossSummary(sum: r.sum, countedTokens: r.counted)
    }

    /// Forward and backward: adds d(sum of token losses / normalizer)/d(adapters) into
    /// `gradients` (`layout.count` values; gradient accumulation is calling this again), and
    /// returns the batch's loss.
    ///
    /// - Parameters:
    ///   - lossNormalizer: the token count the loss is averaged over. Nil means this batch's
    ///     counted tokens (HF's mean). Data-parallel ranks and accumulation micro-batches pass the
    ///     count of the whole global batch, so the summed gradients equal one big batch's.
    ///   - applyDropout: LoRA dropout with each sequence's seed (no effect when lora_dropout = 0).
    ///   - blockGradientsReady: called with i and block i's slice of `gradients`
    ///     (`layout.blockRange(i)`) once those are final for this call, in order L−1…0 — where
    ///     ZeRO-2 starts reducing them. The hook may read and overwrite the slice (reduce-scatter
    ///     it, then zero it); it gets the slice itself because `gradients` is borrowed for the
    ///     whole call and could not be touched from the hook otherwise.
    ///
    /// Every block's weights and adapters are requested in both passes even when the batch is
    /// empty or fully masked, so ranks whose providers gather (ZeRO-3) stay in step.
    @discardableResult
    public func accumulateGradients(
        _ batch: [TrainingSequence], frozen: some FrozenWeightProvider, adapters: some AdapterParameterSource,
        into gradients: inout [Float], lossNormalizer: Int? = nil, applyDropout: Bool = true,
        blockGradientsReady: ((_ block: Int, _ gradients: UnsafeMutableBufferPointer<Float>) throws -> Void)? = nil
    ) throws -> LossSummary {
        precondition(gradients.count == layout.count, "\(gradients.count) gradients for a layout of \(layout.count)")
        let packed = PackedBatch(batch)
        let table = RotaryTable(LlamaModel.rotary(for: config), positions: packed.longest)
        let blocks = config.numHiddenLayers, epsilon = Float(config.rmsNormEps)
        let counted = packed.targets.reduce(0) { $0 + ($1 == CausalLMLoss.ignoreIndex ? 0 : 1) }
        let normalizer = lossNormalizer ?? counted
        precondition(normalizer > 0 || counted == 0, "loss normalizer must be positive, got \(normalizer)")

        // Forward, keeping each block's input (or, without checkpointing, all its activations).
        var x = try frozen.embeddingWeight().gatheringRows(packed.inputs)
        var checkpoints: [Tensor] = []
        var kept: [BlockActivations] = []
        for i in 0..<blocks {
            let (out, activations) = try block(i, pass: .forward, batch: packed, rotary: table, frozen: frozen,
                                               adapters: adapters, dropout: applyDropout).forward(x)
            if gradientCheckpointing { checkpoints.append(x) } else { kept.append(activations) }
            x = out
        }
        let finalNorm = try frozen.finalNormWeight()
        let (h, inverse) = RMSNorm.forward(x, weight: finalNorm, epsilon: epsilon)
        let scale = normalizer > 0 ? 1 / Float(normalizer) : 0
        let head = CausalLMLoss.headLoss(hidden: h, head: try frozen.outputHeadWeight(), targets: packed.targets,
                                         gradientScale: scale)
        var dx = RMSNorm.backward(x, weight: finalNorm, inverseRMS: inverse, outputGradient: head.hiddenGradient!)

        // Backward, one block at a time from the top; a checkpointed block is recomputed first.
        for i in stride(from: blocks - 1, through: 0, by: -1) {
            let b = try block(i, pass: .backward, batch: packed, rotary: table, frozen: frozen, adapters: adapters, dropout: applyDropout)
            let activations: BlockActivations
            if gradientCheckpointing {
                activations = b.forward(checkpoints[i]).activations
                checkpoints[i] = Tensor.zeros([0])
            } else {
                activations = kept.removeLast()
            }
            let (dInput, adapterGradients) = b.backward(activations, outputGradient: dx)
            for (target, g) in adapterGradients {
                let (a, bEntry) = layout.adapter(block: i, target: target)!
                gradients.withUnsafeMutableBufferPointer { p in
                    for (entry, t) in [(a, g.a), (bEntry, g.b)] {
                        t.withUnsafeBufferPointer { src in
                            for j in 0..<entry.count { p[entry.offset + j] += src[j] }
                        }
                    }
                }
            }
            if let blockGradientsReady {
                let range = layout.blockRange(i)
                try gradients.withUnsafeMutableBufferPointer { p in
                    try blockGradientsReady(i, UnsafeMutableBufferPointer(rebasing: p[range]))
                }
            }
            dx = dInput
        }
        return LossSummary(sum: head.sum, countedTokens: head.counted)
    }

    /// Loss and a fresh gradient buffer (flat, `layout` order; `layout.tensors(from:)` splits
    /// it into one tensor per PEFT name).
    public func lossAndGradients(
        _ batch: [TrainingSequence], frozen: some FrozenWeightProvider, adapters: some AdapterParameterSource,
        lossNormalizer: Int? = nil, applyDropout: Bool = true
    ) throws -> (loss: LossSummary, gradients: [Float]) {
        var gradients = [Float](repeating: 0, count: layout.count)
        let loss = try accumulateGradients(batch, frozen: frozen, adapters: adapters, into: &gradients,
                                           lossNormalizer: lossNormalizer, applyDropout: applyDropout)
        return (loss, gradients)
    }
}
