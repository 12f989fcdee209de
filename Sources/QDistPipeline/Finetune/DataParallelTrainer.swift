import Foundation
import QDistComm
import QDistIO
import QDistModel
import QDistTrain

/// The optimizer-side settings of a run: what every rank must agree on.
public struct TrainerSettings: Sendable, Equatable {
    public var zeroStage: ZeROStage
    public var schedule: LearningRateSchedule
    public var adamW: AdamWHyperparameters
    /// torch's clip_grad_norm_ max_norm; nil or 0 turns clipping off.
    public var maxGradNorm: Double?
    /// Sequences per forward/backward on one rank (gradient accumulation covers the rest).
    public var microBatchSize: Int
    /// Which examples each step uses (global batch size and shuffling seed).
    public var batches: BatchSchedule

    public init(zeroStage: ZeROStage, schedule: LearningRateSchedule, adamW: AdamWHyperparameters, maxGradNorm: Double?,
                microBatchSize: Int, batches: BatchSchedule) {
        self.zeroStage = zeroStage
        self.schedule = schedule
        self.adamW = adamW
        self.maxGradNorm = maxGradNorm
        self.microBatchSize = microBatchSize
        self.batches = batches
    }
}

/// What one optimizer step did, the same on every rank.
public struct TrainingStepResult: Sendable, Equatable {
    /// 1-based number of the step just taken.
    public var step: Int
    /// Mean token loss over the whole global batch, before the update.
    public var loss: Double
    /// Targets counted in the loss over the global batch (the loss normalizer).
    public var countedTokens: Int
    /// Tokens forwarded over all ranks.
    public var inputTokens: Int
    public var learningRate: Double
    /// Global gradient norm before clipping.
    public var gradientNorm: Double
}

/// Data-parallel LoRA training over a `Communicator`, with ZeRO's stages over the flat index of
/// the trainable parameters (DESIGN.md's table):
///
/// | stage | this rank keeps | per step |
/// |---|---|---|
/// | 0 | everything | Allreduce(grads); every rank updates everything |
/// | 1 | m, v of its shard | Allreduce(grads); update its shard; Allgather(params) |
/// | 2 | + its shard of the gradients | Reduce_scatter each block's grads as soon as the backward finishes it; update; Allgather(params) |
/// | 3 | + its shard of the parameters and of the frozen base | all-gather each block (adapters and base) before its forward and its backward; Reduce_scatter(grads); update its shard |
///
/// Each global batch is cut into micro-batches that are the same for every P (`BatchSchedule`),
/// and every micro-batch's loss is normalized by the global batch's counted tokens. Gradients
/// are summed exactly — each micro-batch's gradient rounded once onto a fixed grid
/// (`FixedPointLimbs`), then integer sums locally and in the Allreduce / Reduce_scatter — and so
/// are the squared norm for clipping and, in micro-batch order, the losses: a run gives the same
/// losses and weights, bit for bit, for any number of ranks and threads. Ranks run the same
/// number of micro-steps (a rank short of micro-batches runs empty ones) so collectives stay
/// paired. The arithmetic lives in QDistTrain (AdamW, clipping, partition, limbs); this type
/// only moves data and calls it.
public final class DataParallelTrainer {
    public let graph: LlamaTrainingGraph
    public let settings: TrainerSettings
    public let partition: ZeROPartition
    let communicator: any Communicator
    let frozen: ShardedFrozenBase
    let examples: [TrainingExample]
    let dropoutSeed: UInt64

    /// The trainable values this rank keeps: all of them below stage 3, its shard at stage 3.
    public private(set) var parameters: [Float]
    /// AdamW's moments: all of them at stage 0, this rank's shard from stage 1.
    public private(set) var optimizer: AdamWState
    /// Gradients kept for the optimizer: the full buffer below stage 2, this rank's shard from 2.
    var gradients: [Float]
    /// The exact sum of the step's micro-batch gradients over `gradients`' range, as
    /// `FixedPointLimbs.gradients` digits (`limbs` Int64 per value).
    var gradientDigits: [Int64]
    /// The full-size buffer the graph computes one micro-batch's gradient into before it is
    /// folded into the digits (below stage 2) or reduce-scattered block by block (from 2) —
    /// transient in ZeRO's terms.
    var scratch: [Float]
    /// Whether some micro-batch gradient of this step was non-finite (the step's gradient is
    /// then NaN, as a Float32 sum would have made it).
    var nonFiniteGradient = false
    let limbs = FixedPointLimbs.gradients
    /// Optimizer steps taken so far.
    public private(set) var completedSteps = 0

    public init(graph: LlamaTrainingGraph, frozen: ShardedFrozenBase, examples: [TrainingExample], settings: TrainerSettings,
                initial: TrainableParameters, dropoutSeed: UInt64, communicator: any Communicator) {
        precondition(initial.layout == graph.layout, "initial parameters have another layout")
        self.graph = graph
        self.frozen = frozen
        self.examples = examples
        self.settings = settings
        self.dropoutSeed = dropoutSeed
        self.communicator = communicator
        partition = ZeROPartition(count: graph.layout.count, parts: communicator.size)
        let stage = settings.zeroStage, own = partition.range(communicator.rank)
        parameters = stage.shardsParameters ? Array(initial.values[own]) : initial.values
        optimizer = AdamWState(count: stage.shardsOptimizerState ? own.count : graph.layout.count)
        gradients = [Float](repeating: 0, count: stage.shardsGradients ? own.count : graph.layout.count)
        gradientDigits = [Int64](repeating: 0, count: gradients.count * FixedPointLimbs.gradients.limbs)
        scratch = [Float](repeating: 0, count: graph.layout.count)
    }

    /// This rank's range of the flat index (its shard at stages ≥ 1, and what it checkpoints).
    public var ownedRange: Range<Int> { partition.range(communicator.rank) }

    /// Where `ownedRange` starts inside `parameters` (0 at stage 3, which keeps only the shard).
    var parameterOffset: Int { settings.zeroStage.shardsParameters ? 0 : ownedRange.lowerBound }
    /// Where `ownedRange` starts inside the optimizer state.
    var optimizerOffset: Int { settings.zeroStage.shardsOptimizerState ? 0 : ownedRange.lowerBound }

    /// Dropout seed of the example at stream position `position`: independent of the split.
    func exampleSeed(_ position: Int) -> UInt64 { dropoutSeed ^ (UInt64(position) &+ 1) &* 0x9E37_79B9_7F4A_7C15 }

    /// Runs one optimizer step on global batch `completedSteps`. Collective.
    @discardableResult
    public func step() throws -> TrainingStepResult {
        let k = completedSteps, stage = settings.zeroStage, ranks = communicator.size
        let batches = settings.batches, micro = settings.microBatchSize
        let learningRate = settings.schedule.rate(at: k)
        let normalizer = batches.globalBatch(step: k).reduce(0) { $0 + examples[$1.example].countedTokens }
        let chunks = batches.microBatches(step: k, microBatchSize: micro).count
        let mine = batches.microBatches(step: k, rank: communicator.rank, ranks: ranks, microBatchSize: micro)
        let microSteps = (chunks + ranks - 1) / ranks

        for i in gradientDigits.indices { gradientDigits[i] = 0 }
        nonFiniteGradient = false
        let adapters: any AdapterParameterSource = stage.shardsParameters
            ? ShardedAdapterSource(layout: graph.layout, partition: partition, shard: parameters, communicator: communicator)
            : TrainableParameters(layout: graph.layout, values: parameters)
        var lossSums: [Double] = [], counts = [0, 0, 0]  // counted targets, input tokens, non-finite ranks
        for j in 0..<microSteps {
            let batch = j < mine.count ? mine[j].map { examples[$0.example].sequence(dropoutSeed: exampleSeed($0.position)) } : []
            counts[1] += batch.reduce(0) { $0 + $1.tokens.count - 1 }
            let loss: LossSummary
            if stage.shardsGradients {
                loss = try graph.accumulateGradients(batch, frozen: frozen, adapters: adapters, into: &scratch,
                                                     lossNormalizer: max(normalizer, 1),
                                                     blockGradientsReady: { [self] block, slice in try reduceScatter(block: block, slice) })
            } else {
                loss = try graph.accumulateGradients(batch, frozen: frozen, adapters: adapters, into: &scratch,
                                                     lossNormalizer: max(normalizer, 1))
                foldScratch()
            }
            if j < mine.count { lossSums.append(loss.sum) }
            counts[0] += loss.countedTokens
        }
        if !stage.shardsGradients { try communicator.allreduce(&gradientDigits, op: .sum) }
        counts[2] = nonFiniteGradient ? 1 : 0
        try communicator.allreduce(&counts, op: .sum)
        gradients = counts[2] > 0 ? [Float](repeating: .nan, count: gradients.count) : limbs.floats(gradientDigits)
        let lossSum = try orderedLossSum(lossSums, microBatches: chunks)

        // Clipping by the global norm, from per-shard exact sums of squares.
        let own = ownedRange
        var shardGradients = stage.shardsGradients ? gradients : Array(gradients[own])
        let (norm, factor) = GradientClipping.coefficient(totalSumOfSquares: try exactSumOfSquares(shardGradients),
                                                          maxNorm: settings.maxGradNorm)

        // AdamW on what this rank owns: everything at stage 0, its shard otherwise.
        if stage == .zero {
            GradientClipping.scale(&gradients, by: factor)
            AdamW.update(parameters: &parameters, gradients: gradients, state: &optimizer, step: k + 1,
                         learningRate: learningRate, hyperparameters: settings.adamW)
        } else {
            GradientClipping.scale(&shardGradients, by: factor)
            let p = parameterOffset
            var shard = Array(parameters[p..<p + own.count])
            AdamW.update(parameters: &shard, gradients: shardGradients, state: &optimizer, step: k + 1,
                         learningRate: learningRate, hyperparameters: settings.adamW)
            if stage.shardsParameters {
                parameters = shard
            } else {
                parameters = concatenated(try communicator.allgatherv(shard))
            }
        }
        completedSteps += 1
        return TrainingStepResult(step: completedSteps, loss: counts[0] > 0 ? lossSum / Double(counts[0]) : 0,
                                  countedTokens: counts[0], inputTokens: counts[1],
                                  learningRate: learningRate, gradientNorm: norm)
    }

    /// Below stage 2: folds the micro-batch gradient in `scratch` into the digits and zeroes it.
    func foldScratch() {
        scratch.withUnsafeMutableBufferPointer { g in
            gradientDigits.withUnsafeMutableBufferPointer { d in
                if !limbs.add(UnsafeBufferPointer(g), to: d) { nonFiniteGradient = true }
            }
            for i in g.indices { g[i] = 0 }
        }
    }

    /// ZeRO-2/3: reduce-scatters block `block`'s gradients (the slice the graph just finished)
    /// as exact digits, adds this rank's piece into its shard's digits and zeroes the slice for
    /// the next micro-batch. Every rank calls it for every block of every micro-step.
    func reduceScatter(block: Int, _ slice: UnsafeMutableBufferPointer<Float>) throws {
        let window = graph.layout.blockRange(block)
        let pieces = partition.pieces(of: window)
        var digits = [Int64](repeating: 0, count: slice.count * limbs.limbs)
        let finite = digits.withUnsafeMutableBufferPointer { limbs.add(UnsafeBufferPointer(slice), to: $0) }
        if !finite { nonFiniteGradient = true }
        let reduced = try communicator.reduceScatter(digits, counts: pieces.map { $0.count * limbs.limbs })
        let mine = pieces[communicator.rank], start = (mine.lowerBound - ownedRange.lowerBound) * limbs.limbs
        for (i, x) in reduced.enumerated() { gradientDigits[start + i] &+= x }
        for i in 0..<slice.count { slice[i] = 0 }
    }

    /// The global batch's loss sum: every rank's per-micro-batch sums added in micro-batch
    /// order (micro-batch c is the (c / P)-th of rank c mod P), the same bits for any P.
    func orderedLossSum(_ mine: [Double], microBatches: Int) throws -> Double {
        let byRank = try communicator.allgatherv(mine), p = communicator.size
        var total = 0.0
        for c in 0..<microBatches { total += byRank[c % p][c / p] }
        return total
    }

    /// Σ g² over every rank's shard, exactly (`FixedPointLimbs.squares`, Allreduce on the digits).
    func exactSumOfSquares(_ shard: [Float]) throws -> Double {
        let squares = FixedPointLimbs.squares
        var digits = [Int64](repeating: 0, count: squares.limbs)
        var finite = true
        digits.withUnsafeMutableBufferPointer { d in
            for g in shard where g != 0 {
                if !squares.add(Double(g) * Double(g), to: d.baseAddress!) { finite = false }
            }
        }
        var flag = [finite ? 0 : 1]
        try communicator.allreduce(&digits, op: .sum)
        try communicator.allreduce(&flag, op: .sum)
        if flag[0] > 0 { return .nan }
        return digits.withUnsafeBufferPointer { squares.value(of: $0.baseAddress!) }
    }

    /// All trainable values, in layout order. Collective at stage 3 (an all-gather).
    public func fullParameters() throws -> TrainableParameters {
        let values = settings.zeroStage.shardsParameters ? concatenated(try communicator.allgatherv(parameters)) : parameters
        return TrainableParameters(layout: graph.layout, values: values)
    }

    /// This rank's checkpoint shard: parameters, m and v over `ownedRange`.
    public func ownedState() -> (parameters: [Float], firstMoment: [Float], secondMoment: [Float]) {
        let own = ownedRange, p = parameterOffset, o = optimizerOffset
        return (Array(parameters[p..<p + own.count]), Array(optimizer.firstMoment[o..<o + own.count]),
                Array(optimizer.secondMoment[o..<o + own.count]))
    }

    /// Replaces the state with a checkpoint's: `read(kind, range)` returns the values of one
    /// kind ("parameters", "exp_avg", "exp_avg_sq") over a range of the flat index, whatever
    /// partition the checkpoint was written with.
    public func restore(completedSteps steps: Int, read: (String, Range<Int>) throws -> [Float]) throws {
        let stage = settings.zeroStage, all = 0..<graph.layout.count
        parameters = try read("parameters", stage.shardsParameters ? ownedRange : all)
        let moments = stage.shardsOptimizerState ? ownedRange : all
        optimizer = AdamWState(firstMoment: try read("exp_avg", moments), secondMoment: try read("exp_avg_sq", moments))
        completedSteps = steps
    }

    /// Bytes this rank holds by category: measured from the arrays it keeps; activations are
    /// the estimate `MemoryEstimator` makes for the same micro-batch (they live only inside a
    /// step), plus the stage's transient buffers.
    public func heldMemory(activations: Double) -> FinetuneRankMemory {
        FinetuneRankMemory(baseWeights: Double(frozen.heldBytes), adapters: Double(4 * parameters.count),
                           gradients: Double(4 * gradients.count + 8 * gradientDigits.count),
                           optimizerState: Double(optimizer.byteCount),
                           activations: activations)
    }
}
