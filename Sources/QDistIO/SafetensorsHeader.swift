import QDistTensor
/// Where one tensor sits in a safetensors file and how to read it.
///
/// `dataOffsets` are the header's `data_offsets` (relative to the data buffer); `byteRange` is
/// the same span as absolute file offsets, which is what error messages and `pread` want.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public var name: String
    public var dtype: DType
    /// Dimensions, outermost first; `[]` is a scalar.
    public var shape: [Int]
    /// `[BEGIN, END)` from the header, relative to the start of the data buffer.
    public var dataOffsets: Range<Int>
    /// The tensor's bytes as absolute offsets in the file.
    public var byteRange: Range<Int>

    /// Number of elements (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }
    /// Bytes of data (`elementCount × dtype.byteSize`).
    public var byteCount: Int { byteRange.count }
}

/// The validated header of a safetensors file: tensor entries sorted by offset, the optional
/// `__metadata__`, and the header length.
///
/// `parse` enforces FORMATS.md §1.1 exactly as the reference Rust reader does (plus the
/// integer-literal rule serde applies to u64 fields), so any file that passes opens in
/// `safetensors` too, and any file the reference rejects is rejected here with a one-line
/// `QDistIOError` naming the file, the tensor and the byte offset.
public struct SafetensorsHeader: Sendable {
    /// The reference reader's `MAX_HEADER_SIZE`.
    public static let maximumHeaderLength = 100_000_000

    /// `N`: bytes of JSON after the 8-byte length prefix (padding included).
    public var headerLength: Int
    /// Entries in data-offset order (header order among empty tensors sharing an offset).
    public var tensors: [SafetensorsTensorInfo]
    /// `__metadata__` pairs in header order; `nil` when the header has no `__metadata__`.
    public var metadata: [(key: String, value: String)]?

    /// File offset where the data buffer begins.
    public var dataStart: Int { 8 + headerLength }

    /// Validates the first bytes of a file. `prefix` must hold at least the length field and
    /// the header (more is fine); `fileSize` is the whole file's size; `path` names the file
    /// in errors.
    public static func parse(prefix: UnsafeRawBufferPointer, fileSize: Int, path: String) throws(QDistIOError) -> SafetensorsHeader {
        func failure(_ message: String, at offset: Int? = nil) -> QDistIOError {
            QDistIOError(.safetensors, path: path, message, byteOffset: offset)
        }
        guard fileSize >= 8, prefix.count >= 8 else {
            throw failure("file is \(fileSize) bytes, too short for the 8-byte header length that starts a safetensors file", at: 0)
        }
        let declared = UInt64(littleEndian: prefix.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(maximumHeaderLength) else {
            throw failure("header length \(declared) (u64 at byte 0) exceeds the \(maximumHeaderLength)-byte limit", at: 0)
        }
        let n = Int(declared)
        guard 8 + n <= fileSize else {
            throw failure("header length \(n) (u64 at byte 0) runs past the end of the file: 8 + \(n) > \(fileSize) bytes", at: 0)
        }
        guard prefix.count >= 8 + n else {
            throw failure("internal: only \(prefix.count) header bytes supplied, need \(8 + n)", at: 8)
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(UnsafeRawBufferPointer(rebasing: prefix[8..<(8 + n)]),
                                        options: JSONParser.Options(integersOnly: true))
        } catch {
            throw failure("header is not valid JSON at byte \(8 + error.offset): \(error.message)", at: 8 + error.offset)
        }
        guard let entries = json.objectValue else {
            throw failure("header (byte 8) is \(json.typeName), expected a JSON object", at: 8)
        }

        var metadata: [(key: String, value: String)]?
        var unsorted: [SafetensorsTensorInfo] = []
        unsorted.reserveCapacity(entries.count)
        for (name, value) in entries {
            if name == "__metadata__" {
                metadata = try parseMetadata(value, failure)
            } else {
                unsorted.append(try parseEntry(name, value, dataStart: 8 + n, failure))
            }
        }

        // Sort by offsets (stable, so empty tensors keep header order), then walk the buffer.
        let tensors = unsorted.enumerated().sorted { a, b in
            (a.element.dataOffsets.lowerBound, a.element.dataOffsets.upperBound, a.offset)
                < (b.element.dataOffsets.lowerBound, b.element.dataOffsets.upperBound, b.offset)
        }.map(\.element)
        let dataSize = fileSize - 8 - n
        var end = 0
        var previous: String?
        for t in tensors {
            let (begin, stop) = (t.dataOffsets.lowerBound, t.dataOffsets.upperBound)
            if begin != end {
                let after = previous.map { "the previous tensor \(JSONSerializer.quoted($0)) ends at \(end)" } ?? "the first tensor must start at 0"
                let problem = begin < end ? "overlaps the tensor before it" : "leaves a hole of \(begin - end) bytes"
                throw failure("tensor \(JSONSerializer.quoted(t.name)): data_offsets [\(begin), \(stop)] start at \(begin) but \(after): it \(problem) (file byte \(8 + n + begin))",
                              at: 8 + n + begin)
            }
            let needed = t.elementCount * t.dtype.byteSize
            if stop - begin != needed {
                throw failure("tensor \(JSONSerializer.quoted(t.name)): data_offsets [\(begin), \(stop)] hold \(stop - begin) bytes but \(t.dtype.rawValue) \(t.shape) needs \(needed)",
                              at: 8 + n + begin)
            }
            if stop > dataSize {
                throw failure("tensor \(JSONSerializer.quoted(t.name)): data_offsets [\(begin), \(stop)] end at file byte \(8 + n + stop) but the file is only \(fileSize) bytes (truncated?)",
                              at: fileSize)
            }
            end = stop
            previous = t.name
        }
        if end != dataSize {
            throw failure("\(dataSize - end) bytes after the last tensor's data (from file byte \(8 + n + end)): the header does not cover the whole file",
                          at: 8 + n + end)
        }
        return SafetensorsHeader(headerLength: n, tensors: tensors, metadata: metadata)
    }

    private static func parseMetadata(_ value: JSONValue, _ failure: (String, Int?) -> QDistIOError) throws(QDistIOError) -> [(key: String, value: String)] {
        guard let pairs = value.objectValue else {
            throw failure("\"__metadata__\" is \(value.typeName), expected an object of strings", nil)
        }
        var out: [(key: String, value: String)] = []
        for (k, v) in pairs {
            guard let s = v.stringValue else {
                throw failure("\"__metadata__\" key \(JSONSerializer.quoted(k)) holds \(v.typeName), but metadata values must be strings", nil)
            }
            out.append((key: k, value: s))
        }
        return out
    }

    /// Safetensors dtypes that are valid in the format but that qdist has no element type for.
    static let knownButUnsupported: Set<String> = ["F4", "F6_E2M3", "F6_E3M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64"]

    private static func parseEntry(_ name: String, _ value: JSONValue, dataStart: Int,
                                   _ failure: (String, Int?) -> QDistIOError) throws(QDistIOError) -> SafetensorsTensorInfo {
        let label = "tensor \(JSONSerializer.quoted(name))"
        guard let fields = value.objectValue else { throw failure("\(label): entry is \(value.typeName), expected an object", nil) }
        for (k, _) in fields where !["dtype", "shape", "data_offsets"].contains(k) {
            throw failure("\(label): unexpected key \(JSONSerializer.quoted(k)) (an entry holds exactly dtype, shape and data_offsets)", nil)
        }
        guard let dtypeValue = value["dtype"] else { throw failure("\(label): missing \"dtype\"", nil) }
        guard let shapeValue = value["shape"] else { throw failure("\(label): missing \"shape\"", nil) }
        guard let offsetsValue = value["data_offsets"] else { throw failure("\(label): missing \"data_offsets\"", nil) }

        guard let dtypeText = dtypeValue.stringValue else { throw failure("\(label): dtype is \(dtypeValue.typeName), expected a string", nil) }
        guard let dtype = DType(rawValue: dtypeText) else {
            if knownButUnsupported.contains(dtypeText) {
                throw failure("\(label): dtype \(JSONSerializer.quoted(dtypeText)) is valid safetensors but qdist cannot read it", nil)
            }
            throw failure("\(label): unknown dtype \(JSONSerializer.quoted(dtypeText))", nil)
        }
        guard let dims = shapeValue.arrayValue else { throw failure("\(label): shape is \(shapeValue.typeName), expected an array", nil) }
        var shape: [Int] = []
        var elements = 1
        for d in dims {
            guard let v = d.intValue, v >= 0 else {
                throw failure("\(label): shape \(shapeValue.compactText) must hold non-negative integers", nil)
            }
            shape.append(v)
            let (product, overflow) = elements.multipliedReportingOverflow(by: v)
            guard !overflow else { throw failure("\(label): shape \(shapeValue.compactText) has too many elements", nil) }
            elements = product
        }
        guard !elements.multipliedReportingOverflow(by: dtype.byteSize).overflow else {
            throw failure("\(label): shape \(shapeValue.compactText) has too many bytes", nil)
        }
        guard let pair = offsetsValue.arrayValue, pair.count == 2,
              let begin = pair[0].intValue, let end = pair[1].intValue, begin >= 0, end >= 0 else {
            throw failure("\(label): data_offsets \(offsetsValue.compactText) must be [BEGIN, END] with non-negative integers", nil)
        }
        guard begin <= end else {
            throw failure("\(label): data_offsets [\(begin), \(end)] end before they begin", dataStart + begin)
        }
        return SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end,
                                     byteRange: (dataStart + begin)..<(dataStart + end))
    }
}
