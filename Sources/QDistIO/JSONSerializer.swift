/// Writes `JSONValue`s as bytes in the two dialects qdist's files need.
///
/// `.compact` is serde_json's `to_string` (what the safetensors reference writer uses): no
/// whitespace, keys in the given order, `"` `\` and control characters escaped (`\b \f \n \r
/// \t`, others as lowercase `\u00xx`), everything else, `/` and non-ASCII included, written
/// raw. `.pretty` is Python's `json.dumps(value, indent=2, sort_keys=True)` (what transformers
/// uses for `config.json` and `model.safetensors.index.json`): two-space indent, `", "`-free
/// line breaks, `": "` after keys, non-ASCII escaped as `\uXXXX`. Integral numbers within
/// ±2^53 are written without a fraction; non-finite numbers (which JSON cannot hold) as `null`.
public enum JSONSerializer {
    /// Layout of the output.
    public enum Style: Sendable {
        /// One line, no spaces, keys in document order (serde_json).
        case compact
        /// Indented by two spaces; `sortKeys` sorts object keys by code point (Python's `sort_keys`).
        case pretty(sortKeys: Bool)
    }

    /// The UTF-8 bytes of `value` in `style`.
    public static func serialize(_ value: JSONValue, style: Style = .compact) -> [UInt8] {
        var out: [UInt8] = []
        switch style {
        case .compact: writeCompact(value, into: &out)
        case .pretty(let sortKeys): writePretty(value, indent: 0, sortKeys: sortKeys, into: &out)
        }
        return out
    }

    /// A string as a compact JSON string literal (serde_json escaping).
    public static func quoted(_ string: String) -> String {
        var out: [UInt8] = []
        writeString(string, asciiOnly: false, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The JSON text of a number: integers without a fraction, others as Swift's shortest
    /// round-tripping form (which matches Python's `repr`, e.g. `1e-05`).
    public static func numberText(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d == d.rounded(), abs(d) <= 9_007_199_254_740_992 { return String(Int64(d)) }
        return d.description
    }

    private static func writeCompact(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out += Array("null".utf8)
        case .bool(let b): out += Array((b ? "true" : "false").utf8)
        case .number(let d): out += Array(numberText(d).utf8)
        case .float(let d):
            let text = numberText(d)
            out += Array((d.isFinite && !text.contains(".") && !text.contains("e") ? text + ".0" : text).utf8)
        case .string(let s): writeString(s, asciiOnly: false, into: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (i, e) in elements.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                writeCompact(e, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let pairs):
            out.append(UInt8(ascii: "{"))
            for (i, pair) in pairs.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                writeString(pair.key, asciiOnly: false, into: &out)
                out.append(UInt8(ascii: ":"))
                writeCompact(pair.value, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func newline(_ indent: Int, into out: inout [UInt8]) {
        out.append(0x0A)
        out += [UInt8](repeating: 0x20, count: indent * 2)
    }

    private static func writePretty(_ value: JSONValue, indent: Int, sortKeys: Bool, into out: inout [UInt8]) {
        switch value {
        case .null, .bool, .number, .float: writeCompact(value, into: &out)
        case .string(let s): writeString(s, asciiOnly: true, into: &out)
        case .array(let elements):
            if elements.isEmpty { out += Array("[]".utf8); return }
            out.append(UInt8(ascii: "["))
            for (i, e) in elements.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1, into: &out)
                writePretty(e, indent: indent + 1, sortKeys: sortKeys, into: &out)
            }
            newline(indent, into: &out)
            out.append(UInt8(ascii: "]"))
        case .object(var pairs):
            if pairs.isEmpty { out += Array("{}".utf8); return }
            if sortKeys { pairs.sort { $0.key.unicodeScalars.lexicographicallyPrecedes($1.key.unicodeScalars) } }
            out.append(UInt8(ascii: "{"))
            for (i, pair) in pairs.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1, into: &out)
                writeString(pair.key, asciiOnly: true, into: &out)
                out += Array(": ".utf8)
                writePretty(pair.value, indent: indent + 1, sortKeys: sortKeys, into: &out)
            }
            newline(indent, into: &out)
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func writeUnicodeEscape(_ unit: UInt16, into out: inout [UInt8]) {
        out += [0x5C, UInt8(ascii: "u")]
        for shift in stride(from: 12, through: 0, by: -4) { out.append(hexDigits[Int(unit >> UInt16(shift)) & 0xF]) }
    }

    private static func writeString(_ s: String, asciiOnly: Bool, into out: inout [UInt8]) {
        out.append(0x22)
        for scalar in s.unicodeScalars {
            let v = scalar.value
            switch v {
            case 0x22: out += [0x5C, 0x22]
            case 0x5C: out += [0x5C, 0x5C]
            case 0x08: out += [0x5C, UInt8(ascii: "b")]
            case 0x0C: out += [0x5C, UInt8(ascii: "f")]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            case 0..<0x20: writeUnicodeEscape(UInt16(v), into: &out)
            case 0x7F where asciiOnly: writeUnicodeEscape(0x7F, into: &out)
            case 0x20..<0x80: out.append(UInt8(v))
            default:
                if asciiOnly {
                    for unit in String(scalar).utf16 { writeUnicodeEscape(unit, into: &out) }
                } else {
                    out += Array(String(scalar).utf8)
                }
            }
        }
        out.append(0x22)
    }
}

extension JSONValue {
    /// This value as JSON bytes (compact by default; see `JSONSerializer`).
    public func serialized(_ style: JSONSerializer.Style = .compact) -> [UInt8] {
        JSONSerializer.serialize(self, style: style)
    }

    /// This value as compact JSON text.
    public var compactText: String { String(decoding: serialized(), as: UTF8.self) }
}
