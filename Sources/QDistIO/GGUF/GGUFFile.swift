import Foundation
import QDistTensor

/// A validated, memory-mapped GGUF file (v3, or v2) from which tensors are read by their GGUF
/// names, raw or dequantized to Float32.
///
/// Opening maps the file and parses the header strictly (`GGUFHeader.parse`): a file that
/// opens is safe to read, with every tensor's data aligned and inside the mapping, and a bad
/// file fails here in one line naming it and the byte offset. Tensor data is not touched until
/// asked for. Names and layouts here are GGUF's own (`blk.0.attn_q.weight`, Q/K rows in
/// llama.cpp's interleaved order); `GGUFCheckpoint` translates to Hugging Face names and
/// layout. The object is immutable and safe to share between threads; views handed to
/// `withRawBytes` must not escape the closure.
public final class GGUFFile: @unchecked Sendable {
    /// The file, as opened.
    public let url: URL
    /// The validated header.
    public let header: GGUFHeader
    private let file: MappedFile
    private let positions: [String: Int]

    /// Maps and validates the file at `url`.
    public init(url: URL) throws(QDistIOError) {
        self.url = url
        file = try MappedFile(url: url)
        header = try GGUFHeader.parse(file.bytes, path: url.path)
        var positions: [String: Int] = [:]
        for (i, t) in header.tensorInfos.enumerated() { positions[t.name] = i }
        self.positions = positions
    }

    /// Opens the file at `path`.
    public convenience init(path: String) throws(QDistIOError) {
        try self.init(url: URL(fileURLWithPath: path))
    }

    /// Size of the file in bytes.
    public var fileSize: Int { file.count }
    /// GGUF version (2 or 3).
    public var version: Int { header.version }
    /// Metadata in file order.
    public var metadata: GGUFMetadata { header.metadata }
    /// Tensor-info entries in file order.
    public var tensorInfos: [GGUFTensorInfo] { header.tensorInfos }
    /// Tensor names in file order.
    public var tensorNames: [String] { header.tensorInfos.map(\.name) }
    /// Data alignment in bytes.
    public var alignment: Int { header.alignment }
    /// File offset where tensor data begins.
    public var dataOffset: Int { header.dataOffset }
    /// Bytes of tensor data (padding included): the file minus its header.
    public var dataByteCount: Int { max(fileSize - dataOffset, 0) }

    /// True when the file holds a tensor called `name` (a GGUF name).
    public func contains(_ name: String) -> Bool { positions[name] != nil }

    /// The entry for `name`; `.notFound` naming the file when absent.
    public func info(_ name: String) throws(QDistIOError) -> GGUFTensorInfo {
        guard let i = positions[name] else {
            throw QDistIOError(.notFound, path: url.path,
                               "no tensor named \(JSONSerializer.quoted(name)) (the file holds \(positions.count) tensors)")
        }
        return header.tensorInfos[i]
    }

    /// Absolute byte range of the tensor's data in the file.
    public func byteRange(of name: String) throws(QDistIOError) -> Range<Int> {
        header.byteRange(of: try info(name))
    }

    /// Calls `body` with the tensor's stored bytes inside the mapping (no copy); the view is
    /// valid only during the call.
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let range = try byteRange(of: name)
        return try body(UnsafeRawBufferPointer(rebasing: file.bytes[range]))
    }

    /// A copy of the tensor's stored bytes (blocks as on disk).
    public func rawBytes(_ name: String) throws(QDistIOError) -> [UInt8] {
        [UInt8](file.bytes[try byteRange(of: name)])
    }

    /// The tensor dequantized to Float32, in GGUF's own layout with row-major `shape`
    /// (`info.shape`, ggml dims reversed). Fails naming the file and tensor when its type has
    /// no dequantizer (the IQ* codebook types, Q8_1, Q8_K).
    public func tensor(_ name: String) throws(QDistIOError) -> Tensor {
        let entry = try info(name)
        var scalars = [Float](repeating: 0, count: entry.elementCount)
        try dequantize(entry, into: &scalars)
        return Tensor(shape: entry.shape, scalars: scalars)
    }

    /// Dequantizes `entry` (an entry of this file) into `out`, which must hold
    /// `entry.elementCount` values.
    public func dequantize(_ entry: GGUFTensorInfo, into out: inout [Float]) throws(QDistIOError) {
        guard entry.type.canDequantize else {
            throw QDistIOError(.invalidArgument, path: url.path,
                               "tensor \(JSONSerializer.quoted(entry.name)) is \(entry.type.traits.name), which qdist cannot dequantize yet (supported: \(GGMLType.dequantizable.map(\.traits.name).joined(separator: ", ")))",
                               byteOffset: header.dataOffset + entry.offset)
        }
        precondition(out.count == entry.elementCount, "dequantize \(entry.name): \(out.count) slots for \(entry.elementCount) elements")
        let range = header.byteRange(of: entry)
        guard !range.isEmpty else { return }
        let source = UnsafeRawBufferPointer(rebasing: file.bytes[range])
        out.withUnsafeMutableBufferPointer { entry.type.dequantize(source, into: $0) }
    }
}
