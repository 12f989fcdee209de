/// Learns byte-level BPE merges from text, GPT-2 style: words split by the GPT-2 pattern,
/// spelled in the byte-level alphabet, then the most frequent adjacent pair merged repeatedly.
///
/// This is what gives the tiny generated models a real, working tokenizer (`qdist tiny-model`),
/// so every code path that needs one runs without downloads. Ties between equally frequent
/// pairs go to the lexicographically smallest pair, so the result is deterministic.
public enum ByteLevelBPETrainer {
    /// The vocabulary the trainer produces: `specialTokens`, then the 256 byte symbols, then
    /// one token per merge, in that id order; and the merges as "a b" strings.
    public struct Result: Sendable, Equatable {
        public var tokens: [String]
        public var merges: [String]
        /// ggml token types per token: 3 (control) for specials, 1 (normal) otherwise.
        public var tokenTypes: [Int]
    }

    /// Trains until the vocabulary has `vocabularySize` tokens or no pair occurs twice.
    public static func train(text: String, vocabularySize: Int, specialTokens: [String]) -> Result {
        let base = specialTokens + ByteLevelAlphabet.scalarForByte.map { String(Character($0)) }
        precondition(vocabularySize >= base.count, "vocabulary of \(vocabularySize) cannot hold \(base.count) base tokens")
        // Word frequencies, each word a sequence of byte-level symbols.
        var counts: [[String]: Int] = [:]
        let scalars = text.unicodeScalars.map(\.value)
        scalars.withUnsafeBufferPointer { buffer in
            SplitPattern.gpt2.forEachSpan(in: buffer) { start, end, _ in
                var utf8: [UInt8] = []
                for v in buffer[start..<end] {
                    if let s = Unicode.Scalar(v) { utf8 += Array(String(Character(s)).utf8) }
                }
                counts[utf8.map { String(Character(ByteLevelAlphabet.scalarForByte[Int($0)])) }, default: 0] += 1
            }
        }
        var words = counts.map { (symbols: $0.key, count: $0.value) }.sorted { $0.symbols.joined() < $1.symbols.joined() }
        var tokens = base, merges: [String] = []
        var known = Set(tokens)
        while tokens.count < vocabularySize {
            var pairCounts: [Pair: Int] = [:]
            for w in words where w.symbols.count > 1 {
                for i in 0..<(w.symbols.count - 1) { pairCounts[Pair(w.symbols[i], w.symbols[i + 1]), default: 0] += w.count }
            }
            guard let best = pairCounts.filter({ $0.value >= 2 }).max(by: { a, b in
                a.value != b.value ? a.value < b.value : (a.key.first, a.key.second) > (b.key.first, b.key.second)
            })?.key else { break }
            let merged = best.first + best.second
            merges.append("\(best.first) \(best.second)")
            // Two different splits can concatenate to the same token: it keeps its first id.
            if known.insert(merged).inserted { tokens.append(merged) }
            for k in words.indices where words[k].symbols.count > 1 {
                var out: [String] = [], i = 0
                let s = words[k].symbols
                while i < s.count {
                    if i + 1 < s.count && s[i] == best.first && s[i + 1] == best.second { out.append(merged); i += 2 }
                    else { out.append(s[i]); i += 1 }
                }
                words[k].symbols = out
            }
        }
        return Result(tokens: tokens, merges: merges,
                      tokenTypes: tokens.indices.map { $0 < specialTokens.count ? 3 : 1 })
    }

    struct Pair: Hashable {
        let first: String, second: String
        init(_ a: String, _ b: String) { first = a; second = b }
    }
}
