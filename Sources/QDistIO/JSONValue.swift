import Foundation

/// A parsed JSON document that keeps what Foundation's `JSONSerialization` loses: the order of
/// an object's keys, and the difference between `1` and `true`.
///
/// Safetensors headers, `model.safetensors.index.json` and `config.json` are read into this
/// type by `JSONParser` (which rejects duplicate keys) and written back by `serialized()`, so a
/// header we write is byte-for-byte what the reference writer produces. Numbers are `Double`:
/// integers are exact up to 2^53, which covers every shape, offset and file size qdist meets.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    /// A number written with a decimal point even when whole (`6.0`): Python then reads a
    /// float, which some configs insist on (transformers' `llm_int8_threshold`). The parser
    /// never produces it; it equals the `.number` of the same value.
    case float(Double)
    case string(String)
    case array([JSONValue])
    /// Key-value pairs in document order; keys are unique (the parser guarantees it, and
    /// builders in qdist never repeat a key).
    case object([(key: String, value: JSONValue)])

    /// JSON equality: objects are equal when they hold the same keys with equal values, in
    /// any order (compare `objectValue?.map(\.key)` to check order).
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)), let (.float(a), .float(b)), let (.number(a), .float(b)), let (.float(a), .number(b)):
            return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            guard a.count == b.count else { return false }
            var byKey: [String: JSONValue] = [:]
            for (k, v) in b { byKey[k] = v }
            return a.allSatisfy { byKey[$0.key] == $0.value }
        default: return false
        }
    }

    /// An integer as a JSON number (exact for |value| ≤ 2^53).
    public static func integer<T: BinaryInteger>(_ value: T) -> JSONValue { .number(Double(value)) }

    /// The value of `key` when this is an object holding it; `nil` otherwise.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first(where: { $0.key == key })?.value
    }

    /// The pairs of an object, or `nil`.
    public var objectValue: [(key: String, value: JSONValue)]? {
        if case .object(let pairs) = self { return pairs }
        return nil
    }

    /// The elements of an array, or `nil`.
    public var arrayValue: [JSONValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// The text of a string, or `nil`.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value of a number, or `nil`.
    public var doubleValue: Double? {
        if case .number(let d) = self { return d }
        if case .float(let d) = self { return d }
        return nil
    }

    /// The truth value of a boolean, or `nil`.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The number as an `Int` when it is integral and within ±2^53 (so exact); `nil` otherwise.
    public var intValue: Int? {
        guard case .number(let d) = self, d.isFinite, d == d.rounded(), abs(d) <= 9_007_199_254_740_992 else {
            return nil
        }
        return Int(d)
    }

    /// True for `null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// What kind of value this is, for error messages ("expected an object, found a string").
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number, .float: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// Keys keep the literal's order.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(elements.map { (key: $0.0, value: $0.1) })
    }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: Codable {
    /// Decodes any JSON value. Through Foundation's `JSONDecoder` an object's key order is not
    /// kept (it hands over a dictionary); parse with `JSONParser` where order matters.
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let d = try? container.decode(Double.self) {
            self = .number(d)
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([JSONValue].self) {
            self = .array(a)
        } else if let o = try? container.decode([String: JSONValue].self) {
            self = .object(o.sorted(by: { $0.key < $1.key }).map { (key: $0.key, value: $0.value) })
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    public func encode(to encoder: Encoder) throws {
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .bool(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .number(let d):
            var c = encoder.singleValueContainer()
            if let i = intValue { try c.encode(i) } else { try c.encode(d) }
        case .float(let d):
            var c = encoder.singleValueContainer()
            try c.encode(d)
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .array(let a):
            var c = encoder.unkeyedContainer()
            for element in a { try c.encode(element) }
        case .object(let pairs):
            var c = encoder.container(keyedBy: AnyCodingKey.self)
            for (k, v) in pairs { try c.encode(v, forKey: AnyCodingKey(k)) }
        }
    }
}

/// A coding key made from any string, for encoding objects whose keys are data.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}
