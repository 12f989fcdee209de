import Foundation
import QDistTensor

/// What a checkpoint holds, tallied: every tensor's dtype, shape, size and file, the totals,
/// the safetensors metadata, and the `quantization_config` from `config.json`.
///
/// This is the library half of `qdist inspect` (the command only formats it), and a cheap way
/// for other tools to see a checkpoint without decoding a single tensor: it reads headers
/// only. `parameterCount` counts stored elements, so for a packed quantized checkpoint (eight
/// 4-bit codes per I32) it is the number of stored words, not of logical weights.
public struct CheckpointSummary: Sendable {
    /// One tensor's row in the summary.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public var byteCount: Int
        /// The weight file's name (within `CheckpointFolder.folder`).
        public var file: String
    }

    /// The path the checkpoint was opened from.
    public var path: String
    /// Weight file names, in order.
    public var files: [String]
    /// Every tensor, file by file in data order.
    public var tensors: [Entry]
    /// Sum of element counts.
    public var parameterCount: Int
    /// Sum of tensor data bytes (headers excluded), i.e. the index's `total_size`.
    public var totalBytes: Int
    /// Data bytes per dtype, largest first.
    public var dtypeBytes: [(dtype: DType, bytes: Int)]
    /// `__metadata__` of all files merged (the first file to set a key wins), in file order.
    public var metadata: [(key: String, value: String)]
    /// `quantization_config` from `config.json` next to the weights; nil when absent.
    public var quantizationConfig: JSONValue?
    /// The `config.json` that was read, if any.
    public var configFile: URL?

    /// Number of tensors.
    public var tensorCount: Int { tensors.count }

    /// Summarizes an opened checkpoint; reads `config.json` (if present) for
    /// `quantization_config`, failing with its path when it is not valid JSON.
    public init(checkpoint: CheckpointFolder) throws(QDistIOError) {
        path = checkpoint.url.path
        files = checkpoint.files.map(\.lastPathComponent)
        var tensors: [Entry] = []
        var perType: [DType: Int] = [:]
        var parameters = 0, bytes = 0
        var metadata: [(key: String, value: String)] = []
        var seenKeys = Set<String>()
        for reader in checkpoint.readers {
            let file = reader.url.lastPathComponent
            for info in reader.tensorInfos {
                tensors.append(Entry(name: info.name, dtype: info.dtype, shape: info.shape, byteCount: info.byteCount, file: file))
                perType[info.dtype, default: 0] += info.byteCount
                parameters += info.elementCount
                bytes += info.byteCount
            }
            for (k, v) in reader.header.metadata ?? [] where seenKeys.insert(k).inserted {
                metadata.append((key: k, value: v))
            }
        }
        self.tensors = tensors
        self.parameterCount = parameters
        self.totalBytes = bytes
        self.dtypeBytes = perType.map { (dtype: $0.key, bytes: $0.value) }.sorted {
            $0.bytes != $1.bytes ? $0.bytes > $1.bytes : $0.dtype.safetensorsOrder > $1.dtype.safetensorsOrder
        }
        self.metadata = metadata
        configFile = checkpoint.configURL
        if let configFile {
            let config = try JSONParser.parseFile(at: configFile)
            guard config.objectValue != nil else {
                throw QDistIOError(.config, url: configFile, "expected a JSON object, found \(config.typeName)")
            }
            quantizationConfig = config["quantization_config"].flatMap { $0.isNull ? nil : $0 }
        } else {
            quantizationConfig = nil
        }
    }

    /// Opens the checkpoint at `url` and summarizes it.
    public init(url: URL) throws(QDistIOError) {
        try self.init(checkpoint: CheckpointFolder(url: url))
    }

    /// The summary as one JSON object (the shape `qdist inspect --json` prints):
    /// `path, files, tensors[{name, dtype, shape, bytes, file}], tensor_count, parameter_count,
    /// total_bytes, dtype_bytes{}, metadata{}, quantization_config`.
    public var jsonValue: JSONValue {
        .object([
            (key: "path", value: .string(path)),
            (key: "files", value: .array(files.map(JSONValue.string))),
            (key: "tensors", value: .array(tensors.map { e in
                [
                    "name": .string(e.name),
                    "dtype": .string(e.dtype.rawValue),
                    "shape": .array(e.shape.map { .integer($0) }),
                    "bytes": .integer(e.byteCount),
                    "file": .string(e.file),
                ]
            })),
            (key: "tensor_count", value: .integer(tensorCount)),
            (key: "parameter_count", value: .integer(parameterCount)),
            (key: "total_bytes", value: .integer(totalBytes)),
            (key: "dtype_bytes", value: .object(dtypeBytes.map { (key: $0.dtype.rawValue, value: .integer($0.bytes)) })),
            (key: "metadata", value: .object(metadata.map { (key: $0.key, value: .string($0.value)) })),
            (key: "quantization_config", value: quantizationConfig ?? .null),
        ])
    }
}
