import Foundation
import QDistComm
import QDistIO
import QDistModel
import QDistTensor
import QDistTrain

/// A training checkpoint: `<output>/checkpoints/step-NNNNNN/` holding one safetensors file per
/// rank (`rank-0000r-of-0000P.safetensors`: that rank's range of the flat index for
/// `parameters`, `exp_avg` (m) and `exp_avg_sq` (v), 1-D F32) and `trainer_state.json` (the
/// step, the partition's P, the flat layout and the run's seed).
///
/// Why this shape: each rank writes only what it owns, in parallel, atomically (temporary name,
/// then rename); rank 0 writes `trainer_state.json` only after every shard is in place, so a
/// folder without it is an interrupted save and is ignored. The data order is a pure function
/// of (seed, step), so the step is the whole RNG state. Reading re-partitions: a rank asks for
/// any range of the flat index and gets it from whichever old shards overlap it, so a run
/// resumes on a different number of ranks or ZeRO stage.
public struct TrainingCheckpoint: Sendable {
    public static let stateFileName = "trainer_state.json"
    public static let kinds = ["parameters", "exp_avg", "exp_avg_sq"]

    public let folder: URL
    /// Optimizer steps completed when it was written.
    public let step: Int
    /// Ranks (shard files) it was written with.
    public let worldSize: Int
    public let flatCount: Int
    public let seed: UInt64
    /// (name, shape, offset) of every layout entry, to refuse a checkpoint of another LoRA setup.
    public let entries: [(name: String, shape: [Int], offset: Int)]

    /// `<output>/checkpoints`.
    public static func root(output: URL) -> URL { output.appendingPathComponent("checkpoints") }

    static func shardName(rank: Int, of size: Int) -> String {
        String(format: "rank-%05d-of-%05d.safetensors", rank, size)
    }

    /// Writes this rank's shard and, once all are written, the state file (rank 0), then removes
    /// older checkpoints (rank 0). Collective.
    public static func save(_ trainer: DataParallelTrainer, output: URL, seed: UInt64, communicator comm: any Communicator) throws {
        let step = trainer.completedSteps
        let folder = root(output: output).appendingPathComponent(String(format: "step-%06d", step))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let state = trainer.ownedState(), own = trainer.ownedRange
        let tensors = Dictionary(uniqueKeysWithValues: zip(kinds, [state.parameters, state.firstMoment, state.secondMoment]).map {
            ($0, StoredTensor(Tensor(shape: [$1.count], scalars: $1), as: .f32))
        })
        try SafetensorsWriter.write(tensors, metadata: ["start": "\(own.lowerBound)", "end": "\(own.upperBound)"],
                                    to: folder.appendingPathComponent(shardName(rank: comm.rank, of: comm.size)))
        try comm.barrier()
        if comm.isMain {
            let layout = trainer.graph.layout
            let json: JSONValue = .object([
                ("step", .integer(step)), ("world_size", .integer(comm.size)),
                ("zero_stage", .integer(trainer.settings.zeroStage.rawValue)), ("flat_count", .integer(layout.count)),
                ("seed", .string(String(seed))),
                ("entries", .array(layout.entries.map { .array([.string($0.name), .array($0.shape.map { .integer($0) }), .integer($0.offset)]) })),
            ])
            try AtomicFileWriter.write(json.serialized(.pretty(sortKeys: false)), to: folder.appendingPathComponent(stateFileName))
            for old in (try? FileManager.default.contentsOfDirectory(at: root(output: output), includingPropertiesForKeys: nil)) ?? []
            where old.lastPathComponent != folder.lastPathComponent && old.lastPathComponent.hasPrefix("step-") {
                try? FileManager.default.removeItem(at: old)
            }
        }
        try comm.barrier()
    }

    /// The complete checkpoint with the highest step under `output`, or nil.
    public static func latest(output: URL) throws -> TrainingCheckpoint? {
        let folders = (try? FileManager.default.contentsOfDirectory(at: root(output: output), includingPropertiesForKeys: nil)) ?? []
        let complete = folders.filter {
            $0.lastPathComponent.hasPrefix("step-") && FileManager.default.fileExists(atPath: $0.appendingPathComponent(stateFileName).path)
        }
        guard let newest = complete.max(by: { $0.lastPathComponent < $1.lastPathComponent }) else { return nil }
        return try TrainingCheckpoint(folder: newest)
    }

    /// Reads the state file of a checkpoint folder.
    public init(folder: URL) throws {
        let path = folder.appendingPathComponent(Self.stateFileName)
        let json = try JSONParser.parseFile(at: path)
        guard let step = json["step"]?.intValue, let size = json["world_size"]?.intValue, let count = json["flat_count"]?.intValue,
              let seed = json["seed"]?.stringValue.flatMap({ UInt64($0) }), let entries = json["entries"]?.arrayValue else {
            throw QDistIOError(.json, path: path.path, "not a qdist trainer state (needs step, world_size, flat_count, seed, entries)")
        }
        self.folder = folder
        self.step = step
        self.worldSize = size
        self.flatCount = count
        self.seed = seed
        self.entries = try entries.map { e in
            guard let a = e.arrayValue, a.count == 3, let name = a[0].stringValue, let shape = a[1].arrayValue?.compactMap(\.intValue),
                  let offset = a[2].intValue else { throw QDistIOError(.json, path: path.path, "malformed layout entry") }
            return (name, shape, offset)
        }
    }

    /// Throws unless the checkpoint was written for `layout` (same names, shapes and offsets).
    public func verify(layout: TrainableParameterLayout) throws {
        let same = flatCount == layout.count && entries.count == layout.entries.count
            && zip(entries, layout.entries).allSatisfy { $0.name == $1.name && $0.shape == $1.shape && $0.offset == $1.offset }
        guard same else {
            throw QDistIOError(.invalidArgument, path: folder.path,
                               "checkpoint has a flat layout of \(flatCount) values over \(entries.count) tensors; this run's LoRA setup has \(layout.count) over \(layout.entries.count) (change r/target_modules back, or use a new output)")
        }
    }

    /// Loads the checkpoint's state into `trainer`, re-partitioned for the trainer's ranks.
    public func restore(into trainer: DataParallelTrainer) throws {
        try verify(layout: trainer.graph.layout)
        let old = ZeROPartition(count: flatCount, parts: worldSize)
        var readers: [Int: SafetensorsReader] = [:]
        func reader(_ r: Int) throws -> SafetensorsReader {
            if let existing = readers[r] { return existing }
            let opened = try SafetensorsReader(url: folder.appendingPathComponent(Self.shardName(rank: r, of: worldSize)))
            readers[r] = opened
            return opened
        }
        try trainer.restore(completedSteps: step) { kind, range in
            var out = [Float](repeating: 0, count: range.count)
            for (r, piece) in old.pieces(of: range).enumerated() where !piece.isEmpty {
                let values = try reader(r).tensor(kind).scalars
                let start = old.range(r).lowerBound
                guard values.count == old.range(r).count else {
                    throw QDistIOError(.safetensors, path: folder.path, "shard \(r) holds \(values.count) values of \(kind), expected \(old.range(r).count)")
                }
                out.replaceSubrange((piece.lowerBound - range.lowerBound)..<(piece.upperBound - range.lowerBound),
                                    with: values[(piece.lowerBound - start)..<(piece.upperBound - start)])
            }
            return out
        }
    }
}
