/// A bounds-checked little-endian reader over a GGUF file's bytes.
///
/// Every read checks the remaining length first and every count is bounded by what the
/// remaining bytes could possibly hold before anything is allocated, so a corrupt or hostile
/// file produces a one-line `QDistIOError` with the byte offset, never a trap, an
/// out-of-bounds read or a multi-gigabyte allocation. `what` arguments name the field in the
/// message ("tensor count", "key of metadata entry 3").
struct GGUFCursor {
    let bytes: UnsafeRawBufferPointer
    let path: String
    /// The next byte to read, from the start of the file.
    var offset: Int = 0

    /// Deepest nesting of arrays accepted (GGUF writers emit at most 2); bounds recursion.
    static let maximumArrayDepth = 16

    init(bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    /// Bytes left after `offset`.
    var remaining: Int { bytes.count - offset }

    /// A GGUF format error at `byte` (default: the current offset).
    func failure(_ message: String, at byte: Int? = nil) -> QDistIOError {
        QDistIOError.gguf(path: path, message, at: byte ?? offset)
    }

    /// Throws unless `count` more bytes are available.
    func need(_ count: Int, for what: @autoclosure () -> String) throws(QDistIOError) {
        guard count <= remaining else {
            throw failure("truncated: \(what()) at byte \(offset) needs \(count) bytes but the file ends at byte \(bytes.count)")
        }
    }

    /// A little-endian integer.
    mutating func integer<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(QDistIOError) -> T {
        try need(MemoryLayout<T>.size, for: what())
        let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return v
    }

    /// A `u64` count or size that must fit in `Int` and, at `minimumSize` bytes per item,
    /// in the rest of the file.
    mutating func count(_ what: @autoclosure () -> String, minimumSize: Int) throws(QDistIOError) -> Int {
        let at = offset
        let raw = try integer(UInt64.self, what())
        let limit = UInt64(max(remaining, 0) / max(minimumSize, 1))
        guard raw <= limit else {
            let unit = minimumSize == 1 ? "bytes" : "items of at least \(minimumSize) bytes"
            throw failure("\(what()) \(raw) (u64 at byte \(at)) runs past the end of the file: only \(remaining) bytes remain, room for at most \(limit) \(unit)", at: at)
        }
        return Int(raw)
    }

    /// A GGUF string: `u64` byte length, then UTF-8 bytes. `strict` rejects invalid UTF-8
    /// (keys and tensor names); values decode leniently, replacing invalid sequences, because
    /// real tokenizer vocabularies occasionally carry them.
    mutating func string(_ what: @autoclosure () -> String, strict: Bool = false) throws(QDistIOError) -> String {
        let at = offset
        let length = try count("length of \(what())", minimumSize: 1)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
        offset += length
        if strict {
            guard let s = String(validating: slice, as: UTF8.self) else {
                throw failure("\(what()) (string at byte \(at)) is not valid UTF-8", at: at)
            }
            return s
        }
        return String(decoding: slice, as: UTF8.self)
    }

    /// A value type id.
    mutating func valueType(_ what: @autoclosure () -> String) throws(QDistIOError) -> GGUFValueType {
        let at = offset
        let raw = try integer(UInt32.self, "type of \(what())")
        guard let type = GGUFValueType(rawValue: raw) else {
            throw failure("\(what()) has unknown value type \(raw) (u32 at byte \(at)); GGUF defines 0...12", at: at)
        }
        return type
    }

    /// One value of `type` (arrays recurse, at most `maximumArrayDepth` deep).
    mutating func value(_ type: GGUFValueType, _ what: @autoclosure () -> String, depth: Int = 0) throws(QDistIOError) -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try integer(UInt8.self, what()))
        case .int8: return .int8(try integer(Int8.self, what()))
        case .uint16: return .uint16(try integer(UInt16.self, what()))
        case .int16: return .int16(try integer(Int16.self, what()))
        case .uint32: return .uint32(try integer(UInt32.self, what()))
        case .int32: return .int32(try integer(Int32.self, what()))
        case .uint64: return .uint64(try integer(UInt64.self, what()))
        case .int64: return .int64(try integer(Int64.self, what()))
        case .float32: return .float32(Float(bitPattern: try integer(UInt32.self, what())))
        case .float64: return .float64(Double(bitPattern: try integer(UInt64.self, what())))
        case .bool:
            let at = offset
            let b = try integer(UInt8.self, what())
            guard b <= 1 else { throw failure("\(what()) is a BOOL holding \(b) (byte \(at)); only 0 and 1 are valid", at: at) }
            return .bool(b == 1)
        case .string: return .string(try string(what()))
        case .array: return .array(try array(what(), depth: depth))
        }
    }

    /// An array value: element type, `u64` count (bounded by the bytes left), elements.
    mutating func array(_ what: @autoclosure () -> String, depth: Int) throws(QDistIOError) -> GGUFArray {
        guard depth < Self.maximumArrayDepth else {
            throw failure("\(what()) nests arrays more than \(Self.maximumArrayDepth) deep")
        }
        let elementType = try valueType("elements of \(what())")
        let n = try count("element count of \(what())", minimumSize: elementType.minimumSize)
        switch elementType {
        case .uint8: return .uint8(try numbers(n))
        case .int8: return .int8(try numbers(n))
        case .uint16: return .uint16(try numbers(n))
        case .int16: return .int16(try numbers(n))
        case .uint32: return .uint32(try numbers(n))
        case .int32: return .int32(try numbers(n))
        case .uint64: return .uint64(try numbers(n))
        case .int64: return .int64(try numbers(n))
        case .float32: return .float32((try numbers(n) as [UInt32]).map(Float.init(bitPattern:)))
        case .float64: return .float64((try numbers(n) as [UInt64]).map(Double.init(bitPattern:)))
        case .bool:
            let start = offset
            let raw: [UInt8] = try numbers(n)
            if let bad = raw.firstIndex(where: { $0 > 1 }) {
                throw failure("\(what())[\(bad)] is a BOOL holding \(raw[bad]) (byte \(start + bad)); only 0 and 1 are valid", at: start + bad)
            }
            return .bool(raw.map { $0 == 1 })
        case .string:
            var strings: [String] = []
            strings.reserveCapacity(n)
            for i in 0..<n { strings.append(try string("\(what())[\(i)]")) }
            return .string(strings)
        case .array:
            var arrays: [GGUFArray] = []
            arrays.reserveCapacity(n)
            for i in 0..<n { arrays.append(try array("\(what())[\(i)]", depth: depth + 1)) }
            return .array(arrays)
        }
    }

    /// `n` little-endian fixed-width numbers; the caller bounded `n` by the bytes left.
    mutating func numbers<T: FixedWidthInteger>(_ n: Int) throws(QDistIOError) -> [T] {
        let size = MemoryLayout<T>.size
        try need(n * size, for: "\(n) array elements")
        let start = offset
        offset += n * size
        return [T](unsafeUninitializedCapacity: n) { buffer, initialized in
            for i in 0..<n { buffer[i] = T(littleEndian: bytes.loadUnaligned(fromByteOffset: start + i * size, as: T.self)) }
            initialized = n
        }
    }
}

extension QDistIOError {
    /// A GGUF file breaking a rule of FORMATS.md §2, at byte `offset`. Every GGUF error is made
    /// here, so the error kind for GGUF problems is chosen in one place.
    static func gguf(path: String, _ message: String, at offset: Int?) -> QDistIOError {
        QDistIOError(.safetensors, path: path, message, byteOffset: offset)
    }
}
