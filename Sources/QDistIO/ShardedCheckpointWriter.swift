import Foundation
import QDistTensor

/// Writes a checkpoint as Hugging Face does: one `model.safetensors`, or numbered shards of at
/// most `maxShardSize` data bytes plus `model.safetensors.index.json`.
///
/// Shards are filled greedily in the order the tensors are given (huggingface_hub's
/// `split_state_dict_into_shards_factory`): a tensor that would push the current shard past the
/// limit starts a new one, and a tensor larger than the limit gets a shard of its own. Files are
/// named `model-00001-of-00003.safetensors` (1-based, five digits). Each shard is written
/// atomically and the index last, so a reader never finds an index whose shards are not all
/// complete. Afterwards, leftover `model-NNNNN-of-NNNNN.safetensors` files and a stale index
/// from an earlier save into the same folder are deleted, as transformers' `save_pretrained`
/// does; no other file is touched.
public struct ShardedCheckpointWriter: Sendable {
    /// huggingface_hub's default `max_shard_size` ("5GB", decimal).
    public static let defaultMaxShardSize = 5_000_000_000

    /// Largest data size of one shard, in bytes (headers not counted).
    public var maxShardSize: Int
    /// `__metadata__` written into every shard (transformers writes `{"format": "pt"}`).
    public var metadata: [String: String]?

    public init(maxShardSize: Int = defaultMaxShardSize, metadata: [String: String]? = ["format": "pt"]) {
        self.maxShardSize = maxShardSize
        self.metadata = metadata
    }

    /// What a save produced.
    public struct Saved: Sendable {
        /// Every shard written, in order.
        public var files: [URL]
        /// The index, when the checkpoint has more than one shard.
        public var index: SafetensorsIndex?
    }

    /// `model-{i:05d}-of-{n:05d}.safetensors` for shard `i` (1-based) of `n`.
    public static func shardFileName(_ i: Int, of n: Int) -> String {
        func fiveDigits(_ v: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, 5 - s.count)) + s
        }
        return "model-\(fiveDigits(i))-of-\(fiveDigits(n)).safetensors"
    }

    /// Groups tensor names into shards by the greedy rule; every group is non-empty, and no
    /// tensors gives one empty group (an empty `model.safetensors`).
    public func plan(_ tensors: [(name: String, byteCount: Int)]) -> [[String]] {
        var shards: [[String]] = []
        var current: [String] = []
        var currentSize = 0
        for (name, size) in tensors {
            if size > maxShardSize {
                shards.append([name])
                continue
            }
            if currentSize + size > maxShardSize && !current.isEmpty {
                shards.append(current)
                current = []
                currentSize = 0
            }
            current.append(name)
            currentSize += size
        }
        if !current.isEmpty || shards.isEmpty { shards.append(current) }
        return shards
    }

    /// Writes `tensors` (sharding in the given order) into `folder`, creating it if needed.
    @discardableResult
    public func write(_ tensors: [(name: String, tensor: StoredTensor)], to folder: URL) throws(QDistIOError) -> Saved {
        var byName: [String: StoredTensor] = [:]
        for (name, t) in tensors {
            guard byName.updateValue(t, forKey: name) == nil else {
                throw QDistIOError(.invalidArgument, url: folder, "tensor \(JSONSerializer.quoted(name)) is given twice")
            }
        }
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw QDistIOError(.io, url: folder, "cannot create the folder: \(FileErrorReason.describe(error))")
        }
        let groups = plan(tensors.map { (name: $0.name, byteCount: $0.tensor.bytes.count) })
        let indexURL = folder.appendingPathComponent(SafetensorsIndex.fileName)
        if groups.count == 1 {
            let url = folder.appendingPathComponent("model.safetensors")
            try SafetensorsWriter.write(byName, metadata: metadata, to: url)
            removeStaleFiles(in: folder, keeping: [url.lastPathComponent], removeIndex: true)
            return Saved(files: [url], index: nil)
        }
        var files: [URL] = []
        var shards: [(file: String, tensorBytes: [String: Int])] = []
        for (i, group) in groups.enumerated() {
            let name = Self.shardFileName(i + 1, of: groups.count)
            var part: [String: StoredTensor] = [:]
            for tensorName in group { part[tensorName] = byName[tensorName] }
            let url = folder.appendingPathComponent(name)
            try SafetensorsWriter.write(part, metadata: metadata, to: url)
            files.append(url)
            shards.append((file: name, tensorBytes: part.mapValues(\.bytes.count)))
        }
        let index = try SafetensorsIndex(shards: shards, path: indexURL.path)
        try index.write(to: indexURL)
        removeStaleFiles(in: folder, keeping: Set(files.map(\.lastPathComponent)), removeIndex: false)
        return Saved(files: files, index: index)
    }

    /// Writes tensors keyed by name, sharding them in name order.
    @discardableResult
    public func write(_ tensors: [String: StoredTensor], to folder: URL) throws(QDistIOError) -> Saved {
        try write(tensors.keys.sorted().map { (name: $0, tensor: tensors[$0]!) }, to: folder)
    }

    /// Writes the index for shards that other processes already wrote into `folder` (each MPI
    /// rank writes its own shard; rank 0 then calls this with every shard's tensor byte counts).
    /// With `verify`, each shard is opened and must hold exactly the listed tensors with the
    /// listed sizes; errors name the index file.
    @discardableResult
    public static func writeIndex(shards: [(file: String, tensorBytes: [String: Int])], to folder: URL,
                                  verify: Bool = true) throws(QDistIOError) -> SafetensorsIndex {
        let indexURL = folder.appendingPathComponent(SafetensorsIndex.fileName)
        let index = try SafetensorsIndex(shards: shards, path: indexURL.path)
        if verify {
            for (file, tensors) in shards {
                let url = folder.appendingPathComponent(file)
                guard FileManager.default.fileExists(atPath: url.path) else {
                    throw QDistIOError(.index, url: indexURL, "shard \(JSONSerializer.quoted(file)) does not exist")
                }
                let reader = try SafetensorsReader(url: url)
                let onDisk = Dictionary(uniqueKeysWithValues: reader.tensorInfos.map { ($0.name, $0.byteCount) })
                guard onDisk == tensors else {
                    let differing = Set(onDisk.keys).symmetricDifference(tensors.keys).sorted().first
                        ?? tensors.keys.sorted().first { onDisk[$0] != tensors[$0] } ?? "?"
                    throw QDistIOError(.index, url: indexURL,
                                       "shard \(JSONSerializer.quoted(file)) does not hold the tensors listed for it (first difference: \(JSONSerializer.quoted(differing)))")
                }
            }
        }
        try index.write(to: indexURL)
        return index
    }

    private func removeStaleFiles(in folder: URL, keeping: Set<String>, removeIndex: Bool) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
        for name in names where !keeping.contains(name) {
            if Self.isShardFileName(name) || (removeIndex && name == SafetensorsIndex.fileName) {
                try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
            }
        }
    }

    /// True for names of the form `model-NNNNN-of-NNNNN.safetensors`.
    static func isShardFileName(_ name: String) -> Bool {
        let b = Array(name.utf8)
        guard b.count == 32, name.hasPrefix("model-"), name.hasSuffix(".safetensors") else { return false }
        let digits = Array(b[6..<11]) + Array(b[15..<20])
        return String(decoding: b[11..<15], as: UTF8.self) == "-of-" && digits.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }
}
