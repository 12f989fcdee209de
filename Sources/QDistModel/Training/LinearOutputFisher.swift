import QDistIO
import QDistTensor

/// The diagonal of each decoder linear's output-side Fisher on a sequence: Σ over its tokens of
/// (∂L/∂y_j)², where L is the sequence's summed next-token loss and y the linear's output.
///
/// With the input side (the GPTQ Hessian H = Σ xxᵀ) it is the Kronecker-factored curvature of
/// the loss in the linear's weights (K-FAC, here with the output factor's diagonal), so a weight
/// change ΔW raises the loss by about ½·Σ_j F_j·(ΔW·H·ΔWᵀ)_jj: a second-order estimate that,
/// unlike ‖ΔW·X‖² alone, is comparable across linears whose outputs matter differently (a
/// q_proj error reaches the logits through a softmax, a down_proj error adds to the residual
/// stream). Mixed-precision allocation scores candidates with it.
public struct LinearOutputFisher: Sendable {
    /// Per block, per linear: Σ_t (∂L/∂y_tj)² for each output j.
    public var blocks: [[LoRATarget: [Double]]]

    /// Which next-token labels the loss is taken against.
    public enum Labels: Sendable, Equatable {
        /// The sequence's own next tokens: the empirical Fisher.
        case data
        /// One label per position sampled from the model's predictive distribution with this
        /// seed (`CausalLMLoss.sampledTargets`): a one-sample Monte Carlo estimate of the true
        /// Fisher, the curvature of KL(model ‖ perturbed model). Labels drawn independently per
        /// position have zero-mean, uncorrelated scores, so the square of the summed loss's
        /// gradient at a position estimates Σ over the tokens it reaches of their own squared
        /// gradients; with the data's labels those cross terms do not cancel.
        case sampled(seed: UInt64)
    }

    /// Forward and backward of `tokens` (labels as `labels` says) through the frozen model,
    /// block inputs checkpointed and each block recomputed for its backward, as training does;
    /// nothing is trained.
    public static func measure(tokens: [Int], config: ModelConfiguration, frozen: some FrozenWeightProvider,
                               labels: Labels = .data) throws -> LinearOutputFisher {
        let packed = LlamaTrainingGraph.PackedBatch([TrainingSequence(tokens: tokens)])
        let blocks = config.numHiddenLayers, epsilon = Float(config.rmsNormEps)
        let table = RotaryTable(LlamaModel.rotary(for: config), positions: packed.longest)
        // The frozen block alone: no adapters, no dropout.
        func block(_ i: Int, pass: TrainingPass) throws -> TrainingBlock {
            TrainingBlock(index: i, weights: try frozen.blockWeights(i, pass: pass), adapters: [:],
                          attention: LlamaAttention(heads: config.numAttentionHeads, kvHeads: config.numKeyValueHeads, headDim: config.headDim),
                          rotary: LlamaModel.rotary(for: config), rotaryTable: table, epsilon: epsilon, segments: packed.segments,
                          dropout: 0, dropoutSeeds: packed.seeds)
        }
        var result = LinearOutputFisher(blocks: [[LoRATarget: [Double]]](repeating: [:], count: blocks))
        guard !packed.segments.isEmpty else { return result }
        var x = try frozen.embeddingWeight().gatheringRows(packed.inputs)
        var checkpoints: [Tensor] = []
        for i in 0..<blocks {
            checkpoints.append(x)
            x = try block(i, pass: .forward).forward(x).output
        }
        let finalNorm = try frozen.finalNormWeight()
        let (h, inverse) = RMSNorm.forward(x, weight: finalNorm, epsilon: epsilon)
        // The summed loss (scale 1): the Fisher of the sequence, not of a mean.
        let headWeight = try frozen.outputHeadWeight()
        let targets: [Int]
        switch labels {
        case .data: targets = packed.targets
        case .sampled(let seed): targets = CausalLMLoss.sampledTargets(hidden: h, head: headWeight, targets: packed.targets, seed: seed)
        }
        let head = CausalLMLoss.headLoss(hidden: h, head: headWeight, targets: targets, gradientScale: 1)
        guard let hidden = head.hiddenGradient else { return result }
        var dx = RMSNorm.backward(x, weight: finalNorm, inverseRMS: inverse, outputGradient: hidden)
        for i in stride(from: blocks - 1, through: 0, by: -1) {
            let b = try block(i, pass: .backward)
            let activations = b.forward(checkpoints[i]).activations
            checkpoints[i] = Tensor.zeros([0])
            var squares: [LoRATarget: [Double]] = [:]
            dx = b.backward(activations, outputGradient: dx) { target, g in
                var s = [Double](repeating: 0, count: g.columns)
                g.withUnsafeBufferPointer { p in
                    for r in 0..<g.rows {
                        for j in 0..<g.columns { let v = Double(p[r * g.columns + j]); s[j] += v * v }
                    }
                }
                squares[target] = s
            }.input
            result.blocks[i] = squares
        }
        return result
    }
}
