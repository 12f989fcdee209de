import QDistTensor

/// Keys and values of the tokens already seen, per decoder block, so generating one more token
/// costs one token's forward instead of the whole prefix.
public struct KVCache: Sendable {
    /// Per block: keys and values, (tokens, kvHeads·headDim) row-major, grown by appending.
    var keys: [[Float]]
    var values: [[Float]]
    public let width: Int
    /// Tokens cached so far (the position of the next token).
    public private(set) var length: Int = 0

    public init(blocks: Int, kvWidth: Int) {
        keys = Array(repeating: [], count: blocks)
        values = Array(repeating: [], count: blocks)
        width = kvWidth
    }

    /// Appends new rows for `block`; the last block's append advances `length`.
    mutating func append(block: Int, keys k: Tensor, values v: Tensor) {
        keys[block] += k.scalars
        values[block] += v.scalars
        if block == keys.count - 1 { length += k.rows }
    }

    /// Forgets every cached token (a new prompt).
    public mutating func reset() {
        for i in keys.indices { keys[i].removeAll(keepingCapacity: true); values[i].removeAll(keepingCapacity: true) }
        length = 0
    }
}
