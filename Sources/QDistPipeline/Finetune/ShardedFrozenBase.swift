import Foundation
import QDistComm
import QDistIO
import QDistModel
import QDistTensor
import QDistTrain

/// The frozen base of a fine-tuning run on one rank, held whole (ZeRO 0–2) or as this rank's
/// 1/P of every block payload and of the embedding, final norm and head (ZeRO-3).
///
/// Sharded, every request all-gathers: the graph asks for block i before its forward and again
/// before its backward (recompute), and for the embedding and head once per micro-step, so
/// only one gathered block (plus the embedding) lives at a time — ZeRO-3's "gather on use,
/// release after". Every rank asks in the same order (the graph guarantees it, even for empty
/// batches), which is what keeps the collectives in step. Blocks are stored through a
/// `FrozenBlockCodec`, so the NF4 base plugs in without touching the gathering.
public final class ShardedFrozenBase: FrozenWeightProvider, @unchecked Sendable {
    public let config: ModelConfiguration
    public let decoder: any FrozenBlockDecoder
    /// The stored format's name (the codec's).
    public let formatName: String
    public let isSharded: Bool
    let communicator: any Communicator
    /// Per block: the whole payload, or this rank's contiguous slice of it.
    var blockPayloads: [[UInt8]]
    /// Per block: the payload's full size (its partition is `ZeROPartition(count:parts:)`).
    let blockPayloadSizes: [Int]
    /// Embedding (vocab, hidden), final norm (hidden) and untied head (vocab, hidden): whole or
    /// this rank's slice of each.
    var embedding: [Float], finalNorm: [Float], head: [Float]?

    /// Loads the base through `codec` (blocks) and `source` (embedding, norm, head) — each rank
    /// reads what it keeps; mmap keeps this cheap — and shards it when `sharded`. Neither is
    /// kept, so the caller can release the checkpoint's mapping afterwards.
    public init(config: ModelConfiguration, source: any WeightSource, codec: any FrozenBlockCodec,
                sharded: Bool, communicator: any Communicator) throws {
        self.config = config
        self.decoder = codec.decoder
        self.formatName = codec.formatName
        self.isSharded = sharded
        self.communicator = communicator
        let (rank, ranks) = (communicator.rank, communicator.size)
        func keep<T>(_ all: [T]) -> [T] {
            sharded ? Array(all[ZeROPartition(count: all.count, parts: ranks).range(rank)]) : all
        }
        var payloads: [[UInt8]] = [], sizes: [Int] = []
        for i in 0..<config.numHiddenLayers {
            let p = try codec.blockPayload(i)
            sizes.append(p.count)
            payloads.append(keep(p))
        }
        blockPayloads = payloads
        blockPayloadSizes = sizes
        let shapes = Dictionary(uniqueKeysWithValues: config.tensorShapes.map { ($0.name, $0.shape) })
        func load(_ name: String) throws -> [Float] {
            guard let shape = shapes[name] else { throw ModelLoadError("config implies no tensor \(name)") }
            return keep(try source.tensor(name, expectedShape: shape).scalars)
        }
        embedding = try load("model.embed_tokens.weight")
        finalNorm = try load("model.norm.weight")
        head = config.tieWordEmbeddings ? nil : try load("lm_head.weight")
    }

    /// Bytes this rank holds between steps.
    public var heldBytes: Int {
        blockPayloads.reduce(0) { $0 + $1.count } + 4 * (embedding.count + finalNorm.count + (head?.count ?? 0))
    }

    /// The whole of a sharded payload, gathered from every rank (or the payload itself).
    func whole(_ piece: [UInt8]) throws -> [UInt8] {
        guard isSharded else { return piece }
        return concatenated(try communicator.allgatherv(piece))
    }

    /// The whole of a sharded float tensor, gathered from every rank (or the tensor itself).
    func whole(_ piece: [Float]) throws -> [Float] {
        guard isSharded else { return piece }
        return concatenated(try communicator.allgatherv(piece))
    }

    public func embeddingWeight() throws -> Tensor {
        Tensor(shape: [config.vocabSize, config.hiddenSize], scalars: try whole(embedding))
    }

    public func finalNormWeight() throws -> Tensor {
        Tensor(shape: [config.hiddenSize], scalars: try whole(finalNorm))
    }

    public func outputHeadWeight() throws -> Tensor {
        Tensor(shape: [config.vocabSize, config.hiddenSize], scalars: try whole(head ?? embedding))
    }

    public func blockWeights(_ index: Int, pass: TrainingPass) throws -> LlamaBlockWeights {
        let payload = try whole(blockPayloads[index])
        precondition(payload.count == blockPayloadSizes[index], "block \(index): gathered \(payload.count) of \(blockPayloadSizes[index]) bytes")
        return try decoder.blockWeights(fromPayload: payload, index: index)
    }
}

/// ZeRO-3's trainable parameters: this rank keeps only its range of the flat index, and each
/// block's adapter values are all-gathered from the ranks that hold pieces of that block's
/// range, once for the forward and once for the backward.
public struct ShardedAdapterSource: AdapterParameterSource {
    public let layout: TrainableParameterLayout
    public let partition: ZeROPartition
    /// This rank's values: `partition.range(rank)` of the flat index.
    public let shard: [Float]
    let communicator: any Communicator

    public init(layout: TrainableParameterLayout, partition: ZeROPartition, shard: [Float], communicator: any Communicator) {
        precondition(shard.count == partition.range(communicator.rank).count, "shard of \(shard.count) for range \(partition.range(communicator.rank))")
        self.layout = layout
        self.partition = partition
        self.shard = shard
        self.communicator = communicator
    }

    public func adapterValues(block: Int, pass: TrainingPass) throws -> [Float] {
        let window = layout.blockRange(block)
        let mine = partition.pieces(of: window)[communicator.rank]
        let start = partition.range(communicator.rank).lowerBound
        let piece = mine.isEmpty ? [] : Array(shard[(mine.lowerBound - start)..<(mine.upperBound - start)])
        return concatenated(try communicator.allgatherv(piece))
    }
}

/// The pieces end to end. Concrete element types on purpose: a generic `flatMap` called
/// through the `any Communicator` path runs unspecialized, element by element, and made
/// ZeRO-3's per-block gathers cost more than the block's compute.
func concatenated(_ pieces: [[UInt8]]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(pieces.reduce(0) { $0 + $1.count })
    for p in pieces { out.append(contentsOf: p) }
    return out
}

/// The pieces end to end (see the `[UInt8]` overload for why it is not generic).
func concatenated(_ pieces: [[Float]]) -> [Float] {
    var out: [Float] = []
    out.reserveCapacity(pieces.reduce(0) { $0 + $1.count })
    for p in pieces { out.append(contentsOf: p) }
    return out
}
