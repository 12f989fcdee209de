import Foundation

/// Serialises GGUF header fields — strings, metadata values, tensor-info entries — to bytes,
/// little-endian, exactly as gguf-py's `GGUFWriter` and ggml's `gguf_write_to_buf` lay them out
/// (FORMATS.md §2.1). The reader (`GGUFCursor`) is its inverse; the round trip is tested value
/// type by value type.
public enum GGUFEncoding {
    /// Appends `value` little-endian.
    @inline(__always)
    static func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    /// A GGUF string: `u64` byte length, then the UTF-8 bytes, no terminator.
    public static func append(string: String, to out: inout [UInt8]) {
        let bytes = Array(string.utf8)
        append(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    /// One metadata value without its type tag (arrays carry their element type and count).
    public static func append(value: GGUFValue, to out: inout [UInt8]) {
        switch value {
        case .uint8(let v): out.append(v)
        case .int8(let v): out.append(UInt8(bitPattern: v))
        case .uint16(let v): append(v, to: &out)
        case .int16(let v): append(v, to: &out)
        case .uint32(let v): append(v, to: &out)
        case .int32(let v): append(v, to: &out)
        case .uint64(let v): append(v, to: &out)
        case .int64(let v): append(v, to: &out)
        case .float32(let v): append(v.bitPattern, to: &out)
        case .float64(let v): append(v.bitPattern, to: &out)
        case .bool(let v): out.append(v ? 1 : 0)
        case .string(let s): append(string: s, to: &out)
        case .array(let a): append(array: a, to: &out)
        }
    }

    /// An array: `u32` element type, `u64` element count, then the elements untagged.
    public static func append(array: GGUFArray, to out: inout [UInt8]) {
        append(array.elementType.rawValue, to: &out)
        append(UInt64(array.count), to: &out)
        switch array {
        case .uint8(let a): out.append(contentsOf: a)
        case .int8(let a): for v in a { out.append(UInt8(bitPattern: v)) }
        case .uint16(let a): for v in a { append(v, to: &out) }
        case .int16(let a): for v in a { append(v, to: &out) }
        case .uint32(let a): for v in a { append(v, to: &out) }
        case .int32(let a): for v in a { append(v, to: &out) }
        case .uint64(let a): for v in a { append(v, to: &out) }
        case .int64(let a): for v in a { append(v, to: &out) }
        case .float32(let a): for v in a { append(v.bitPattern, to: &out) }
        case .float64(let a): for v in a { append(v.bitPattern, to: &out) }
        case .bool(let a): for v in a { out.append(v ? 1 : 0) }
        case .string(let a): for s in a { append(string: s, to: &out) }
        case .array(let a): for inner in a { append(array: inner, to: &out) }
        }
    }

    /// One key-value pair: key string, `u32` value type, value.
    public static func append(key: String, value: GGUFValue, to out: inout [UInt8]) {
        append(string: key, to: &out)
        append(value.type.rawValue, to: &out)
        append(value: value, to: &out)
    }

    /// One tensor-info entry: name, `u32` n_dims, `u64` ne[…] (innermost first), `u32` type,
    /// `u64` offset into the data section.
    public static func append(tensorInfo info: GGUFTensorInfo, to out: inout [UInt8]) {
        append(string: info.name, to: &out)
        append(UInt32(info.dims.count), to: &out)
        for d in info.dims { append(UInt64(d), to: &out) }
        append(info.type.rawValue, to: &out)
        append(UInt64(info.offset), to: &out)
    }

    /// The whole header up to (not including) the padding before the data section: magic,
    /// version 3, counts, metadata, tensor infos.
    public static func header(metadata: GGUFMetadata, tensorInfos: [GGUFTensorInfo]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1 << 16)
        append(GGUFHeader.magic, to: &out)
        append(UInt32(3), to: &out)
        append(UInt64(tensorInfos.count), to: &out)
        append(UInt64(metadata.count), to: &out)
        for (key, value) in metadata.entries { append(key: key, value: value, to: &out) }
        for info in tensorInfos { append(tensorInfo: info, to: &out) }
        return out
    }
}
