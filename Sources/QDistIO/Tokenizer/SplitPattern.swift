// Hand-compiled scanners for the pre-tokenizer regexes of
// https://github.com/huggingface/tokenizers/blob/main/tokenizers/src/pre_tokenizers/byte_level.rs (GPT-2)
// and the Llama 3 / Qwen2 `Split` patterns (transformers `GGUF_PRE_TOKENIZER_SPLITS`).

/// A pattern a `Split` (or `ByteLevel`) pre-tokenizer cuts text with, matched by a scanner
/// written for it instead of a regex engine.
///
/// Swift `Regex` is far too slow for a 1 MB corpus, so the patterns these families ship are
/// recognised by their exact text and scanned by hand over Unicode scalars, reproducing the
/// reference's leftmost-first alternation (Oniguruma) match for match:
/// - GPT-2 (`ByteLevel` with `use_regex`):
///   `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// - Llama 3 (`\p{N}{1,3}`) and Qwen2 (`\p{N}`):
///   `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// Both tile the text (some alternative matches at every position), so each scanner returns
/// the end of the match that starts at a given position. Any other regex is refused when the
/// tokenizer is loaded rather than approximated.
enum SplitPattern: Sendable, Equatable {
    /// The GPT-2 regex (`ByteLevel` pre-tokenizer with `use_regex: true`).
    case gpt2
    /// The Llama 3 family regex; `maxDigits` is 3 for Llama 3 and 1 for Qwen2.
    case llama3(maxDigits: Int)
    /// A literal string (`{"String": …}` in tokenizer.json), matched without overlaps.
    case literal([UInt32])

    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Regex =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Regex =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The scanner for a regex from tokenizer.json, or `nil` when it is not one we compiled.
    init?(regex: String) {
        switch regex {
        case Self.gpt2Regex: self = .gpt2
        case Self.llama3Regex: self = .llama3(maxDigits: 3)
        case Self.qwen2Regex: self = .llama3(maxDigits: 1)
        default: return nil
        }
    }

    /// Calls `body(start, end, isMatch)` for consecutive, non-empty spans covering `text`:
    /// matches, and the gaps between them (the reference's `find_matches`).
    func forEachSpan(in text: UnsafeBufferPointer<UInt32>, _ body: (Int, Int, Bool) -> Void) {
        let n = text.count
        guard n > 0 else { return }
        switch self {
        case .gpt2:
            var i = 0
            while i < n {
                let end = Self.gpt2MatchEnd(text, from: i)
                body(i, end, true)
                i = end
            }
        case .llama3(let maxDigits):
            var i = 0
            while i < n {
                let end = Self.llama3MatchEnd(text, from: i, maxDigits: maxDigits)
                body(i, end, true)
                i = end
            }
        case .literal(let needle):
            guard !needle.isEmpty else { return body(0, n, false) }
            var previous = 0, i = 0
            while i + needle.count <= n {
                if text[i] == needle[0] && (1..<needle.count).allSatisfy({ text[i + $0] == needle[$0] }) {
                    if previous < i { body(previous, i, false) }
                    body(i, i + needle.count, true)
                    i += needle.count
                    previous = i
                } else {
                    i += 1
                }
            }
            if previous < n { body(previous, n, false) }
        }
    }

    // MARK: - Scanners

    private static let apostrophe: UInt32 = 0x27, space: UInt32 = 0x20, cr: UInt32 = 0x0D, lf: UInt32 = 0x0A

    /// End of `'s|'t|'re|'ve|'m|'ll|'d` at `i` (which holds an apostrophe), or `nil`.
    /// Case-insensitively, `s` also matches U+017F (ſ), which case-folds to it.
    @inline(__always)
    private static func contractionEnd(_ t: UnsafeBufferPointer<UInt32>, _ i: Int, ignoreCase: Bool) -> Int? {
        let n = t.count
        func at(_ k: Int) -> UInt32? {
            guard k < n else { return nil }
            let v = t[k]
            if ignoreCase {
                if v == 0x17F { return 0x73 }
                if (0x41...0x5A).contains(v) { return v + 0x20 }
            }
            return v
        }
        switch at(i + 1) {
        case 0x73, 0x74, 0x6D, 0x64: return i + 2  // s t m d
        case 0x72, 0x76: return at(i + 2) == 0x65 ? i + 3 : nil  // re ve
        case 0x6C: return at(i + 2) == 0x6C ? i + 3 : nil  // ll
        default: return nil
        }
    }

    /// End of the run of scalars of `category` starting at `i`, at most `limit` long.
    @inline(__always)
    private static func runEnd(_ t: UnsafeBufferPointer<UInt32>, from i: Int, _ category: ScalarCategory,
                               limit: Int = .max) -> Int {
        var j = i
        let stop = limit == .max ? t.count : min(t.count, i + limit)
        while j < stop && ScalarCategory.of(t[j]) == category { j += 1 }
        return j
    }

    /// `\s+(?!\S)|\s+` for the whitespace run `[i, j)`: the run less its last scalar when a
    /// non-space follows and the run is longer than one, else the whole run.
    @inline(__always)
    private static func whitespaceEnd(_ i: Int, _ j: Int, count n: Int) -> Int {
        (j < n && j - i >= 2) ? j - 1 : j
    }

    static func gpt2MatchEnd(_ t: UnsafeBufferPointer<UInt32>, from i: Int) -> Int {
        let n = t.count
        let c = t[i]
        if c == apostrophe, let end = contractionEnd(t, i, ignoreCase: false) { return end }
        let category = ScalarCategory.of(c)
        if c == space && i + 1 < n {
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+` with the optional space taken
            let next = ScalarCategory.of(t[i + 1])
            if next != .whitespace { return runEnd(t, from: i + 1, next) }
        }
        if category != .whitespace { return runEnd(t, from: i, category) }
        return whitespaceEnd(i, runEnd(t, from: i, .whitespace), count: n)
    }

    static func llama3MatchEnd(_ t: UnsafeBufferPointer<UInt32>, from i: Int, maxDigits: Int) -> Int {
        let n = t.count
        let c = t[i]
        if c == apostrophe, let end = contractionEnd(t, i, ignoreCase: true) { return end }
        let category = ScalarCategory.of(c)
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if category == .letter { return runEnd(t, from: i, .letter) }
        if c != cr && c != lf && category != .number && i + 1 < n && ScalarCategory.of(t[i + 1]) == .letter {
            return runEnd(t, from: i + 1, .letter)
        }
        // \p{N}{1,maxDigits}
        if category == .number { return runEnd(t, from: i, .number, limit: maxDigits) }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        var otherStart = -1
        if category == .other {
            otherStart = i
        } else if c == space && i + 1 < n && ScalarCategory.of(t[i + 1]) == .other {
            otherStart = i + 1
        }
        if otherStart >= 0 {
            var j = runEnd(t, from: otherStart, .other)
            while j < n && (t[j] == cr || t[j] == lf) { j += 1 }
            return j
        }
        // c is whitespace: `\s*[\r\n]+` ends just after the run's last CR or LF
        let j = runEnd(t, from: i, .whitespace)
        var k = j - 1
        while k >= i {
            if t[k] == cr || t[k] == lf { return k + 1 }
            k -= 1
        }
        return whitespaceEnd(i, j, count: n)
    }
}
