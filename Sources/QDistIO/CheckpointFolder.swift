import Foundation
import QDistTensor

/// A model's weights opened from wherever they live: a single `.safetensors` file, a folder
/// with `model.safetensors`, or a folder with `model.safetensors.index.json` and its shards.
///
/// Callers ask for tensors by name and never care which shard holds them. Opening is strict:
/// every shard named by the index must exist and validate, every tensor the index maps must be
/// in the shard it names, and every tensor in a shard must be in the index, so a half-copied
/// checkpoint fails at open with one line naming the index (or shard) file rather than part
/// way through a long quantization run. Shards are memory-mapped (`SafetensorsReader`), so
/// opening costs no reading of tensor data.
public final class CheckpointFolder: @unchecked Sendable {
    /// The path the checkpoint was opened from (file or folder).
    public let url: URL
    /// The folder holding the weight files (and usually `config.json`).
    public let folder: URL
    /// The index, for a sharded checkpoint.
    public let index: SafetensorsIndex?
    /// Where the index was read from, for a sharded checkpoint.
    public let indexURL: URL?
    /// One reader per weight file, in file-name order.
    public let readers: [SafetensorsReader]
    /// Every tensor name: file by file, each file's tensors in data order.
    public let tensorNames: [String]
    private let location: [String: Int]

    /// Opens `url`: a `.safetensors` file, an index file, or a folder holding either.
    public init(url: URL) throws(QDistIOError) {
        self.url = url
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else {
            throw QDistIOError(.io, url: url, "No such file or directory")
        }
        let indexURL: URL?
        let singleFile: URL?
        if isFolder.boolValue {
            folder = url
            let candidate = url.appendingPathComponent(SafetensorsIndex.fileName)
            if FileManager.default.fileExists(atPath: candidate.path) {
                (indexURL, singleFile) = (candidate, nil)
            } else {
                (indexURL, singleFile) = (nil, try Self.singleWeightFile(in: url))
            }
        } else {
            folder = url.deletingLastPathComponent()
            if url.lastPathComponent.hasSuffix(".index.json") {
                (indexURL, singleFile) = (url, nil)
            } else {
                (indexURL, singleFile) = (nil, url)
            }
        }
        self.indexURL = indexURL
        if let singleFile {
            index = nil
            readers = [try SafetensorsReader(url: singleFile)]
        } else {
            let indexFile = indexURL!
            let loaded = try SafetensorsIndex.load(from: indexFile)
            index = loaded
            readers = try Self.openShards(of: loaded, indexURL: indexFile)
        }
        var names: [String] = []
        var location: [String: Int] = [:]
        for (i, reader) in readers.enumerated() {
            for name in reader.tensorNames {
                if let previous = location[name] {
                    throw QDistIOError(.index, path: (indexURL ?? url).path,
                                       "tensor \(JSONSerializer.quoted(name)) is in both \(readers[previous].url.lastPathComponent) and \(reader.url.lastPathComponent)")
                }
                location[name] = i
                names.append(name)
            }
        }
        self.tensorNames = names
        self.location = location
    }

    /// Opens the checkpoint at `path`.
    public convenience init(path: String) throws(QDistIOError) {
        try self.init(url: URL(fileURLWithPath: path))
    }

    private static func singleWeightFile(in folder: URL) throws(QDistIOError) -> URL {
        let standard = folder.appendingPathComponent("model.safetensors")
        if FileManager.default.fileExists(atPath: standard.path) { return standard }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") }.sorted()
        if names.count == 1 { return folder.appendingPathComponent(names[0]) }
        if names.isEmpty {
            throw QDistIOError(.io, url: folder, "no model.safetensors, \(SafetensorsIndex.fileName) or other .safetensors file in this folder")
        }
        throw QDistIOError(.io, url: folder,
                           "\(names.count) .safetensors files but no \(SafetensorsIndex.fileName) to say how they fit together")
    }

    private static func openShards(of index: SafetensorsIndex, indexURL: URL) throws(QDistIOError) -> [SafetensorsReader] {
        let folder = indexURL.deletingLastPathComponent()
        var byShard: [String: [String]] = [:]
        for (tensor, file) in index.weightMap { byShard[file, default: []].append(tensor) }
        var readers: [SafetensorsReader] = []
        for file in byShard.keys.sorted() {
            let shardURL = folder.appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: shardURL.path) else {
                throw QDistIOError(.index, url: indexURL, "weight_map names shard \(JSONSerializer.quoted(file)), which does not exist")
            }
            let reader = try SafetensorsReader(url: shardURL)
            if let absent = byShard[file]!.sorted().first(where: { !reader.contains($0) }) {
                throw QDistIOError(.index, url: indexURL,
                                   "weight_map puts tensor \(JSONSerializer.quoted(absent)) in \(JSONSerializer.quoted(file)), which does not hold it")
            }
            if let extra = reader.tensorNames.first(where: { index.weightMap[$0] != file }) {
                let elsewhere = index.weightMap[extra].map { "maps it to \(JSONSerializer.quoted($0))" } ?? "does not list it"
                throw QDistIOError(.index, url: indexURL,
                                   "shard \(JSONSerializer.quoted(file)) holds tensor \(JSONSerializer.quoted(extra)) but weight_map \(elsewhere)")
            }
            readers.append(reader)
        }
        return readers
    }

    /// The weight files, in order.
    public var files: [URL] { readers.map(\.url) }

    /// `config.json` next to the weights, when there is one.
    public var configURL: URL? {
        let candidate = folder.appendingPathComponent("config.json")
        return FileManager.default.fileExists(atPath: candidate.path) ? candidate : nil
    }

    /// True when some weight file holds `name`.
    public func contains(_ name: String) -> Bool { location[name] != nil }

    /// The reader of the file holding `name`; `.notFound` names the checkpoint when absent.
    public func reader(for name: String) throws(QDistIOError) -> SafetensorsReader {
        guard let i = location[name] else {
            throw QDistIOError(.notFound, path: (indexURL ?? url).path,
                               "no tensor named \(JSONSerializer.quoted(name)) (the checkpoint holds \(location.count) tensors)")
        }
        return readers[i]
    }

    /// Where `name` sits (its `byteRange` is within `reader(for:).url`).
    public func info(_ name: String) throws(QDistIOError) -> SafetensorsTensorInfo {
        try reader(for: name).info(name)
    }

    /// The tensor's dtype, shape and a copy of its bytes.
    public func storedTensor(_ name: String) throws(QDistIOError) -> StoredTensor {
        try reader(for: name).storedTensor(name)
    }

    /// The tensor decoded to Float32.
    public func tensor(_ name: String) throws(QDistIOError) -> Tensor {
        try reader(for: name).tensor(name)
    }

    /// Calls `body` with the tensor's bytes in place (no copy; valid only during the call).
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try reader(for: name).withRawBytes(name, body)
    }

    /// Every tensor's entry with the file holding it, in `tensorNames` order.
    public var tensorInfos: [(file: URL, info: SafetensorsTensorInfo)] {
        readers.flatMap { reader in reader.tensorInfos.map { (file: reader.url, info: $0) } }
    }
}
