// port of https://github.com/huggingface/tokenizers/blob/main/tokenizers/src/pre_tokenizers/byte_level.rs
// (`bytes_char` and the ByteLevel decoder)

/// GPT-2's reversible spelling of the 256 byte values as 256 printable Unicode scalars.
///
/// Byte-level BPE vocabularies (GPT-2, Llama 3, Qwen2, SmolLM2) never store raw bytes: the
/// byte `0x20` is written `Ġ` (U+0120), `0x0A` is `Ċ`, and every printable Latin-1 byte is
/// itself. A token in `tokenizer.json` is this spelling of its UTF-8 bytes, so encoding maps
/// the text's bytes into the alphabet before looking tokens up, and decoding maps them back.
/// A token that uses a scalar outside the alphabet (an added token such as `<|a b|>`) cannot
/// be respelled and decodes to its own UTF-8 bytes, exactly as the reference decoder does.
public enum ByteLevelAlphabet {
    /// The scalar that spells each byte, indexed by byte value.
    public static let scalarForByte: [Unicode.Scalar] = {
        var printable: [Int] = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var scalars = printable.map { Unicode.Scalar(UInt32($0))! }
        var extra: UInt32 = 0
        for b in 0...255 where !printable.contains(b) {
            printable.append(b)
            scalars.append(Unicode.Scalar(256 + extra)!)
            extra += 1
        }
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        for (b, s) in zip(printable, scalars) { table[b] = s }
        return table
    }()

    /// Byte value for each scalar below U+0144 (the largest in the alphabet), or -1.
    private static let byteForScalarValue: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, s) in scalarForByte.enumerated() { table[Int(s.value)] = Int16(b) }
        return table
    }()

    /// The byte `scalar` spells, or `nil` when it is not in the alphabet.
    @inline(__always)
    public static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        let v = Int(scalar.value)
        guard v < byteForScalarValue.count else { return nil }
        let b = byteForScalarValue[v]
        return b < 0 ? nil : UInt8(b)
    }

    /// `bytes` spelled in the alphabet (what a vocabulary key looks like).
    public static func spell<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var out = String.UnicodeScalarView()
        for b in bytes { out.append(scalarForByte[Int(b)]) }
        return String(out)
    }

    /// The bytes a spelled token stands for, or `nil` when some scalar of it is outside the
    /// alphabet.
    public static func bytes(spelledBy token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for s in token.unicodeScalars {
            guard let b = byte(for: s) else { return nil }
            out.append(b)
        }
        return out
    }

    /// What the reference ByteLevel decoder turns one token into: its spelled bytes, or its own
    /// UTF-8 bytes when it is not spelled in the alphabet.
    public static func decodedBytes(of token: String) -> [UInt8] {
        bytes(spelledBy: token) ?? Array(token.utf8)
    }

    /// True when every scalar of `token` is in the alphabet.
    public static func isSpelled(_ token: String) -> Bool {
        token.unicodeScalars.allSatisfy { byte(for: $0) != nil }
    }
}
