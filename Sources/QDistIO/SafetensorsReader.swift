import Foundation
import QDistTensor

/// A validated, memory-mapped safetensors file from which tensors are read by name.
///
/// Opening maps the file read-only (nothing is read up front, so a 15 GB shard opens in
/// microseconds) and validates the header strictly (`SafetensorsHeader.parse`): a file that
/// opens is safe to read, every tensor lies inside the mapping, and a bad file fails here with
/// one line naming the file, tensor and byte offset instead of crashing later. The mapping
/// lives as long as the reader; `withRawBytes` hands out views into it, which must not escape
/// the closure. The reader is immutable and safe to share between threads.
///
/// Failure mode to know: the mapping reflects the file on disk, so truncating the file while a
/// reader is open makes later reads fault (SIGBUS). qdist's writers never modify a file in
/// place (`AtomicFileWriter` renames a new one over it), which keeps open readers valid.
public final class SafetensorsReader: @unchecked Sendable {
    /// The file, as opened.
    public let url: URL
    /// Size of the file in bytes.
    public let fileSize: Int
    /// The validated header.
    public let header: SafetensorsHeader
    /// `__metadata__` as a dictionary (empty when the file has none).
    public let metadata: [String: String]
    private let file: MappedFile
    private var mapping: UnsafeRawBufferPointer { file.bytes }
    private let positions: [String: Int]

    /// Maps and validates the file at `url`.
    public init(url: URL) throws(QDistIOError) {
        self.url = url
        let path = url.path
        file = try MappedFile(url: url)
        fileSize = file.count
        if fileSize < 8 {
            throw QDistIOError(.safetensors, path: path,
                               "file is \(fileSize) bytes, too short for the 8-byte header length that starts a safetensors file",
                               byteOffset: 0)
        }
        header = try SafetensorsHeader.parse(prefix: file.bytes, fileSize: fileSize, path: path)
        var metadata: [String: String] = [:]
        for (k, v) in header.metadata ?? [] { metadata[k] = v }
        self.metadata = metadata
        var positions: [String: Int] = [:]
        for (i, t) in header.tensors.enumerated() { positions[t.name] = i }
        self.positions = positions
    }

    /// Opens the file at `path`.
    public convenience init(path: String) throws(QDistIOError) {
        try self.init(url: URL(fileURLWithPath: path))
    }

    /// Tensor names in the order their data appears in the file.
    public var tensorNames: [String] { header.tensors.map(\.name) }

    /// Every tensor's entry, in file order.
    public var tensorInfos: [SafetensorsTensorInfo] { header.tensors }

    /// True when the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { positions[name] != nil }

    /// Where `name` sits and how it is stored; throws `.notFound` for an absent name.
    public func info(_ name: String) throws(QDistIOError) -> SafetensorsTensorInfo {
        guard let i = positions[name] else {
            throw QDistIOError(.notFound, path: url.path,
                               "no tensor named \(JSONSerializer.quoted(name)) (the file holds \(positions.count) tensors)")
        }
        return header.tensors[i]
    }

    /// Calls `body` with the tensor's bytes inside the mapping (no copy). The pointer is valid
    /// only during the call.
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let entry = try info(name)
        return try body(UnsafeRawBufferPointer(rebasing: mapping[entry.byteRange]))
    }

    /// The tensor's dtype, shape and a copy of its bytes.
    public func storedTensor(_ name: String) throws(QDistIOError) -> StoredTensor {
        let entry = try info(name)
        return StoredTensor(dtype: entry.dtype, shape: entry.shape, bytes: [UInt8](mapping[entry.byteRange]))
    }

    /// The tensor decoded to Float32 straight from the mapping (see `DType.decode` for how
    /// each type converts).
    public func tensor(_ name: String) throws(QDistIOError) -> Tensor {
        let entry = try info(name)
        let count = entry.elementCount
        var scalars = [Float](repeating: 0, count: count)
        if count > 0 {
            let source = mapping.baseAddress! + entry.byteRange.lowerBound
            scalars.withUnsafeMutableBufferPointer { entry.dtype.decode(source, count: count, into: $0.baseAddress!) }
        }
        return Tensor(shape: entry.shape, scalars: scalars)
    }

    /// Every tensor's data bytes summed (the file minus its header).
    public var dataByteCount: Int { fileSize - header.dataStart }
}
