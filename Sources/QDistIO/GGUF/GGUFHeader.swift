/// Everything in a GGUF file before the tensor data: version, metadata, tensor-info table,
/// alignment and where the data section starts (FORMATS.md §2.1).
///
/// `parse` is strict, so a header that parses describes a file that is safe to read: every
/// count was bounded by the bytes left before anything was allocated, every type id is known,
/// every tensor's row is a whole number of blocks, and every tensor's data lies aligned,
/// inside the file and apart from the others. Anything else is one `QDistIOError` line naming
/// the file and the byte offset, with a hint when the file is another format (safetensors,
/// the pre-GGUF ggml formats) or a big-endian GGUF. GGUF v2 (same layout as v3) is accepted;
/// v1 (32-bit counts) is not.
public struct GGUFHeader: Sendable, Equatable {
    /// `version` field: 2 or 3.
    public var version: Int
    /// Metadata entries in file order.
    public var metadata: GGUFMetadata
    /// Tensor-info entries in file order.
    public var tensorInfos: [GGUFTensorInfo]
    /// Data alignment in bytes (`general.alignment`, default 32; a power of two).
    public var alignment: Int
    /// File offset of the data section: the end of the tensor-info table, aligned.
    public var dataOffset: Int

    /// Little-endian `u32` of the bytes "GGUF".
    public static let magic: UInt32 = 0x4655_4747
    /// Alignment when the file has no `general.alignment`.
    public static let defaultAlignment = 32
    /// Bytes of the fixed header: magic, version, tensor count, metadata count.
    public static let fixedSize = 24
    /// Fewest bytes a tensor-info entry can take (name length, n_dims, type, offset).
    static let minimumTensorInfoSize = 24
    /// Fewest bytes a metadata entry can take (key length, type, a 1-byte value).
    static let minimumEntrySize = 13
    /// ggml's `GGML_MAX_DIMS`.
    public static let maximumDimensions = 4

    /// Parses and validates the header of the file whose bytes are `bytes`; `path` names it
    /// in errors.
    public static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws(QDistIOError) -> GGUFHeader {
        var c = GGUFCursor(bytes: bytes, path: path)
        try checkMagic(bytes, path: path)
        guard bytes.count >= fixedSize else {
            throw c.failure("file is \(bytes.count) bytes, too short for the \(fixedSize)-byte GGUF header (magic, version, tensor count, metadata count) at byte 0", at: 0)
        }
        c.offset = 4
        let version = try c.integer(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            if version.byteSwapped == 2 || version.byteSwapped == 3 {
                throw c.failure("version field reads \(version) (u32 at byte 4): this is a big-endian GGUF, which qdist does not read", at: 4)
            }
            let hint = version == 1 ? ": GGUF v1 (32-bit counts) is obsolete, re-convert the model with a current llama.cpp" : ""
            throw c.failure("unsupported GGUF version \(version) (u32 at byte 4); qdist reads versions 2 and 3\(hint)", at: 4)
        }
        let tensorCount = try c.count("tensor count", minimumSize: minimumTensorInfoSize)
        let entryRoom = c.remaining - 8 - tensorCount * minimumTensorInfoSize
        let entryCountAt = c.offset
        let rawEntryCount = try c.integer(UInt64.self, "metadata entry count")
        guard rawEntryCount <= UInt64(max(entryRoom, 0) / minimumEntrySize) else {
            throw c.failure("metadata entry count \(rawEntryCount) (u64 at byte \(entryCountAt)) runs past the end of the file: \(c.remaining) bytes remain for the entries and \(tensorCount) tensor infos", at: entryCountAt)
        }
        let entryCount = Int(rawEntryCount)

        var metadata = GGUFMetadata()
        var alignment = defaultAlignment
        for i in 0..<entryCount {
            let keyAt = c.offset
            let key = try c.string("key of metadata entry \(i)", strict: true)
            guard !metadata.contains(key) else {
                throw c.failure("duplicate metadata key \(JSONSerializer.quoted(key)) (byte \(keyAt))", at: keyAt)
            }
            let type = try c.valueType("metadata \(JSONSerializer.quoted(key))")
            let valueAt = c.offset
            let value = try c.value(type, "metadata \(JSONSerializer.quoted(key))")
            if key == "general.alignment" {
                guard let a = value.intValue, a > 0, a & (a - 1) == 0 else {
                    throw c.failure("general.alignment is \(value) (\(type.name) at byte \(valueAt)); it must be a positive power of two", at: valueAt)
                }
                alignment = a
            }
            metadata[key] = value
        }

        var infos: [GGUFTensorInfo] = []
        var infoOffsets: [Int] = []  // byte of each entry's `offset` field, for error messages
        infos.reserveCapacity(tensorCount)
        var seen = Set<String>()
        for i in 0..<tensorCount {
            let nameAt = c.offset
            let name = try c.string("name of tensor info \(i)", strict: true)
            guard seen.insert(name).inserted else {
                throw c.failure("duplicate tensor name \(JSONSerializer.quoted(name)) (byte \(nameAt))", at: nameAt)
            }
            let quoted = JSONSerializer.quoted(name)
            let dimsAt = c.offset
            let n = try c.integer(UInt32.self, "n_dims of tensor \(quoted)")
            guard n >= 1 && n <= maximumDimensions else {
                throw c.failure("tensor \(quoted) has \(n) dimensions (u32 at byte \(dimsAt)); ggml tensors have 1 to \(maximumDimensions)", at: dimsAt)
            }
            var dims: [Int] = []
            for d in 0..<Int(n) {
                let at = c.offset
                let raw = try c.integer(UInt64.self, "ne[\(d)] of tensor \(quoted)")
                guard raw <= UInt64(Int64.max) else {
                    throw c.failure("tensor \(quoted) has dimension ne[\(d)] = \(raw) (u64 at byte \(at)), beyond int64", at: at)
                }
                dims.append(Int(raw))
            }
            let typeAt = c.offset
            let rawType = try c.integer(UInt32.self, "type of tensor \(quoted)")
            guard let type = GGMLType(rawValue: rawType) else {
                throw c.failure("tensor \(quoted) has unknown ggml type id \(rawType) (u32 at byte \(typeAt)); see FORMATS.md §2.2 for the known ids", at: typeAt)
            }
            let t = type.traits
            guard (dims.first ?? 1) % t.blockSize == 0 else {
                throw c.failure("tensor \(quoted): row length ne[0] = \(dims[0]) is not a multiple of the \(t.name) block size \(t.blockSize) (byte \(dimsAt + 4))", at: dimsAt + 4)
            }
            guard GGUFTensorInfo.byteCount(dims: dims, type: type) != nil else {
                throw c.failure("tensor \(quoted): \(t.name) \(dims) is too large to address (byte \(dimsAt + 4))", at: dimsAt + 4)
            }
            infoOffsets.append(c.offset)
            let offsetAt = c.offset
            let offset = try c.integer(UInt64.self, "data offset of tensor \(quoted)")
            guard offset <= UInt64(Int.max / 2) else {
                throw c.failure("tensor \(quoted) has data offset \(offset) (u64 at byte \(offsetAt)), beyond any file", at: offsetAt)
            }
            infos.append(GGUFTensorInfo(name: name, dims: dims, type: type, offset: Int(offset)))
        }

        let dataOffset = align(c.offset, alignment)
        let header = GGUFHeader(version: Int(version), metadata: metadata, tensorInfos: infos,
                                alignment: alignment, dataOffset: dataOffset)
        try header.checkPlacement(fileSize: bytes.count, infoOffsets: infoOffsets, path: path)
        return header
    }

    /// `x` rounded up to a multiple of `alignment` (a power of two).
    public static func align(_ x: Int, _ alignment: Int) -> Int {
        x + (alignment - x % alignment) % alignment
    }

    /// Absolute file byte range of `info`'s data.
    public func byteRange(of info: GGUFTensorInfo) -> Range<Int> {
        let start = dataOffset + info.offset
        return start..<(start + info.byteCount)
    }

    /// Checks that each tensor's data is aligned, inside the file and overlaps no other.
    private func checkPlacement(fileSize: Int, infoOffsets: [Int], path: String) throws(QDistIOError) {
        func failure(_ message: String, _ i: Int) -> QDistIOError {
            QDistIOError.gguf(path: path, message, at: infoOffsets[i])
        }
        for (i, info) in tensorInfos.enumerated() {
            let quoted = JSONSerializer.quoted(info.name)
            guard info.offset % alignment == 0 else {
                throw failure("tensor \(quoted): data offset \(info.offset) (u64 at byte \(infoOffsets[i])) is not a multiple of the alignment \(alignment)", i)
            }
            let range = byteRange(of: info)
            guard range.upperBound <= fileSize else {
                throw failure("tensor \(quoted): \(info.type.traits.name) \(info.shape) needs \(info.byteCount) bytes at file bytes \(range.lowerBound)..<\(range.upperBound), past the end of the \(fileSize)-byte file (offset field at byte \(infoOffsets[i]); truncated?)", i)
            }
        }
        let order = tensorInfos.indices.filter { tensorInfos[$0].byteCount > 0 }.sorted { tensorInfos[$0].offset < tensorInfos[$1].offset }
        for (previous, current) in zip(order, order.dropFirst()) {
            let a = tensorInfos[previous], b = tensorInfos[current]
            if b.offset < a.offset + a.byteCount {
                throw failure("tensor \(JSONSerializer.quoted(b.name)): data at offset \(b.offset) overlaps tensor \(JSONSerializer.quoted(a.name)) (offsets \(a.offset)..<\(a.offset + a.byteCount)) (offset field at byte \(infoOffsets[current]))", current)
            }
        }
    }

    /// Rejects a file that does not start with "GGUF", naming what it looks like instead.
    private static func checkMagic(_ bytes: UnsafeRawBufferPointer, path: String) throws(QDistIOError) {
        guard bytes.count >= 4 else {
            throw QDistIOError.gguf(path: path, "file is \(bytes.count) bytes, too short for the \(fixedSize)-byte GGUF header (magic, version, tensor count, metadata count) at byte 0", at: 0)
        }
        let found = UInt32(littleEndian: bytes.loadUnaligned(as: UInt32.self))
        if found == magic { return }
        let shown = bytes.prefix(4).map { (0x20..<0x7F).contains($0) ? String(UnicodeScalar($0)) : "." }.joined()
        var hint = ""
        if bytes.count >= 9, bytes[8] == UInt8(ascii: "{"),
           UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self)) <= UInt64(bytes.count - 8) {
            hint = ": it looks like a safetensors file (8-byte header length, then JSON), which qdist reads as .safetensors"
        } else if ["lmgg", "fmgg", "tjgg"].contains(shown) {
            hint = ": it is a pre-GGUF ggml/GGJT model; convert it to GGUF with llama.cpp first"
        }
        throw QDistIOError.gguf(path: path, "not a GGUF file: bytes 0..<4 are \"\(shown)\" (0x\(String(found, radix: 16))), expected \"GGUF\"\(hint)", at: 0)
    }
}
