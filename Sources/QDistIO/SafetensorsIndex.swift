import Foundation

/// The `model.safetensors.index.json` of a sharded checkpoint: which shard holds each tensor,
/// and the total data size.
///
/// Layout (FORMATS.md §1.4): `{"metadata": {"total_size": N, …}, "weight_map": {tensor: shard}}`.
/// `total_size` is the sum of tensor data bytes (headers excluded) and is informational;
/// other `metadata` keys are kept as they are. Shard names must be plain file names in the
/// index's folder, so a hostile index cannot point a reader at `../../etc/passwd`. Written the
/// way transformers writes it (`json.dumps(indent=2, sort_keys=True)` plus a newline).
public struct SafetensorsIndex: Sendable, Equatable {
    /// The file name transformers and qdist use for the index.
    public static let fileName = "model.safetensors.index.json"

    /// Tensor name → shard file name.
    public var weightMap: [String: String]
    /// `metadata.total_size`, when present.
    public var totalSize: Int?
    /// Every other key of `metadata` (kept so a rewritten index loses nothing).
    public var otherMetadata: [String: JSONValue]

    public init(weightMap: [String: String], totalSize: Int?, otherMetadata: [String: JSONValue] = [:]) {
        self.weightMap = weightMap
        self.totalSize = totalSize
        self.otherMetadata = otherMetadata
    }

    /// Builds the index for shards that were written separately (for example one per MPI
    /// rank): each shard's file name with the data byte count of every tensor in it.
    /// `total_size` is the sum of those counts. Throws `.index` when a tensor appears in two
    /// shards or a file name is not a plain `*.safetensors` name; `path` names the index.
    public init(shards: [(file: String, tensorBytes: [String: Int])], path: String) throws(QDistIOError) {
        var map: [String: String] = [:]
        var total = 0
        for (file, tensors) in shards {
            guard Self.isPlainFileName(file) else {
                throw QDistIOError(.index, path: path, "shard name \(JSONSerializer.quoted(file)) is not a plain file name")
            }
            for (name, bytes) in tensors {
                if let other = map[name] {
                    throw QDistIOError(.index, path: path,
                                       "tensor \(JSONSerializer.quoted(name)) is in both \(JSONSerializer.quoted(other)) and \(JSONSerializer.quoted(file))")
                }
                map[name] = file
                total += bytes
            }
        }
        self.init(weightMap: map, totalSize: total)
    }

    /// The distinct shard file names, sorted.
    public var shardFiles: [String] { Array(Set(weightMap.values)).sorted() }

    /// Names of the tensors mapped to `file`, sorted.
    public func tensors(inShard file: String) -> [String] {
        weightMap.filter { $0.value == file }.map(\.key).sorted()
    }

    /// A name with no folder part that cannot escape the index's folder.
    static func isPlainFileName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\0")
    }

    /// Reads and checks an index file (structure only; `CheckpointFolder` checks the shards).
    public static func load(from url: URL) throws(QDistIOError) -> SafetensorsIndex {
        let json = try JSONParser.parseFile(at: url)
        func failure(_ message: String) -> QDistIOError { QDistIOError(.index, url: url, message) }
        guard json.objectValue != nil else { throw failure("expected a JSON object, found \(json.typeName)") }
        guard let mapValue = json["weight_map"] else { throw failure("missing key \"weight_map\"") }
        guard let pairs = mapValue.objectValue else { throw failure("\"weight_map\" is \(mapValue.typeName), expected an object") }
        var map: [String: String] = [:]
        for (tensor, fileValue) in pairs {
            guard let file = fileValue.stringValue else {
                throw failure("\"weight_map\" entry \(JSONSerializer.quoted(tensor)) is \(fileValue.typeName), expected a shard file name")
            }
            guard isPlainFileName(file) else {
                throw failure("\"weight_map\" entry \(JSONSerializer.quoted(tensor)) names \(JSONSerializer.quoted(file)), which is not a plain file name in the index's folder")
            }
            map[tensor] = file
        }
        var totalSize: Int?
        var other: [String: JSONValue] = [:]
        if let metadata = json["metadata"], !metadata.isNull {
            guard let fields = metadata.objectValue else { throw failure("\"metadata\" is \(metadata.typeName), expected an object") }
            for (key, value) in fields {
                if key == "total_size" {
                    guard let size = value.intValue, size >= 0 else {
                        throw failure("\"metadata.total_size\" is \(value.compactText), expected a non-negative integer")
                    }
                    totalSize = size
                } else {
                    other[key] = value
                }
            }
        }
        return SafetensorsIndex(weightMap: map, totalSize: totalSize, otherMetadata: other)
    }

    /// The index as JSON: `metadata` then `weight_map`.
    public var jsonValue: JSONValue {
        var metadata: [(key: String, value: JSONValue)] = otherMetadata.map { (key: $0.key, value: $0.value) }
        if let totalSize { metadata.append((key: "total_size", value: .integer(totalSize))) }
        return .object([
            (key: "metadata", value: .object(metadata)),
            (key: "weight_map", value: .object(weightMap.map { (key: $0.key, value: .string($0.value)) })),
        ])
    }

    /// The file's bytes as transformers writes them: indented, keys sorted, final newline.
    public func serialized() -> [UInt8] {
        jsonValue.serialized(.pretty(sortKeys: true)) + [0x0A]
    }

    /// Writes the index to `url` atomically.
    public func write(to url: URL) throws(QDistIOError) {
        try AtomicFileWriter.write(serialized(), to: url)
    }
}
