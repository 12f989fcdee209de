// port of https://github.com/huggingface/tokenizers/blob/main/tokenizers/src/models/bpe/model.rs
// (merge_word, tokenize_with_cache) and models/bpe/word.rs (merge_all)
import Foundation

/// The byte-level BPE model: a vocabulary, ranked merges, and the merge loop that turns one
/// pre-tokenized word into token ids.
///
/// A word arrives as its UTF-8 bytes; each byte starts as the vocabulary id of its spelling in
/// `ByteLevelAlphabet`, then adjacent pairs are merged lowest rank first (leftmost among equal
/// ranks) with the reference's priority queue, including its quirk of checking a queued
/// merge only by the id it would produce. A byte whose spelling is not in the vocabulary is
/// dropped, or becomes `unk_token` when the model names one, as in the reference. Results
/// are cached per word, so a corpus pays for each distinct word once. A class, so the
/// per-word calls never copy its tables.
final class BPEModel: Sendable {
    /// Rank and product of one merge rule.
    struct Merge: Sendable {
        var rank: Int32
        var newID: Int32
    }

    /// Token text → id, as the file lists it.
    let vocabulary: [String: Int]
    /// id → token text.
    let tokenForID: [Int: String]
    /// Vocabulary id of each byte's spelling, or -1.
    let byteSymbol: [Int32]
    /// Pair `(left << 32 | right)` → merge.
    let merges: [UInt64: Merge]
    /// Spelled vocabulary entries by their bytes, consulted first when `ignoreMerges`.
    let wholeWords: [[UInt8]: Int]
    let ignoreMerges: Bool
    let unknownID: Int?
    let fuseUnknown: Bool
    private let cache = BPEWordCache(capacity: 200_000)

    /// Builds the model; `merges` are pairs of vocabulary entries in rank order. Throws the
    /// index of the first merge whose part or product is not in the vocabulary.
    init(vocabulary: [String: Int], merges: [(String, String)], ignoreMerges: Bool, unknownToken: String?,
         fuseUnknown: Bool) throws(BPEModelError) {
        self.vocabulary = vocabulary
        var tokenForID: [Int: String] = [:]
        tokenForID.reserveCapacity(vocabulary.count)
        for (token, id) in vocabulary { tokenForID[id] = token }
        self.tokenForID = tokenForID
        byteSymbol = ByteLevelAlphabet.scalarForByte.map { Int32(vocabulary[String(Character($0))] ?? -1) }
        var table: [UInt64: Merge] = [:]
        table.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let left = vocabulary[a] else { throw .mergePartMissing(index: rank, token: a) }
            guard let right = vocabulary[b] else { throw .mergePartMissing(index: rank, token: b) }
            guard let product = vocabulary[a + b] else { throw .mergePartMissing(index: rank, token: a + b) }
            table[Self.key(Int32(left), Int32(right))] = Merge(rank: Int32(rank), newID: Int32(product))
        }
        self.merges = table
        self.ignoreMerges = ignoreMerges
        var whole: [[UInt8]: Int] = [:]
        if ignoreMerges {
            for (token, id) in vocabulary {
                if let bytes = ByteLevelAlphabet.bytes(spelledBy: token) { whole[bytes] = id }
            }
        }
        wholeWords = whole
        if let unknownToken {
            guard let id = vocabulary[unknownToken] else { throw .unknownTokenMissing(unknownToken) }
            unknownID = id
        } else {
            unknownID = nil
        }
        self.fuseUnknown = fuseUnknown
    }

    @inline(__always)
    static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Appends the ids of the word whose UTF-8 bytes are `bytes` to `out`.
    func tokenize(_ bytes: [UInt8], into out: inout [Int]) {
        guard !bytes.isEmpty else { return }
        if ignoreMerges, let id = wholeWords[bytes] {
            out.append(id)
            return
        }
        if let hit = cache.value(for: bytes) {
            out.append(contentsOf: hit)
            return
        }
        let ids = mergeWord(bytes)
        cache.insert(ids, for: bytes)
        out.append(contentsOf: ids)
    }

    /// One symbol of a word being merged; `length == 0` marks a symbol merged into its left
    /// neighbour (positions never move, as in the reference).
    private struct Symbol {
        var id: Int32
        var prev: Int32
        var next: Int32
        var length: Int32
    }

    /// The merge loop of `Word::merge_all` (no dropout).
    func mergeWord(_ bytes: [UInt8]) -> [Int] {
        var symbols: [Symbol] = []
        symbols.reserveCapacity(bytes.count)
        func add(_ id: Int32, _ length: Int32) {
            let index = Int32(symbols.count)
            if !symbols.isEmpty { symbols[symbols.count - 1].next = index }
            symbols.append(Symbol(id: id, prev: index - 1, next: -1, length: length))
        }
        var pendingUnknown: (id: Int32, length: Int32)?
        for b in bytes {
            let id = byteSymbol[Int(b)]
            if id >= 0 {
                if let u = pendingUnknown { add(u.id, u.length); pendingUnknown = nil }
                add(id, 1)
            } else if let unknownID {
                if let u = pendingUnknown {
                    if fuseUnknown { pendingUnknown = (u.id, u.length + 1); continue }
                    add(u.id, u.length)
                }
                pendingUnknown = (Int32(unknownID), 1)
            }
        }
        if let u = pendingUnknown { add(u.id, u.length) }
        guard symbols.count > 1 else { return symbols.map { Int($0.id) } }

        var queue = MergeQueue()
        for i in 0..<(symbols.count - 1) {
            if let m = merges[Self.key(symbols[i].id, symbols[i + 1].id)] {
                queue.push(MergeQueue.Entry(rank: m.rank, position: Int32(i), newID: m.newID))
            }
        }
        while let top = queue.pop() {
            let pos = Int(top.position)
            let current = symbols[pos]
            guard current.length != 0, current.next != -1 else { continue }
            let nextPos = Int(current.next)
            let right = symbols[nextPos]
            guard let m = merges[Self.key(current.id, right.id)], m.newID == top.newID else { continue }
            symbols[pos].id = top.newID
            symbols[pos].length += right.length
            symbols[pos].next = right.next
            symbols[nextPos].length = 0
            if right.next > -1 { symbols[Int(right.next)].prev = Int32(pos) }
            let merged = symbols[pos]
            if merged.prev >= 0, let m = merges[Self.key(symbols[Int(merged.prev)].id, merged.id)] {
                queue.push(MergeQueue.Entry(rank: m.rank, position: merged.prev, newID: m.newID))
            }
            if merged.next >= 0, let m = merges[Self.key(merged.id, symbols[Int(merged.next)].id)] {
                queue.push(MergeQueue.Entry(rank: m.rank, position: Int32(pos), newID: m.newID))
            }
        }
        var ids: [Int] = []
        for s in symbols where s.length != 0 { ids.append(Int(s.id)) }
        return ids
    }
}

/// Why a BPE model cannot be built (the loader adds the file and key).
enum BPEModelError: Error {
    case mergePartMissing(index: Int, token: String)
    case unknownTokenMissing(String)
}

/// A binary min-heap of queued merges ordered by (rank, position).
struct MergeQueue {
    struct Entry {
        var rank: Int32
        var position: Int32
        var newID: Int32

        @inline(__always)
        func precedes(_ other: Entry) -> Bool {
            rank != other.rank ? rank < other.rank : position < other.position
        }
    }

    private var heap: [Entry] = []

    mutating func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let first = heap.first else { return nil }
        let last = heap.removeLast()
        guard !heap.isEmpty else { return first }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var best = parent
            if left < heap.count && heap[left].precedes(heap[best]) { best = left }
            if right < heap.count && heap[right].precedes(heap[best]) { best = right }
            if best == parent { break }
            heap.swapAt(parent, best)
            parent = best
        }
        return first
    }
}

/// Word → ids, shared by every copy of a tokenizer and safe to use from several threads.
/// Stops growing at `capacity` words (the reference does the same), so memory stays bounded.
final class BPEWordCache: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [[UInt8]: [Int]] = [:]
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func value(for word: [UInt8]) -> [Int]? {
        lock.lock()
        defer { lock.unlock() }
        return storage[word]
    }

    func insert(_ ids: [Int], for word: [UInt8]) {
        guard word.count < 256 else { return }
        lock.lock()
        defer { lock.unlock() }
        if storage.count < capacity { storage[word] = ids }
    }
}
