/// The classes of Unicode scalar that the pre-tokenizer patterns are written in: `\p{L}`,
/// `\p{N}`, `\s` and everything else (`[^\s\p{L}\p{N}]`).
///
/// The reference (`tokenizers`, built on Oniguruma and Rust's `regex`) uses Unicode general
/// categories: letters are Lu Ll Lt Lm Lo, numbers are Nd Nl No, and `\s` is the White_Space
/// property (U+0009–000D, U+0020, U+0085, U+00A0, U+1680, U+2000–200A, U+2028, U+2029,
/// U+202F, U+205F, U+3000). The three never overlap, so every scalar is in exactly one class.
/// ASCII is answered from a table; other scalars ask the standard library's Unicode data,
/// whose version may differ from the reference's only for newly assigned characters.
enum ScalarCategory: UInt8, Sendable {
    case letter
    case number
    case whitespace
    case other

    private static let ascii: [ScalarCategory] = (0..<128).map { v -> ScalarCategory in
        switch v {
        case 0x09...0x0D, 0x20: return .whitespace
        case 0x30...0x39: return .number
        case 0x41...0x5A, 0x61...0x7A: return .letter
        default: return .other
        }
    }

    /// The class of the scalar with value `value` (an invalid value counts as `.other`).
    @inline(__always)
    static func of(_ value: UInt32) -> ScalarCategory {
        if value < 128 { return ascii[Int(value)] }
        return nonASCII(value)
    }

    private static func nonASCII(_ value: UInt32) -> ScalarCategory {
        guard let scalar = Unicode.Scalar(value) else { return .other }
        let properties = scalar.properties
        if properties.isWhitespace { return .whitespace }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    /// Rust `regex`'s Unicode `\w` (Alphabetic, marks, Nd, Pc, Join_Control), which decides
    /// whether an added token marked `single_word` touches a word.
    static func isWordCharacter(_ value: UInt32) -> Bool {
        if value < 128 {
            return (0x30...0x39).contains(value) || (0x41...0x5A).contains(value)
                || (0x61...0x7A).contains(value) || value == 0x5F
        }
        guard let scalar = Unicode.Scalar(value) else { return false }
        let properties = scalar.properties
        if properties.isAlphabetic || properties.isJoinControl { return true }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation:
            return true
        default:
            return false
        }
    }

    /// Rust `regex`'s `\s`: the White_Space property.
    @inline(__always)
    static func isWhitespace(_ value: UInt32) -> Bool {
        of(value) == .whitespace
    }
}
