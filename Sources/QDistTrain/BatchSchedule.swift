// Seeded epoch shuffling and the split of each global batch across data-parallel ranks, as a
// pure function of (seed, step): resuming needs only the step number, and the split is what
// makes a run's losses independent of the number of ranks.

import QDistTensor

/// Which training examples every optimizer step uses, and which rank takes which.
///
/// The example stream is epoch after epoch of a seeded permutation of `0..<exampleCount`
/// (Fisher–Yates driven by SplitMix64 seeded from `seed` and the epoch); global batch k is
/// positions `k·B ..< (k+1)·B` of that stream, cut into consecutive micro-batches of
/// `microBatchSize`; rank r of P takes micro-batches c with c mod P = r. So every micro-batch
/// holds the same examples for any P — its forward and backward are the same computation — and
/// only which rank runs it changes.
public struct BatchSchedule: Sendable, Equatable {
    public let exampleCount: Int
    public let globalBatchSize: Int
    public let seed: UInt64

    public init(exampleCount: Int, globalBatchSize: Int, seed: UInt64) {
        precondition(exampleCount > 0 && globalBatchSize > 0, "\(exampleCount) examples in batches of \(globalBatchSize)")
        self.exampleCount = exampleCount
        self.globalBatchSize = globalBatchSize
        self.seed = seed
    }

    /// The permutation of epoch `epoch` (0-based).
    public func order(epoch: Int) -> [Int] {
        var rng = SeededGenerator(state: seed ^ (UInt64(epoch) &+ 1) &* 0xD1B5_4A32_D192_ED03)
        var order = Array(0..<exampleCount)
        for i in stride(from: exampleCount - 1, to: 0, by: -1) {
            order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
        return order
    }

    /// Example indices of global batch `step` (0-based), with their positions in the stream
    /// (a position is unique across the run: it seeds the example's dropout masks).
    public func globalBatch(step: Int) -> [(example: Int, position: Int)] {
        let first = step * globalBatchSize
        var result: [(Int, Int)] = []
        result.reserveCapacity(globalBatchSize)
        var epoch = first / exampleCount
        var order = self.order(epoch: epoch)
        for position in first..<first + globalBatchSize {
            if position / exampleCount != epoch {
                epoch = position / exampleCount
                order = self.order(epoch: epoch)
            }
            result.append((order[position % exampleCount], position))
        }
        return result
    }

    /// Global batch `step` cut into micro-batches of at most `microBatchSize`, in stream order.
    public func microBatches(step: Int, microBatchSize: Int) -> [[(example: Int, position: Int)]] {
        precondition(microBatchSize > 0, "micro-batch \(microBatchSize)")
        let all = globalBatch(step: step)
        return stride(from: 0, to: all.count, by: microBatchSize).map { Array(all[$0..<min($0 + microBatchSize, all.count)]) }
    }

    /// Rank `rank` of `ranks`'s share of global batch `step`: micro-batches c (of
    /// `microBatches(step:microBatchSize:)`) with c mod P = rank, in order (a rank may get none
    /// when there are fewer micro-batches than ranks).
    public func microBatches(step: Int, rank: Int, ranks: Int, microBatchSize: Int) -> [[(example: Int, position: Int)]] {
        precondition((0..<ranks).contains(rank), "rank \(rank) of \(ranks)")
        return microBatches(step: step, microBatchSize: microBatchSize).enumerated().filter { $0.offset % ranks == rank }.map(\.element)
    }

    /// The epoch (0-based, fractional) reached after `steps` updates.
    public func epochs(afterSteps steps: Int) -> Double { Double(steps * globalBatchSize) / Double(exampleCount) }
}

