import XCTest
import QDistTensor
@testable import QDistTrain

/// AdamW, the warmup + cosine schedule and global-norm clipping against float64 re-computations
/// of torch's and transformers' formulas, and the ZeRO bookkeeping (partition, batch split) on
/// the properties the trainer relies on.
final class TrainingAlgorithmTests: XCTestCase {
    /// torch.optim.AdamW's single-tensor update, in Double.
    func referenceAdamW(_ p: inout [Double], _ g: [Double], _ m: inout [Double], _ v: inout [Double], step t: Int,
                        lr: Double, b1: Double, b2: Double, eps: Double, wd: Double) {
        for i in p.indices {
            p[i] *= 1 - lr * wd
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
            let mHat = m[i] / (1 - Foundation.pow(b1, Double(t)))
            let denom = (v[i] / (1 - Foundation.pow(b2, Double(t)))).squareRoot() + eps
            p[i] -= lr * mHat / denom
        }
    }

    func testAdamWMatchesAFloat64ReferenceOverTwentySteps() {
        var rng = SeededGenerator(seed: 3)
        let n = 257
        var p = (0..<n).map { _ in rng.normal() }
        var p64 = p.map(Double.init), m64 = [Double](repeating: 0, count: n), v64 = m64
        var state = AdamWState(count: n)
        let h = AdamWHyperparameters(beta1: 0.9, beta2: 0.99, epsilon: 1e-8, weightDecay: 0.1)
        for t in 1...20 {
            let g = (0..<n).map { _ in 0.1 * rng.normal() }
            let lr = 1e-2 / Double(t)
            AdamW.update(parameters: &p, gradients: g, state: &state, step: t, learningRate: lr, hyperparameters: h)
            referenceAdamW(&p64, g.map(Double.init), &m64, &v64, step: t, lr: lr, b1: 0.9, b2: 0.99, eps: 1e-8, wd: 0.1)
        }
        for i in 0..<n {
            XCTAssertEqual(Double(p[i]), p64[i], accuracy: 1e-5 * max(1, abs(p64[i])), "parameter \(i)")
            XCTAssertEqual(Double(state.firstMoment[i]), m64[i], accuracy: 1e-6)
            XCTAssertEqual(Double(state.secondMoment[i]), v64[i], accuracy: 1e-7)
        }
    }

    func testAdamWFirstStepIsSignTimesLearningRateAfterDecoupledDecay() {
        // Step 1 with bias correction: m̂ = g, v̂ = g², so p ← p(1 − lr·λ) − lr·g/(|g| + ε).
        var p: [Float] = [1, -2, 0.5], state = AdamWState(count: 3)
        AdamW.update(parameters: &p, gradients: [0.3, -4, 0], state: &state, step: 1, learningRate: 0.1,
                     hyperparameters: AdamWHyperparameters(weightDecay: 0.5))
        XCTAssertEqual(p[0], 1 * 0.95 - 0.1, accuracy: 1e-6)
        XCTAssertEqual(p[1], -2 * 0.95 + 0.1, accuracy: 1e-6)
        XCTAssertEqual(p[2], 0.5 * 0.95, accuracy: 1e-7, "zero gradient: only the decay acts")
    }

    func testAdamWOnShardsEqualsOneUpdateOfTheWholeBufferBitForBit() {
        var rng = SeededGenerator(seed: 9)
        let n = 100
        var whole = (0..<n).map { _ in rng.normal() }
        var wholeState = AdamWState(count: n)
        let partition = ZeROPartition(count: n, parts: 3)
        var shards = partition.ranges.map { Array(whole[$0]) }
        var shardStates = partition.ranges.map { AdamWState(count: $0.count) }
        for t in 1...5 {
            let g = (0..<n).map { _ in rng.normal() }
            AdamW.update(parameters: &whole, gradients: g, state: &wholeState, step: t, learningRate: 1e-3,
                         hyperparameters: AdamWHyperparameters(weightDecay: 0.01))
            for (r, range) in partition.ranges.enumerated() {
                AdamW.update(parameters: &shards[r], gradients: Array(g[range]), state: &shardStates[r], step: t, learningRate: 1e-3,
                             hyperparameters: AdamWHyperparameters(weightDecay: 0.01))
            }
        }
        XCTAssertEqual(shards.flatMap { $0 }, whole)
        XCTAssertEqual(shardStates.flatMap(\.firstMoment), wholeState.firstMoment)
        XCTAssertEqual(shardStates.flatMap(\.secondMoment), wholeState.secondMoment)
    }

    func testCosineScheduleWithWarmupMatchesTransformersLambda() {
        let s = LearningRateSchedule(peakLearningRate: 3e-4, warmupSteps: 10, totalSteps: 110)
        for step in 0...120 {
            // transformers' _get_cosine_schedule_with_warmup_lr_lambda, num_cycles = 0.5, in Double.
            let expected: Double
            if step < 10 {
                expected = Double(step) / 10
            } else {
                let progress = Double(step - 10) / 100
                expected = max(0, 0.5 * (1 + Foundation.cos(Double.pi * 0.5 * 2 * progress)))
            }
            XCTAssertEqual(s.rate(at: step), 3e-4 * expected, accuracy: 1e-15, "step \(step)")
        }
        XCTAssertEqual(s.rate(at: 0), 0, "HF's first update has lr 0 under warmup")
        XCTAssertEqual(s.rate(at: 10), 3e-4)
        XCTAssertEqual(s.rate(at: 60), 1.5e-4, accuracy: 1e-12, "half way down the cosine")
        XCTAssertEqual(s.rate(at: 110), 0, accuracy: 1e-18)
        XCTAssertEqual(LearningRateSchedule(peakLearningRate: 1, warmupSteps: 0, totalSteps: 4).rate(at: 0), 1)
    }

    func testClippingByTheGlobalNormAssembledFromShards() {
        var rng = SeededGenerator(seed: 1)
        let g = (0..<1000).map { _ in rng.normal() }
        let partition = ZeROPartition(count: g.count, parts: 4)
        let total = partition.ranges.map { GradientClipping.sumOfSquares(Array(g[$0])) }.reduce(0, +)
        let exact = g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let (norm, factor) = GradientClipping.coefficient(totalSumOfSquares: total, maxNorm: 1)
        XCTAssertEqual(norm, exact, accuracy: 1e-9 * exact)
        XCTAssertEqual(Double(factor), 1 / (exact + 1e-6), accuracy: 1e-6 / exact, "torch: max_norm / (norm + 1e-6)")
        var clipped = g
        GradientClipping.scale(&clipped, by: factor)
        XCTAssertEqual(GradientClipping.sumOfSquares(clipped).squareRoot(), 1, accuracy: 1e-5)
        XCTAssertEqual(GradientClipping.coefficient(totalSumOfSquares: 0.25, maxNorm: 1).factor, 1, "a small norm is left alone")
        XCTAssertEqual(GradientClipping.coefficient(totalSumOfSquares: 100, maxNorm: nil).factor, 1, "clipping off")
    }

    func testPartitionCoversTheIndexContiguouslyWithSizesWithinOne() {
        for (count, parts) in [(10, 3), (3, 5), (0, 2), (1000, 7), (8, 8)] {
            let p = ZeROPartition(count: count, parts: parts)
            XCTAssertEqual(p.ranges.first?.lowerBound, 0)
            XCTAssertEqual(p.ranges.last?.upperBound, count)
            for r in 1..<parts { XCTAssertEqual(p.range(r).lowerBound, p.range(r - 1).upperBound) }
            XCTAssertLessThanOrEqual((p.counts.max() ?? 0) - (p.counts.min() ?? 0), 1)
            for i in 0..<count { XCTAssertTrue(p.range(p.owner(of: i)).contains(i), "\(i) of \(count)/\(parts)") }
            if count > 4 {
                let window = 2..<(count - 1)
                let pieces = p.pieces(of: window)
                XCTAssertEqual(pieces.map(\.count).reduce(0, +), window.count)
                XCTAssertEqual(pieces.filter { !$0.isEmpty }.flatMap { Array($0) }, Array(window))
            }
        }
    }

    func testBatchScheduleSplitsEveryGlobalBatchExactlyAcrossAnyNumberOfRanks() {
        let s = BatchSchedule(exampleCount: 13, globalBatchSize: 5, seed: 42)
        XCTAssertEqual(s.order(epoch: 0).sorted(), Array(0..<13), "an epoch is a permutation")
        XCTAssertNotEqual(s.order(epoch: 0), s.order(epoch: 1), "each epoch is shuffled anew")
        XCTAssertEqual(s.order(epoch: 2), BatchSchedule(exampleCount: 13, globalBatchSize: 5, seed: 42).order(epoch: 2), "seeded")
        // Steps 0…5 cross two epoch boundaries; positions run on without gaps.
        let stream = (0..<6).flatMap { s.globalBatch(step: $0) }
        XCTAssertEqual(stream.map(\.position), Array(0..<30))
        XCTAssertEqual(stream[0..<13].map(\.example).sorted(), Array(0..<13))
        for step in 0..<6 {
            let global = s.globalBatch(step: step).map(\.position)
            for ranks in 1...4 {
                let union = (0..<ranks).flatMap { r in s.microBatches(step: step, rank: r, ranks: ranks, microBatchSize: 2).flatMap { $0 } }
                XCTAssertEqual(union.map(\.position).sorted(), global, "step \(step), \(ranks) ranks")
                // Micro-batches are the same groups of examples for every P (only the rank changes).
                let groups = Set((0..<ranks).flatMap { r in s.microBatches(step: step, rank: r, ranks: ranks, microBatchSize: 2) }
                    .map { $0.map(\.position) })
                XCTAssertEqual(groups, Set(s.microBatches(step: step, microBatchSize: 2).map { $0.map(\.position) }))
            }
        }
    }
}
