import Foundation

/// Writes a GGUF file (version 3) atomically: metadata and tensor infos first, then each
/// tensor's bytes, produced one at a time so a model never has to sit in memory whole.
///
/// The layout is the one ggml's `gguf_write_to_buf` and gguf-py produce (FORMATS.md §2.1):
/// tensors in the order given, each at the next multiple of the alignment (`general.alignment`
/// when the metadata has it, else 32), zero padding between them and before the data section.
/// Every check that can fail — names, dimensions, block-multiple rows, sizes — runs before the
/// first byte is written, and the file appears only when complete (`AtomicFileWriter`), so an
/// error never leaves a half-written `.gguf` behind.
public enum GGUFWriter {
    /// One tensor to be written: its GGUF name, ggml dimensions (innermost = row length first)
    /// and storage type. The bytes come from the writer's `data` callback.
    public struct TensorSpec: Sendable, Equatable {
        public var name: String
        public var dims: [Int]
        public var type: GGMLType

        public init(name: String, dims: [Int], type: GGMLType) {
            self.name = name
            self.dims = dims
            self.type = type
        }

        /// A spec from a row-major shape (outermost first, as `Tensor` and safetensors use).
        public init(name: String, shape: [Int], type: GGMLType) {
            self.init(name: name, dims: shape.reversed(), type: type)
        }
    }

    /// The file's layout, computed without writing: tensor infos with their offsets, the
    /// header bytes, where the data section starts and the total file size.
    public struct Layout: Sendable {
        public let infos: [GGUFTensorInfo]
        public let header: [UInt8]
        public let dataStart: Int
        public let fileSize: Int
        public let alignment: Int
    }

    /// ggml's GGML_MAX_NAME (64) holds the name and its terminating NUL.
    public static let maximumNameBytes = 63

    /// The layout for `metadata` and `tensors`; throws `.invalidArgument` naming `path` and
    /// the offending tensor when a name, shape or type cannot be stored.
    public static func layout(metadata: GGUFMetadata, tensors: [TensorSpec], path: String) throws(QDistIOError) -> Layout {
        func failure(_ message: String) -> QDistIOError { QDistIOError(.invalidArgument, path: path, message) }
        var alignment = GGUFHeader.defaultAlignment
        if let value = metadata["general.alignment"] {
            guard case .uint32(let a) = value, a > 0, a & (a - 1) == 0 else {
                throw failure("metadata \"general.alignment\" must be a UINT32 power of two, found \(value.type.name) \(value)")
            }
            alignment = Int(a)
        }
        var seen = Set<String>()
        var infos: [GGUFTensorInfo] = []
        var offset = 0
        for t in tensors {
            let quoted = JSONSerializer.quoted(t.name)
            guard !t.name.isEmpty, t.name.utf8.count <= maximumNameBytes else {
                throw failure("tensor name \(quoted) must be 1 to \(maximumNameBytes) bytes (ggml's GGML_MAX_NAME)")
            }
            guard seen.insert(t.name).inserted else { throw failure("tensor \(quoted) is listed twice") }
            guard (1...GGUFHeader.maximumDimensions).contains(t.dims.count), t.dims.allSatisfy({ $0 > 0 }) else {
                throw failure("tensor \(quoted) has dimensions \(t.dims); ggml tensors have 1 to \(GGUFHeader.maximumDimensions) positive dimensions")
            }
            guard let bytes = GGUFTensorInfo.byteCount(dims: t.dims, type: t.type) else {
                throw failure("tensor \(quoted): rows of \(t.dims[0]) are not a whole number of \(t.type.traits.name) blocks of \(t.type.traits.blockSize)")
            }
            infos.append(GGUFTensorInfo(name: t.name, dims: t.dims, type: t.type, offset: offset))
            offset += GGUFHeader.align(bytes, alignment)
        }
        let header = GGUFEncoding.header(metadata: metadata, tensorInfos: infos)
        let dataStart = GGUFHeader.align(header.count, alignment)
        // ggml pads the last tensor too; gguf-py does as well, so the file ends aligned.
        return Layout(infos: infos, header: header, dataStart: dataStart, fileSize: dataStart + offset, alignment: alignment)
    }

    /// Writes the file at `url`. `data(i)` returns tensor `i`'s bytes in storage order (rows of
    /// blocks); it is called once per tensor, in order, and a wrong byte count is an error. The
    /// destination appears only when every tensor has been written; on any error nothing is
    /// left at `url` (an existing file there is untouched).
    @discardableResult
    public static func write(to url: URL, metadata: GGUFMetadata, tensors: [TensorSpec],
                             data: (Int) throws -> [UInt8]) throws -> Layout {
        let layout = try layout(metadata: metadata, tensors: tensors, path: url.path)
        let out = try AtomicFileWriter(destination: url)
        defer { out.abandon() }
        try out.write(layout.header)
        try out.write([UInt8](repeating: 0, count: layout.dataStart - layout.header.count))
        for (i, info) in layout.infos.enumerated() {
            let bytes = try data(i)
            guard bytes.count == info.byteCount else {
                throw QDistIOError(.invalidArgument, path: url.path,
                                   "tensor \(JSONSerializer.quoted(info.name)): \(bytes.count) bytes given, \(info.type.traits.name) \(info.dims) needs \(info.byteCount)")
            }
            try out.write(bytes)
            let padded = GGUFHeader.align(bytes.count, layout.alignment)
            if padded > bytes.count { try out.write([UInt8](repeating: 0, count: padded - bytes.count)) }
        }
        try out.commit()
        return layout
    }
}
