import Foundation
import QDistTensor

/// Writes safetensors files byte-compatible with the reference implementation, atomically.
///
/// The layout (order, offsets, header, padding) comes from `SafetensorsLayout`; the bytes go
/// through `AtomicFileWriter`, so the destination either keeps its old content or holds the
/// complete new file, and no temporary file is left behind on error. Use `write` when all
/// tensors are in memory, and `SafetensorsStreamWriter` to write them one at a time.
public enum SafetensorsWriter {
    /// Writes `tensors` and optional `__metadata__` to `url` (replacing any file there).
    public static func write(_ tensors: [String: StoredTensor], metadata: [String: String]? = nil,
                             to url: URL) throws(QDistIOError) {
        let layout = try SafetensorsLayout(tensors: tensors, metadata: metadata, path: url.path)
        let writer = try AtomicFileWriter(destination: url)
        try writer.write(layout.prefix)
        for (declaration, _) in layout.entries {
            try writer.write(tensors[declaration.name]!.bytes)
        }
        try writer.commit()
    }

    /// The complete file as bytes in memory (what `write` would put on disk).
    public static func serialize(_ tensors: [String: StoredTensor], metadata: [String: String]? = nil) throws(QDistIOError) -> [UInt8] {
        let layout = try SafetensorsLayout(tensors: tensors, metadata: metadata, path: "<memory>")
        var out = layout.prefix
        out.reserveCapacity(layout.fileSize)
        for (declaration, _) in layout.entries { out += tensors[declaration.name]!.bytes }
        return out
    }
}

/// Writes a safetensors file one tensor at a time, for checkpoints too large to hold in memory.
///
/// All names, dtypes and shapes are declared up front (the header must be written first and
/// depends on all of them); then each tensor's bytes are supplied, in any order, and land at
/// their final offset. `finish()` checks that every declared tensor was written exactly once
/// and commits the file atomically; dropping the writer without `finish()` removes the
/// temporary file. The result is byte-identical to `SafetensorsWriter.write` on the same data.
public final class SafetensorsStreamWriter {
    /// The file being written.
    public let url: URL
    /// The layout being filled in.
    public let layout: SafetensorsLayout
    private let output: AtomicFileWriter
    private let index: [String: Int]
    private var written: Set<String> = []

    /// Starts a file at `url` holding exactly `tensors`, with optional `__metadata__`.
    public init(url: URL, tensors: [SafetensorsLayout.Declaration], metadata: [String: String]? = nil) throws(QDistIOError) {
        self.url = url
        layout = try SafetensorsLayout(tensors: tensors, metadata: metadata, path: url.path)
        index = layout.entryIndex()
        output = try AtomicFileWriter(destination: url)
        try output.write(layout.prefix)
    }

    /// Writes the bytes of tensor `name`, which must match its declared size.
    public func write(_ name: String, bytes: UnsafeRawBufferPointer) throws(QDistIOError) {
        guard let i = index[name] else {
            throw QDistIOError(.invalidArgument, path: url.path, "tensor \(JSONSerializer.quoted(name)) was not declared")
        }
        let (declaration, offsets) = layout.entries[i]
        guard bytes.count == offsets.count else {
            throw QDistIOError(.invalidArgument, path: url.path,
                               "tensor \(JSONSerializer.quoted(name)): got \(bytes.count) bytes but \(declaration.dtype.rawValue) \(declaration.shape) needs \(offsets.count)")
        }
        guard !written.contains(name) else {
            throw QDistIOError(.invalidArgument, path: url.path, "tensor \(JSONSerializer.quoted(name)) was written twice")
        }
        try output.write(bytes, at: layout.dataStart + offsets.lowerBound)
        written.insert(name)
    }

    /// Writes a stored tensor, checking its dtype and shape against the declaration.
    public func write(_ name: String, _ tensor: StoredTensor) throws(QDistIOError) {
        if let i = index[name] {
            let d = layout.entries[i].declaration
            guard d.dtype == tensor.dtype, d.shape == tensor.shape else {
                throw QDistIOError(.invalidArgument, path: url.path,
                                   "tensor \(JSONSerializer.quoted(name)) was declared \(d.dtype.rawValue) \(d.shape) but is \(tensor.dtype.rawValue) \(tensor.shape)")
            }
        }
        let result: Result<Void, QDistIOError> = tensor.bytes.withUnsafeBytes { raw in
            Result { () throws(QDistIOError) in try write(name, bytes: raw) }
        }
        try result.get()
    }

    /// Checks that every declared tensor was written, then commits the file.
    public func finish() throws(QDistIOError) {
        let missing = layout.entries.map(\.declaration.name).filter { !written.contains($0) }
        guard missing.isEmpty else {
            output.abandon()
            let shown = missing.prefix(3).map { JSONSerializer.quoted($0) }.joined(separator: ", ")
            throw QDistIOError(.invalidArgument, path: url.path,
                               "\(missing.count) declared tensor(s) never written (\(shown)\(missing.count > 3 ? ", …" : ""))")
        }
        try output.commit()
    }

    /// Removes the partial file; the destination is left untouched.
    public func cancel() { output.abandon() }
}
