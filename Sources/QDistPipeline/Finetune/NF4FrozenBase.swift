import Foundation
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor

/// The frozen base of a QLoRA fine-tune: every decoder block's linear weights held in NF4 with
/// double-quantized absmax (`NF4FrozenBlock`), the embedding, final norm and output head in
/// float32, as QLoRA (`BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
/// bnb_4bit_use_double_quant=True)`) keeps them.
///
/// As a `FrozenWeightProvider` it dequantizes block i each time the training graph asks for it
/// and caches nothing, so at most the block the graph is working on exists in float32; a
/// 135M-parameter model's blocks take about an eighth of their float32 size. The 4-bit blocks
/// are deterministic functions of the float32 weights, so every rank that builds the base from
/// the same checkpoint holds identical bytes; ZeRO-3 can instead keep a shard of each
/// `blockPayload(_:)` and rebuild a block with `NF4FrozenBlock(payload:)`.
public struct NF4FrozenBase: FrozenWeightProvider, Sendable {
    public let config: ModelConfiguration
    /// (vocab, hidden), float32.
    public let embedding: Tensor
    /// (hidden), float32.
    public let finalNorm: Tensor
    /// (vocab, hidden), float32; shares the embedding's storage when tied.
    public let outputHead: Tensor
    /// Whether the head is the embedding (counted once in `memory`).
    public let tiedHead: Bool
    public private(set) var blocks: [NF4FrozenBlock]

    public init(config: ModelConfiguration, embedding: Tensor, finalNorm: Tensor, outputHead: Tensor, tiedHead: Bool,
                blocks: [NF4FrozenBlock]) {
        self.config = config
        self.embedding = embedding
        self.finalNorm = finalNorm
        self.outputHead = outputHead
        self.tiedHead = tiedHead
        self.blocks = blocks
    }

    /// Reads `source` one decoder block at a time (every name and shape checked against
    /// `config`) and quantizes each block's linears before reading the next, so peak memory is
    /// the 4-bit base plus one float32 block. `progress` hears each finished block index.
    public static func build(from source: any WeightSource, config: ModelConfiguration, type: FourBitQuantType = .nf4,
                             progress: (Int) -> Void = { _ in }) throws -> NF4FrozenBase {
        let embedding = try source.tensor("model.embed_tokens.weight", expectedShape: [config.vocabSize, config.hiddenSize])
        var blocks: [NF4FrozenBlock] = []
        blocks.reserveCapacity(config.numHiddenLayers)
        for i in 0..<config.numHiddenLayers {
            let weights = try LlamaBlockWeights.load(block: i, from: source, config: config)
            blocks.append(NF4FrozenBlock(quantizing: weights, type: type))
            progress(i)
        }
        let tied = config.tieWordEmbeddings || !source.contains("lm_head.weight")
        let head = tied ? embedding : try source.tensor("lm_head.weight", expectedShape: [config.vocabSize, config.hiddenSize])
        let norm = try source.tensor("model.norm.weight", expectedShape: [config.hiddenSize])
        return NF4FrozenBase(config: config, embedding: embedding, finalNorm: norm, outputHead: head, tiedHead: tied, blocks: blocks)
    }

    // MARK: FrozenWeightProvider

    public func embeddingWeight() throws -> Tensor { embedding }
    public func finalNormWeight() throws -> Tensor { finalNorm }
    public func outputHeadWeight() throws -> Tensor { outputHead }

    /// Block `index` dequantized to float32 — a fresh copy on every call (forward and backward
    /// alike), released when the caller drops it.
    public func blockWeights(_ index: Int, pass: TrainingPass) throws -> LlamaBlockWeights {
        guard blocks.indices.contains(index) else {
            throw ModelLoadError("NF4 base: block \(index) requested, the model has \(blocks.count)")
        }
        return try blocks[index].dequantized(config: config)
    }

    /// The whole model in float32 with every block dequantized — the weights the training graph
    /// sees, as an ordinary `LlamaModel` for eval (equal to loading through `NF4WeightSource`).
    public func dequantizedModel() throws -> LlamaModel {
        let rotary = LlamaModel.rotary(for: config)
        let layers = try blocks.indices.map { i in
            LlamaBlock(index: i, weights: try blocks[i].dequantized(config: config), config: config, rotary: rotary)
        }
        return LlamaModel(config: config, embedding: embedding, blocks: layers, finalNorm: finalNorm, outputHead: outputHead)
    }

    // MARK: Payloads for ZeRO-3

    /// Block `index` as one flat byte string (see `NF4FrozenBlock.payload()`); decoding it with
    /// `NF4FrozenBlock(payload:)` gives back an equal block, whose dequantized weights are
    /// bit-identical.
    public func blockPayload(_ index: Int) -> [UInt8] { blocks[index].payload() }

    /// Replaces block `index` with one decoded from `payload` (e.g. after an all-gather).
    public mutating func replaceBlock(_ index: Int, payload: [UInt8]) throws {
        blocks[index] = try NF4FrozenBlock(payload: payload, subject: "NF4 base block \(index) payload")
    }

    // MARK: Memory

    /// What the base holds, split the way a run reports it.
    public struct Memory: Sendable, Equatable {
        /// 4-bit codes plus absmax storage of every block linear.
        public var fourBitBytes: Int
        /// Float32 norms, biases, embedding and (untied) head.
        public var float32Bytes: Int
        /// The same weights all in float32 (embedding counted once when tied).
        public var float32EquivalentBytes: Int
        /// Parameters stored in 4 bits.
        public var fourBitParameters: Int
        /// Everything held.
        public var totalBytes: Int { fourBitBytes + float32Bytes }
        /// Bits per 4-bit parameter, absmax overhead included (≈4.127 for NF4 + double quant).
        public var bitsPerFourBitParameter: Double { fourBitParameters == 0 ? 0 : 8 * Double(fourBitBytes) / Double(fourBitParameters) }
    }

    /// Bytes held, for a run to print.
    public var memory: Memory {
        var fourBit = 0, float32 = 0, params = 0, equivalent = 0
        for block in blocks {
            let q = block.weights.values.reduce(0) { $0 + $1.storageBytes }
            fourBit += q
            float32 += block.bytesHeld - q
            params += block.weights.values.reduce(0) { $0 + $1.count }
            equivalent += block.float32Bytes
        }
        let dense = 4 * (embedding.count + finalNorm.count + (tiedHead ? 0 : outputHead.count))
        return Memory(fourBitBytes: fourBit, float32Bytes: float32 + dense, float32EquivalentBytes: equivalent + dense,
                      fourBitParameters: params)
    }
}
