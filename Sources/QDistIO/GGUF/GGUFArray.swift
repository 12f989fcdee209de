/// A GGUF metadata array, stored as a native Swift array of its element type.
///
/// Typed storage (rather than one boxed `GGUFValue` per element) keeps a 49,152-entry
/// `token_type` array at 4 bytes an element, and bounds what a corrupt file can make the
/// reader allocate: every element occupies at least as many bytes on disk as it does here
/// (strings and nested arrays: a small constant factor), and the reader bounds each count by
/// the bytes left. The element type survives even for an empty array, which a writer needs.
public enum GGUFArray: Sendable, Equatable {
    case uint8([UInt8]), int8([Int8]), uint16([UInt16]), int16([Int16])
    case uint32([UInt32]), int32([Int32]), uint64([UInt64]), int64([Int64])
    case float32([Float]), float64([Double])
    case bool([Bool])
    case string([String])
    /// Nested arrays; each carries its own element type.
    case array([GGUFArray])

    /// The on-disk type of the elements.
    public var elementType: GGUFValueType {
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

    /// Number of elements.
    public var count: Int {
        switch self {
        case .uint8(let a): return a.count
        case .int8(let a): return a.count
        case .uint16(let a): return a.count
        case .int16(let a): return a.count
        case .uint32(let a): return a.count
        case .int32(let a): return a.count
        case .uint64(let a): return a.count
        case .int64(let a): return a.count
        case .float32(let a): return a.count
        case .float64(let a): return a.count
        case .bool(let a): return a.count
        case .string(let a): return a.count
        case .array(let a): return a.count
        }
    }

    /// Element `i` as a value (0 ≤ i < count).
    public subscript(i: Int) -> GGUFValue {
        switch self {
        case .uint8(let a): return .uint8(a[i])
        case .int8(let a): return .int8(a[i])
        case .uint16(let a): return .uint16(a[i])
        case .int16(let a): return .int16(a[i])
        case .uint32(let a): return .uint32(a[i])
        case .int32(let a): return .int32(a[i])
        case .uint64(let a): return .uint64(a[i])
        case .int64(let a): return .int64(a[i])
        case .float32(let a): return .float32(a[i])
        case .float64(let a): return .float64(a[i])
        case .bool(let a): return .bool(a[i])
        case .string(let a): return .string(a[i])
        case .array(let a): return .array(a[i])
        }
    }

    /// Every element as a value (allocates one `GGUFValue` each; for generic traversal).
    public var elements: [GGUFValue] { (0..<count).map { self[$0] } }

    /// The strings, for an array of STRING.
    public var strings: [String]? {
        if case .string(let a) = self { return a }
        return nil
    }

    /// Integer elements of any integer type as `Int`; nil for other element types or a UINT64
    /// beyond `Int.max`.
    public var ints: [Int]? {
        switch self {
        case .uint8(let a): return a.map(Int.init)
        case .int8(let a): return a.map(Int.init)
        case .uint16(let a): return a.map(Int.init)
        case .int16(let a): return a.map(Int.init)
        case .uint32(let a): return a.map(Int.init)
        case .int32(let a): return a.map(Int.init)
        case .int64(let a): return a.map(Int.init)
        case .uint64(let a):
            var out: [Int] = []
            out.reserveCapacity(a.count)
            for v in a {
                guard let i = Int(exactly: v) else { return nil }
                out.append(i)
            }
            return out
        default: return nil
        }
    }

    /// Numeric elements as Float32 (FLOAT32 exactly, others rounded); nil for non-numbers.
    public var floats: [Float]? {
        switch self {
        case .float32(let a): return a
        case .float64(let a): return a.map(Float.init)
        default: return ints?.map(Float.init)
        }
    }
}
