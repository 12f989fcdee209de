// port of https://github.com/huggingface/tokenizers/blob/main/tokenizers/src/tokenizer/added_vocabulary.rs

/// A token from tokenizer.json's `added_tokens`: matched whole in the text before
/// pre-tokenization, so `<|im_start|>` is one id instead of seven byte-level pieces.
///
/// The flags mean what they mean in the reference: `special` tokens are skipped by
/// `decode(_:skipSpecialTokens: true)`; `normalized` tokens are looked for in the normalized
/// text (after NFC), the others in the raw text, first; `lstrip`/`rstrip` swallow the
/// whitespace on that side; `singleWord` only matches where no word character touches it.
public struct AddedToken: Sendable, Equatable {
    /// The token's text.
    public var content: String
    /// The id the reference assigns (the model's id when the vocabulary holds `content`).
    public var id: Int
    /// Skipped by `decode(_:skipSpecialTokens: true)`.
    public var special: Bool
    /// Matched in the normalized text (after NFC) instead of the raw text.
    public var normalized: Bool
    /// Swallows the whitespace before it.
    public var lstrip: Bool
    /// Swallows the whitespace after it.
    public var rstrip: Bool
    /// Only matches where no word character (`\w`) touches it on either side.
    public var singleWord: Bool

    /// A token with the reference's defaults for the flags not given.
    public init(content: String, id: Int, special: Bool, normalized: Bool = false, lstrip: Bool = false,
                rstrip: Bool = false, singleWord: Bool = false) {
        self.content = content
        self.id = id
        self.special = special
        self.normalized = normalized
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.singleWord = singleWord
    }
}

/// A piece of text after added tokens are cut out: either plain text still to tokenize, or
/// one added token's id.
enum TextSegment {
    case text(ArraySlice<UInt32>)
    case token(Int)
}

/// Finds added tokens in text the way the reference's Aho-Corasick set does
/// (leftmost-longest, non-overlapping), then applies `single_word`, `lstrip` and `rstrip`.
struct AddedTokenMatcher: Sendable {
    private struct Candidate: Sendable {
        var scalars: [UInt32]
        var token: AddedToken
    }

    /// Candidates by first scalar, longest first.
    private let byFirstScalar: [UInt32: [Candidate]]

    init(_ tokens: [AddedToken], matchText: (AddedToken) -> String = { $0.content }) {
        var table: [UInt32: [Candidate]] = [:]
        for token in tokens {
            let scalars = matchText(token).unicodeScalars.map(\.value)
            guard let first = scalars.first else { continue }
            table[first, default: []].append(Candidate(scalars: scalars, token: token))
        }
        for key in table.keys { table[key]!.sort { $0.scalars.count > $1.scalars.count } }
        byFirstScalar = table
    }

    var isEmpty: Bool { byFirstScalar.isEmpty }

    /// Cuts `text` into plain pieces and added-token ids, in order, calling `body` for each
    /// (empty plain pieces are not reported).
    func split(_ text: ArraySlice<UInt32>, _ body: (TextSegment) -> Void) {
        guard !byFirstScalar.isEmpty, !text.isEmpty else {
            if !text.isEmpty { body(.text(text)) }
            return
        }
        let base = text.startIndex, end = text.endIndex
        var emittedUpTo = base
        var i = base
        while i < end {
            guard let candidates = byFirstScalar[text[i]],
                  let match = candidates.first(where: { Self.matches($0.scalars, in: text, at: i) })
            else {
                i += 1
                continue
            }
            let rawEnd = i + match.scalars.count
            var start = i, stop = rawEnd
            let token = match.token
            if token.singleWord {
                let startsClean = start == base || !ScalarCategory.isWordCharacter(text[start - 1])
                let stopsClean = stop == end || !ScalarCategory.isWordCharacter(text[stop])
                if !startsClean || !stopsClean {
                    i = rawEnd
                    continue
                }
            }
            if token.lstrip {
                var s = start
                while s > base && ScalarCategory.isWhitespace(text[s - 1]) { s -= 1 }
                start = max(s, emittedUpTo)
            }
            if token.rstrip {
                while stop < end && ScalarCategory.isWhitespace(text[stop]) { stop += 1 }
            }
            if emittedUpTo < start { body(.text(text[emittedUpTo..<start])) }
            body(.token(token.id))
            emittedUpTo = max(emittedUpTo, stop)
            i = rawEnd
        }
        if emittedUpTo < end { body(.text(text[emittedUpTo..<end])) }
    }

    @inline(__always)
    private static func matches(_ needle: [UInt32], in text: ArraySlice<UInt32>, at i: Int) -> Bool {
        guard i + needle.count <= text.endIndex else { return false }
        var k = 1
        while k < needle.count {
            if text[i + k] != needle[k] { return false }
            k += 1
        }
        return true
    }
}
