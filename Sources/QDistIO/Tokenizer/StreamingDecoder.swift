/// Turns token ids into text one id at a time, for printing while a model generates.
///
/// A byte-level token can end in the middle of a character (an emoji is often two or three
/// tokens), and decoding each token alone would print U+FFFD for each half. This decoder keeps
/// the bytes of an unfinished character until the next id completes it, so the concatenation
/// of everything `append` and `finish` return equals `decode(allIDs)` exactly: bytes that can
/// never become a character are replaced by U+FFFD as soon as that is certain, and `finish()`
/// flushes whatever is still held.
public struct StreamingDecoder: Sendable {
    private let tokenizer: BPETokenizer
    private let skipSpecialTokens: Bool
    private let joinsWithSpaces: Bool
    private var pending: [UInt8] = []
    private var sawToken = false

    init(tokenizer: BPETokenizer, skipSpecialTokens: Bool, joinsWithSpaces: Bool) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
        self.joinsWithSpaces = joinsWithSpaces
    }

    /// Adds one id; returns the text that is now complete (often empty mid-character).
    public mutating func append(_ id: Int) -> String {
        guard let bytes = tokenizer.decodedBytes(for: id, skipSpecialTokens: skipSpecialTokens) else { return "" }
        if joinsWithSpaces && sawToken { pending.append(0x20) }
        sawToken = true
        pending += bytes
        let cut = Self.completePrefixLength(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Returns what is still held (an unfinished character becomes U+FFFD) and starts over.
    public mutating func finish() -> String {
        defer {
            pending.removeAll()
            sawToken = false
        }
        return String(decoding: pending, as: UTF8.self)
    }

    /// How many leading bytes can be decoded now: all of them, unless the buffer ends with the
    /// valid beginning of a multi-byte character, which is held back.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        var lead = n - 1
        while lead >= 0 && lead >= n - 4 && bytes[lead] & 0xC0 == 0x80 { lead -= 1 }
        guard lead >= 0 && lead >= n - 4 else { return n }
        let first = bytes[lead]
        let needed: Int
        switch first {
        case 0xC2...0xDF: needed = 2
        case 0xE0...0xEF: needed = 3
        case 0xF0...0xF4: needed = 4
        default: return n
        }
        let have = n - lead
        guard have < needed else { return n }
        if have >= 2 {
            let second = bytes[lead + 1]
            let allowed: ClosedRange<UInt8>
            switch first {
            case 0xE0: allowed = 0xA0...0xBF
            case 0xED: allowed = 0x80...0x9F
            case 0xF0: allowed = 0x90...0xBF
            case 0xF4: allowed = 0x80...0x8F
            default: allowed = 0x80...0xBF
            }
            guard allowed.contains(second) else { return n }
        }
        return lead
    }
}
