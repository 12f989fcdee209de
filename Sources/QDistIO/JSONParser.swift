import Foundation

/// A strict RFC 8259 JSON parser that reports the byte offset of the first problem.
///
/// Foundation's `JSONSerialization` quietly accepts duplicate keys (the last one wins), which
/// would let a malformed safetensors header declare a tensor twice; this parser rejects them,
/// along with invalid UTF-8, lone surrogates, control characters in strings, numbers outside
/// Double's range, nesting deeper than 128, and anything but whitespace after the value.
/// Offsets in `JSONParseError` count from the first byte handed in, so a caller that parses a
/// slice of a file adds the slice's start.
public struct JSONParser {
    /// Rules that differ between the documents qdist reads.
    public struct Options: Sendable {
        /// Reject numbers with a fraction or exponent, and integers above 2^53 in magnitude.
        /// Safetensors headers hold only shapes and offsets, which the reference reads as u64.
        public var integersOnly: Bool
        /// Deepest nesting of arrays and objects allowed (serde_json's default limit).
        public var maxDepth: Int

        public init(integersOnly: Bool = false, maxDepth: Int = 128) {
            self.integersOnly = integersOnly
            self.maxDepth = maxDepth
        }
    }

    /// Parses one JSON value (surrounded by optional whitespace) from `bytes`.
    public static func parse(_ bytes: UnsafeRawBufferPointer, options: Options = Options()) throws(JSONParseError) -> JSONValue {
        var parser = JSONParser(bytes: bytes, options: options)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.position < bytes.count {
            throw JSONParseError(offset: parser.position, message: "trailing characters after the JSON value (\(parser.describeByte()))")
        }
        return value
    }

    /// Parses one JSON value from an array of bytes.
    public static func parse(_ bytes: [UInt8], options: Options = Options()) throws(JSONParseError) -> JSONValue {
        let result: Result<JSONValue, JSONParseError> = bytes.withUnsafeBytes { raw in
            Result { () throws(JSONParseError) in try parse(raw, options: options) }
        }
        return try result.get()
    }

    /// Parses a UTF-8 string's bytes.
    public static func parse(_ text: String, options: Options = Options()) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8), options: options)
    }

    /// Reads and parses a whole JSON file; a failure names the file and the byte offset.
    public static func parseFile(at url: URL, options: Options = Options()) throws(QDistIOError) -> JSONValue {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw QDistIOError(.io, url: url, "cannot read: \(FileErrorReason.describe(error, path: url.path))")
        }
        do {
            return try parse([UInt8](data), options: options)
        } catch {
            throw QDistIOError(.json, url: url, "invalid JSON at byte \(error.offset): \(error.message)", byteOffset: error.offset)
        }
    }

    // MARK: - Machinery

    private let bytes: UnsafeRawBufferPointer
    private let options: Options
    private var position = 0

    private init(bytes: UnsafeRawBufferPointer, options: Options) {
        self.bytes = bytes
        self.options = options
    }

    private var atEnd: Bool { position >= bytes.count }
    private var current: UInt8 { bytes[position] }

    private func describeByte() -> String {
        guard !atEnd else { return "end of input" }
        let b = current
        if b >= 0x21 && b < 0x7F { return "'\(Character(UnicodeScalar(b)))'" }
        return "byte 0x" + String(b, radix: 16, uppercase: true)
    }

    private func fail(_ message: String, at offset: Int? = nil) -> JSONParseError {
        JSONParseError(offset: offset ?? position, message: message)
    }

    private mutating func skipWhitespace() {
        while !atEnd, current == 0x20 || current == 0x0A || current == 0x0D || current == 0x09 { position += 1 }
    }

    private mutating func expectLiteral(_ word: StaticString, value: JSONValue) throws(JSONParseError) -> JSONValue {
        let start = position
        let text = UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        for expected in text {
            if atEnd || current != expected { throw fail("invalid literal (expected \(word))", at: start) }
            position += 1
        }
        return value
    }

    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard !atEnd else { throw fail("unexpected end of input, expected a value") }
        switch current {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try expectLiteral("true", value: .bool(true))
        case UInt8(ascii: "f"): return try expectLiteral("false", value: .bool(false))
        case UInt8(ascii: "n"): return try expectLiteral("null", value: .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw fail("unexpected \(describeByte()), expected a value")
        }
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        if depth > options.maxDepth { throw fail("nesting deeper than \(options.maxDepth)") }
        position += 1  // {
        var pairs: [(key: String, value: JSONValue)] = []
        var seen = Set<String>()
        skipWhitespace()
        if !atEnd && current == UInt8(ascii: "}") {
            position += 1
            return .object(pairs)
        }
        while true {
            skipWhitespace()
            guard !atEnd, current == UInt8(ascii: "\"") else { throw fail("expected a string key, found \(describeByte())") }
            let keyStart = position
            let key = try parseString()
            if !seen.insert(key).inserted { throw fail("duplicate key \(JSONSerializer.quoted(key))", at: keyStart) }
            skipWhitespace()
            guard !atEnd, current == UInt8(ascii: ":") else { throw fail("expected ':' after key, found \(describeByte())") }
            position += 1
            skipWhitespace()
            pairs.append((key: key, value: try parseValue(depth: depth)))
            skipWhitespace()
            guard !atEnd else { throw fail("unexpected end of input inside an object") }
            if current == UInt8(ascii: ",") { position += 1; continue }
            if current == UInt8(ascii: "}") { position += 1; return .object(pairs) }
            throw fail("expected ',' or '}' in object, found \(describeByte())")
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        if depth > options.maxDepth { throw fail("nesting deeper than \(options.maxDepth)") }
        position += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if !atEnd && current == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard !atEnd else { throw fail("unexpected end of input inside an array") }
            if current == UInt8(ascii: ",") { position += 1; continue }
            if current == UInt8(ascii: "]") { position += 1; return .array(elements) }
            throw fail("expected ',' or ']' in array, found \(describeByte())")
        }
    }

    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = position
        var isInteger = true
        if current == UInt8(ascii: "-") { position += 1 }
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.position
            while !p.atEnd, p.current >= UInt8(ascii: "0"), p.current <= UInt8(ascii: "9") { p.position += 1 }
            return p.position - s
        }
        guard !atEnd, current >= UInt8(ascii: "0"), current <= UInt8(ascii: "9") else {
            throw fail("invalid number: expected a digit", at: position)
        }
        if current == UInt8(ascii: "0") {
            position += 1
            if !atEnd, current >= UInt8(ascii: "0"), current <= UInt8(ascii: "9") {
                throw fail("invalid number: leading zero", at: start)
            }
        } else {
            _ = digits(&self)
        }
        if !atEnd, current == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            if digits(&self) == 0 { throw fail("invalid number: expected a digit after '.'") }
        }
        if !atEnd, current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            isInteger = false
            position += 1
            if !atEnd, current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            if digits(&self) == 0 { throw fail("invalid number: expected a digit in the exponent") }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        if options.integersOnly && !isInteger {
            throw fail("expected an integer, found \(text)", at: start)
        }
        guard let value = Double(text), value.isFinite else { throw fail("number \(text) out of range", at: start) }
        if options.integersOnly && abs(value) > 9_007_199_254_740_992 {
            throw fail("integer \(text) is larger than 2^53", at: start)
        }
        return .number(value)
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard !atEnd else { throw fail("unexpected end of input in \\u escape") }
            let c = current
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("invalid hex digit in \\u escape")
            }
            v = v << 4 | d
            position += 1
        }
        return v
    }

    private mutating func parseString() throws(JSONParseError) -> String {
        position += 1  // opening quote
        var out: [UInt8] = []
        var runStart = position
        while true {
            guard !atEnd else { throw fail("unterminated string") }
            let c = current
            if c == UInt8(ascii: "\"") {
                out.append(contentsOf: bytes[runStart..<position])
                position += 1
                return String(decoding: out, as: UTF8.self)
            }
            if c < 0x20 { throw fail("control character 0x\(String(c, radix: 16, uppercase: true)) in string (must be escaped)") }
            if c < 0x80 {
                position += 1
                if c != UInt8(ascii: "\\") { continue }
                out.append(contentsOf: bytes[runStart..<(position - 1)])
                try appendEscape(into: &out)
                runStart = position
                continue
            }
            let length = UTF8Validation.sequenceLength(bytes, at: position)
            if length == 0 { throw fail("invalid UTF-8 in string") }
            position += length
        }
    }

    private mutating func appendEscape(into out: inout [UInt8]) throws(JSONParseError) {
        guard !atEnd else { throw fail("unexpected end of input after '\\'") }
        let escapeStart = position - 1
        let e = current
        position += 1
        switch e {
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "/"): out.append(0x2F)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try parseHex4()
            if (0xD800..<0xDC00).contains(scalar) {
                guard position + 1 < bytes.count, current == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                    throw fail("lone leading surrogate in \\u escape", at: escapeStart)
                }
                position += 2
                let low = try parseHex4()
                guard (0xDC00..<0xE000).contains(low) else { throw fail("invalid low surrogate in \\u escape", at: escapeStart) }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00..<0xE000).contains(scalar) {
                throw fail("lone trailing surrogate in \\u escape", at: escapeStart)
            }
            guard let unicode = UnicodeScalar(scalar) else { throw fail("invalid \\u escape", at: escapeStart) }
            UTF8.encode(unicode) { out.append($0) }
        default:
            throw fail("invalid escape '\\\(Character(UnicodeScalar(e)))'", at: escapeStart)
        }
    }
}

/// Where and why `JSONParser` stopped; `offset` counts bytes from the start of its input.
public struct JSONParseError: Error, CustomStringConvertible, Sendable, Equatable {
    public var offset: Int
    public var message: String
    public var description: String { "byte \(offset): \(message)" }
}

/// Strict UTF-8 checks (no overlong forms, no surrogates, nothing above U+10FFFF).
enum UTF8Validation {
    /// Length of the valid multi-byte sequence starting at `i`, or 0 when it is invalid.
    static func sequenceLength(_ b: UnsafeRawBufferPointer, at i: Int) -> Int {
        let n = b.count, c0 = b[i]
        func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool { i + k < n && b[i + k] >= lo && b[i + k] <= hi }
        switch c0 {
        case 0xC2...0xDF: return cont(1) ? 2 : 0
        case 0xE0: return cont(1, 0xA0) && cont(2) ? 3 : 0
        case 0xE1...0xEC, 0xEE...0xEF: return cont(1) && cont(2) ? 3 : 0
        case 0xED: return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0
        case 0xF0: return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0
        case 0xF1...0xF3: return cont(1) && cont(2) && cont(3) ? 4 : 0
        case 0xF4: return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0
        default: return 0
        }
    }
}
