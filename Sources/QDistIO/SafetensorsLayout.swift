import QDistTensor

/// The byte layout the reference safetensors writer would choose for a set of tensors: their
/// order, offsets, and the exact header bytes.
///
/// Following FORMATS.md §1.3: tensors sorted by dtype descending in the Rust enum order
/// (`DType.safetensorsOrder`), then by name (byte-wise, as Rust compares strings); offsets
/// assigned contiguously from 0; compact JSON with `__metadata__` first and entries in offset
/// order; spaces appended so the header length is a multiple of 8. Because the biggest
/// elements come first and there is no padding, every tensor starts aligned to its element
/// size. The reference keeps metadata in a hash map (random key order); qdist sorts metadata
/// keys so its output is reproducible, which makes it byte-identical to the reference
/// whenever the metadata has at most one key.
public struct SafetensorsLayout: Sendable {
    /// A tensor to place: its name, element type and shape.
    public struct Declaration: Sendable, Equatable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]

        public init(name: String, dtype: DType, shape: [Int]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
        }

        /// Data bytes (`elements × dtype.byteSize`).
        public var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
    }

    /// Declarations in the order their data is written, with their `data_offsets`.
    public let entries: [(declaration: Declaration, dataOffsets: Range<Int>)]
    /// The 8-byte little-endian header length followed by the padded JSON header.
    public let prefix: [UInt8]

    /// `N`, the header's length in bytes (a multiple of 8).
    public var headerLength: Int { prefix.count - 8 }
    /// File offset where tensor data begins.
    public var dataStart: Int { prefix.count }
    /// Total bytes of tensor data.
    public var dataByteCount: Int { entries.last?.dataOffsets.upperBound ?? 0 }
    /// Size of the complete file.
    public var fileSize: Int { dataStart + dataByteCount }

    /// Lays out `tensors` (any order) with optional `__metadata__` (`nil` omits the key, an
    /// empty dictionary writes `{}` as the reference does). Throws `.invalidArgument` for a
    /// repeated name, a negative dimension, or a tensor named `__metadata__`; `path` names the
    /// file being written in that error.
    public init(tensors: [Declaration], metadata: [String: String]?, path: String) throws(QDistIOError) {
        var seen = Set<String>()
        for t in tensors {
            guard t.name != "__metadata__" else {
                throw QDistIOError(.invalidArgument, path: path, "a tensor cannot be named \"__metadata__\"")
            }
            guard seen.insert(t.name).inserted else {
                throw QDistIOError(.invalidArgument, path: path, "tensor \(JSONSerializer.quoted(t.name)) is given twice")
            }
            guard t.shape.allSatisfy({ $0 >= 0 }) else {
                throw QDistIOError(.invalidArgument, path: path, "tensor \(JSONSerializer.quoted(t.name)) has a negative dimension in \(t.shape)")
            }
        }
        let ordered = tensors.sorted { a, b in
            if a.dtype != b.dtype { return a.dtype.safetensorsOrder > b.dtype.safetensorsOrder }
            return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }
        var entries: [(declaration: Declaration, dataOffsets: Range<Int>)] = []
        var offset = 0
        for d in ordered {
            entries.append((declaration: d, dataOffsets: offset..<(offset + d.byteCount)))
            offset += d.byteCount
        }
        self.entries = entries
        self.prefix = Self.headerPrefix(entries: entries, metadata: metadata)
    }

    /// Convenience: lays out stored tensors keyed by name.
    public init(tensors: [String: StoredTensor], metadata: [String: String]?, path: String) throws(QDistIOError) {
        try self.init(tensors: tensors.map { Declaration(name: $0.key, dtype: $0.value.dtype, shape: $0.value.shape) },
                      metadata: metadata, path: path)
    }

    /// The header as JSON (before padding), e.g. for tests and `qdist inspect`.
    public static func headerJSON(entries: [(declaration: Declaration, dataOffsets: Range<Int>)],
                                  metadata: [String: String]?) -> JSONValue {
        var pairs: [(key: String, value: JSONValue)] = []
        if let metadata {
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            pairs.append((key: "__metadata__", value: .object(keys.map { (key: $0, value: .string(metadata[$0]!)) })))
        }
        for (d, range) in entries {
            pairs.append((key: d.name, value: [
                "dtype": .string(d.dtype.rawValue),
                "shape": .array(d.shape.map { .integer($0) }),
                "data_offsets": [.integer(range.lowerBound), .integer(range.upperBound)],
            ]))
        }
        return .object(pairs)
    }

    private static func headerPrefix(entries: [(declaration: Declaration, dataOffsets: Range<Int>)],
                                     metadata: [String: String]?) -> [UInt8] {
        var json = headerJSON(entries: entries, metadata: metadata).serialized()
        json += [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8)
        var out = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.replaceSubrange(0..<8, with: $0) }
        return out + json
    }

    /// Index into `entries` by tensor name.
    public func entryIndex() -> [String: Int] {
        var index: [String: Int] = [:]
        for (i, e) in entries.enumerated() { index[e.declaration.name] = i }
        return index
    }
}
