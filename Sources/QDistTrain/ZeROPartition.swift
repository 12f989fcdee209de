// ZeRO's partitioning (Rajbhandari et al. 2019; DeepSpeed's flat-buffer partitions): the flat
// index of the trainable parameters cut into one contiguous range per rank.

/// What a ZeRO stage shards across the data-parallel ranks (FORMATS.md §9.1, DESIGN.md's table).
public enum ZeROStage: Int, Sendable, CaseIterable, Codable, Comparable {
    /// Plain data parallelism: everything replicated; Allreduce(grads).
    case zero = 0
    /// + AdamW's m and v sharded; each rank updates its shard, then Allgather(params).
    case one = 1
    /// + gradients reduce-scattered, each rank keeping only its shard's.
    case two = 2
    /// + the trainable parameters and the frozen base, all-gathered block by block on use.
    case three = 3

    public var shardsOptimizerState: Bool { self >= .one }
    public var shardsGradients: Bool { self >= .two }
    public var shardsParameters: Bool { self >= .three }

    public static func < (a: ZeROStage, b: ZeROStage) -> Bool { a.rawValue < b.rawValue }
}

/// `count` elements cut into `parts` contiguous ranges, the first `count mod parts` one element
/// longer (as `numpy.array_split`), so shard sizes differ by at most one.
///
/// Pure arithmetic on the index: the same partition serves AdamW's moments, the reduced
/// gradients, the parameter shards, checkpoints (re-partitioned when P changes) and the byte
/// payloads of frozen blocks.
public struct ZeROPartition: Sendable, Equatable {
    public let count: Int
    public let parts: Int

    public init(count: Int, parts: Int) {
        precondition(count >= 0 && parts >= 1, "partition of \(count) elements into \(parts) parts")
        self.count = count
        self.parts = parts
    }

    /// The elements of part `index`.
    public func range(_ index: Int) -> Range<Int> {
        precondition((0..<parts).contains(index), "part \(index) of \(parts)")
        let base = count / parts, extra = count % parts
        let start = index * base + min(index, extra)
        return start..<start + base + (index < extra ? 1 : 0)
    }

    /// Every part's range, in order.
    public var ranges: [Range<Int>] { (0..<parts).map(range) }

    /// Every part's size (the `counts` of a reduce-scatter or allgatherv).
    public var counts: [Int] { ranges.map(\.count) }

    /// The part holding element `index`.
    public func owner(of index: Int) -> Int {
        precondition((0..<count).contains(index), "element \(index) of \(count)")
        let base = count / parts, extra = count % parts
        let longParts = extra * (base + 1)
        return index < longParts ? index / (base + 1) : extra + (index - longParts) / max(base, 1)
    }

    /// How `window` (a range of the flat index, e.g. one block's adapters) falls onto the
    /// parts: `pieces[r]` is the part of `window` that part r holds (empty when none), in the
    /// window's own order, so concatenating them in part order gives the window back.
    public func pieces(of window: Range<Int>) -> [Range<Int>] {
        ranges.map { r in
            let lo = max(r.lowerBound, window.lowerBound), hi = min(r.upperBound, window.upperBound)
            return lo < hi ? lo..<hi : window.lowerBound..<window.lowerBound
        }
    }
}
