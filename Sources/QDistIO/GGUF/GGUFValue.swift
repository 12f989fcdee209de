/// The metadata value types of a GGUF file, numbered as on disk (FORMATS.md §2.1).
///
/// The raw value is the `u32` that precedes every value (and every array's elements), so a
/// reader parses with `GGUFValueType(rawValue:)` and a writer emits `rawValue`; an id outside
/// 0...12 is a corrupt file, reported by the reader with its byte offset.
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6
    case bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// The name the GGUF spec and gguf-py use, e.g. "UINT32".
    public var name: String {
        switch self {
        case .uint8: return "UINT8"
        case .int8: return "INT8"
        case .uint16: return "UINT16"
        case .int16: return "INT16"
        case .uint32: return "UINT32"
        case .int32: return "INT32"
        case .float32: return "FLOAT32"
        case .bool: return "BOOL"
        case .string: return "STRING"
        case .array: return "ARRAY"
        case .uint64: return "UINT64"
        case .int64: return "INT64"
        case .float64: return "FLOAT64"
        }
    }

    /// Fewest bytes one value of this type occupies on disk (a string or array holds at least
    /// its length field). Readers bound an array's element count by `remaining / minimumSize`
    /// before allocating, so a corrupt count can never ask for a huge buffer.
    public var minimumSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64, .string: return 8
        case .array: return 12
        }
    }
}

/// One metadata value of a GGUF file, typed exactly as stored.
///
/// Keeping the on-disk type (rather than widening everything to Int/Double) is what lets a
/// writer reproduce a file key for key, and lets tests check a round trip type for type. The
/// accessors below convert for callers that do not care how a number was stored: llama.cpp
/// writes counts as UINT32 where the spec suggests UINT64, so `intValue` accepts any integer.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
    case float32(Float), float64(Double)
    case bool(Bool)
    case string(String)
    /// An array, stored natively by element type (see `GGUFArray`).
    case array(GGUFArray)

    /// The on-disk type of this value.
    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }

    /// The string, for `.string`.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// Any integer type as `Int`; nil for non-integers and for a UINT64 beyond `Int.max`.
    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// FLOAT32 or FLOAT64 as `Double` (exact), or any integer converted; nil otherwise.
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return intValue.map(Double.init)
        }
    }

    /// `doubleValue` rounded to Float32.
    public var floatValue: Float? { doubleValue.map(Float.init) }

    /// The flag, for `.bool`.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The array, for `.array`.
    public var array: GGUFArray? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The elements of an array, each as a value; nil when this is not an array.
    public var arrayValue: [GGUFValue]? { array?.elements }

    /// An array of strings; nil when this is not an array of STRING.
    public var stringArray: [String]? { array?.strings }

    /// An array of integers of any integer type; nil otherwise.
    public var intArray: [Int]? { array?.ints }

    /// An array of numbers as Float32 (FLOAT32 elements exactly); nil otherwise.
    public var floatArray: [Float]? { array?.floats }
}

extension GGUFValue {
    /// The value as JSON: numbers, strings and flags as themselves (64-bit integers beyond 2^53
    /// lose precision, as any JSON number does), arrays element by element.
    public var jsonValue: JSONValue {
        switch self {
        case .string(let s): return .string(s)
        case .bool(let b): return .bool(b)
        case .float32(let v): return .number(Double(v.description) ?? Double(v))
        case .float64(let v): return .number(v)
        case .uint64(let v): return .integer(v)
        case .array(let a): return .array(a.elements.map(\.jsonValue))
        default: return .integer(intValue ?? 0)
        }
    }
}

extension GGUFValue: CustomStringConvertible {
    /// A short rendering for listings: numbers and flags as written, strings quoted and cut at
    /// 60 characters, arrays as `[TYPE × count]` plus their first few elements.
    public var description: String {
        switch self {
        case .string(let s):
            return JSONSerializer.quoted(s.count > 60 ? String(s.prefix(57)) + "..." : s)  // escapes newlines
        case .array(let a):
            let head = (0..<min(a.count, 3)).map { a[$0].description }.joined(separator: ", ")
            return "[\(a.elementType.name) × \(a.count)" + (a.count == 0 ? "]" : ": \(head)\(a.count > 3 ? ", ..." : "")]")
        case .bool(let b): return String(b)
        case .float32(let v): return String(v)
        case .float64(let v): return String(v)
        case .uint64(let v): return String(v)
        default: return String(intValue ?? 0)
        }
    }
}
