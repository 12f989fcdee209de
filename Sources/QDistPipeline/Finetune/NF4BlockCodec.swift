import QDistIO
import QDistModel
import QDistQuant

/// QLoRA's frozen base for the data-parallel trainer: each decoder block's linears quantized to
/// NF4 (or FP4) in bitsandbytes' blocks of 64 with double-quantized absmax, norms and biases in
/// fp32, as one `NF4FrozenBlock` payload. ZeRO-3 shards and all-gathers these payloads, so a
/// gather moves ~4.1 bits per weight instead of 32; the decoder dequantizes a block each time
/// the training graph asks for it.
public struct FourBitBlockCodec: FrozenBlockCodec {
    public let config: ModelConfiguration
    public let type: FourBitQuantType
    let source: any WeightSource

    public init(config: ModelConfiguration, source: any WeightSource, type: FourBitQuantType = .nf4) {
        self.config = config
        self.source = source
        self.type = type
    }

    public var formatName: String { type == .nf4 ? "nf4" : "fp4" }
    public var decoder: any FrozenBlockDecoder { FourBitBlockDecoder(config: config) }

    public func blockPayload(_ index: Int) throws -> [UInt8] {
        let weights = try LlamaBlockWeights.load(block: index, from: source, config: config)
        return NF4FrozenBlock(quantizing: weights, type: type).payload()
    }
}

/// Dequantizes `FourBitBlockCodec` payloads back into blocks.
public struct FourBitBlockDecoder: FrozenBlockDecoder {
    public let config: ModelConfiguration

    public func blockWeights(fromPayload payload: [UInt8], index: Int) throws -> LlamaBlockWeights {
        try NF4FrozenBlock(payload: payload, subject: "frozen base block \(index)").dequantized(config: config)
    }
}
