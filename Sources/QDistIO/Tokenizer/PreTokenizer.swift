// port of https://github.com/huggingface/tokenizers/blob/main/tokenizers/src/pre_tokenizers/
// (split.rs, digits.rs, sequence.rs, byte_level.rs) and NormalizedString::split in
// tokenizers/src/tokenizer/normalizer.rs

/// What a `Split` does with the pieces its pattern matched (the reference's
/// `SplitDelimiterBehavior`; the raw values are the tokenizer.json spellings).
enum SplitBehavior: String, Sendable, CaseIterable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"

    /// The kept pieces, as `(start, end)`, for the spans `(start, end, isMatch)` of a pattern.
    func pieces(from spans: [(Int, Int, Bool)]) -> [(Int, Int)] {
        switch self {
        case .isolated:
            return spans.map { ($0.0, $0.1) }
        case .removed:
            return spans.filter { !$0.2 }.map { ($0.0, $0.1) }
        case .contiguous:
            var out: [(Int, Int)] = []
            var previousMatch = false
            for (start, end, isMatch) in spans {
                if isMatch == previousMatch, !out.isEmpty { out[out.count - 1].1 = end } else { out.append((start, end)) }
                previousMatch = isMatch
            }
            return out
        case .mergedWithPrevious:
            var out: [(Int, Int)] = []
            var previousMatch = false
            for (start, end, isMatch) in spans {
                if isMatch && !previousMatch, !out.isEmpty { out[out.count - 1].1 = end } else { out.append((start, end)) }
                previousMatch = isMatch
            }
            return out
        case .mergedWithNext:
            var reversed: [(Int, Int)] = []
            var previousMatch = false
            for (start, end, isMatch) in spans.reversed() {
                if isMatch && !previousMatch, !reversed.isEmpty {
                    reversed[reversed.count - 1].0 = start
                } else {
                    reversed.append((start, end))
                }
                previousMatch = isMatch
            }
            return reversed.reversed()
        }
    }
}

/// One step of a pre-tokenizer, as tokenizer.json describes it.
enum PreTokenizerStep: Sendable, Equatable {
    /// `Split`: cut with `pattern`, keep the pieces as `behavior` says; `invert` swaps which
    /// spans count as matches.
    case split(SplitPattern, SplitBehavior, invert: Bool)
    /// `Digits`: isolate every number scalar (`individual`), or runs of them.
    case digits(individual: Bool)
    /// `ByteLevel`: optionally prefix a space, optionally cut with the GPT-2 regex; the byte
    /// respelling itself happens when the BPE model reads the word's UTF-8 bytes.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
}

/// Cuts normalized text into the words the BPE model sees, applying each step to every piece
/// the previous one produced (the reference's `Sequence`), and dropping empty pieces.
///
/// Works depth-first on scalar buffers so that a 1 MB text never becomes a list of a few
/// hundred thousand strings: each finished word is handed to `body` while still a view into
/// the input (or into a short prefixed copy when `ByteLevel` adds a space).
struct PreTokenizer: Sendable, Equatable {
    /// The steps, flattened; `ByteLevel` is last (the loader guarantees it).
    let steps: [PreTokenizerStep]

    /// Calls `body` with each word of `text`, in order.
    func forEachWord(in text: UnsafeBufferPointer<UInt32>, _ body: (UnsafeBufferPointer<UInt32>) -> Void) {
        visit(text, step: 0, body)
    }

    private func visit(_ text: UnsafeBufferPointer<UInt32>, step: Int, _ body: (UnsafeBufferPointer<UInt32>) -> Void) {
        guard !text.isEmpty else { return }
        guard step < steps.count else { return body(text) }
        switch steps[step] {
        case .byteLevel(let addPrefixSpace, let useRegex):
            if addPrefixSpace && text[0] != 0x20 {
                var prefixed: [UInt32] = [0x20]
                prefixed.append(contentsOf: text)
                prefixed.withUnsafeBufferPointer { visitByteLevel($0, step: step, useRegex: useRegex, body) }
            } else {
                visitByteLevel(text, step: step, useRegex: useRegex, body)
            }
        case .split(let pattern, let behavior, let invert):
            if behavior == .isolated {
                pattern.forEachSpan(in: text) { start, end, _ in
                    visit(UnsafeBufferPointer(rebasing: text[start..<end]), step: step + 1, body)
                }
                return
            }
            var spans: [(Int, Int, Bool)] = []
            pattern.forEachSpan(in: text) { start, end, isMatch in spans.append((start, end, isMatch != invert)) }
            for (start, end) in behavior.pieces(from: spans) {
                visit(UnsafeBufferPointer(rebasing: text[start..<end]), step: step + 1, body)
            }
        case .digits(let individual):
            let spans = Self.digitSpans(text)
            for (start, end) in (individual ? SplitBehavior.isolated : .contiguous).pieces(from: spans) {
                visit(UnsafeBufferPointer(rebasing: text[start..<end]), step: step + 1, body)
            }
        }
    }

    private func visitByteLevel(_ text: UnsafeBufferPointer<UInt32>, step: Int, useRegex: Bool,
                                _ body: (UnsafeBufferPointer<UInt32>) -> Void) {
        guard useRegex else { return visit(text, step: step + 1, body) }
        SplitPattern.gpt2.forEachSpan(in: text) { start, end, _ in
            visit(UnsafeBufferPointer(rebasing: text[start..<end]), step: step + 1, body)
        }
    }

    /// Every number scalar as its own match, the runs between as gaps (the reference's
    /// `Fn(char) -> bool` pattern with `char::is_numeric`).
    static func digitSpans(_ text: UnsafeBufferPointer<UInt32>) -> [(Int, Int, Bool)] {
        var spans: [(Int, Int, Bool)] = []
        var gapStart = 0
        for i in 0..<text.count where ScalarCategory.of(text[i]) == .number {
            if gapStart < i { spans.append((gapStart, i, false)) }
            spans.append((i, i + 1, true))
            gapStart = i + 1
        }
        if gapStart < text.count { spans.append((gapStart, text.count, false)) }
        return spans
    }
}
