import Foundation
import QDistTensor

/// Writes a complete Hugging Face model folder — config.json, model.safetensors (or shards
/// with an index), tokenizer.json, tokenizer_config.json, generation_config.json — so that
/// transformers (and qdist) load it.
///
/// The folder appears whole or not at all: everything is written into a hidden staging folder
/// beside the destination and renamed into place at the end; a failure removes the staging
/// folder. An existing destination is replaced only when `overwrite` is set and qdist wrote it,
/// and never when it is, holds or lies inside one of `inputs` (`OutputFolderGuard`).
public struct ModelFolderWriter {
    public var destination: URL
    public var overwrite: Bool
    public var maxShardSize: Int
    /// What the folder is made from (model folders, files): the destination must keep clear.
    public var inputs: [URL]

    public init(destination: URL, overwrite: Bool = false, inputs: [URL] = [],
                maxShardSize: Int = ShardedCheckpointWriter.defaultMaxShardSize) {
        self.destination = destination
        self.overwrite = overwrite
        self.inputs = inputs
        self.maxShardSize = maxShardSize
    }

    /// Writes the folder. `tensors` lists names and shapes in checkpoint order; `load` returns
    /// each one, already in its stored dtype (called once per tensor; all are held until the
    /// shards are written, so peak memory is the stored size of the model).
    public func write(config: ModelConfiguration, tensors: [(name: String, shape: [Int])],
                      load: (String) throws -> StoredTensor, tokenizerJSON: JSONValue?, tokenizerConfig: JSONValue?,
                      generationConfig: JSONValue?, metadata: [String: String] = ["format": "pt"],
                      extraFiles: [String: [UInt8]] = [:]) throws {
        let fm = FileManager.default
        try OutputFolderGuard.check(destination, inputs: inputs, overwrite: overwrite)
        let parent = destination.deletingLastPathComponent()
        do { try fm.createDirectory(at: parent, withIntermediateDirectories: true) } catch {
            throw QDistIOError(.io, path: parent.path, "cannot create folder: \(FileErrorReason.describe(error))")
        }
        let staging = parent.appendingPathComponent(".\(destination.lastPathComponent).partial-\(getpid())")
        try? fm.removeItem(at: staging)
        do {
            try fm.createDirectory(at: staging, withIntermediateDirectories: false)
            try OutputFolderGuard.mark(staging)
            try config.write(to: staging.appendingPathComponent("config.json"))
            let plan = ShardedCheckpointWriter(maxShardSize: maxShardSize, metadata: metadata)
            let stored = try tensors.map { entry -> (name: String, tensor: StoredTensor) in
                let t = try load(entry.name)
                guard t.shape == entry.shape else {
                    throw QDistIOError(.invalidArgument, path: destination.path, "tensor \(entry.name) has shape \(t.shape), expected \(entry.shape)")
                }
                return (entry.name, t)
            }
            _ = try plan.write(stored, to: staging)
            for (name, json) in [("tokenizer.json", tokenizerJSON), ("tokenizer_config.json", tokenizerConfig),
                                 ("generation_config.json", generationConfig)] {
                guard let json else { continue }
                try AtomicFileWriter.write(json.serialized(.pretty(sortKeys: false)) + [0x0A],
                                           to: staging.appendingPathComponent(name))
            }
            for (name, bytes) in extraFiles.sorted(by: { $0.key < $1.key }) {
                try AtomicFileWriter.write(bytes, to: staging.appendingPathComponent(name))
            }
            try OutputFolderGuard.replace(destination, overwrite: overwrite)
            try fm.moveItem(at: staging, to: destination)
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
    }
}
