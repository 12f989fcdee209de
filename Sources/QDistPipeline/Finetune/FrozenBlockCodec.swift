import Foundation
import QDistIO
import QDistModel
import QDistTensor

/// How the frozen weights of one decoder block travel between ranks and sit in memory: as one
/// opaque byte payload per block, turned back into `LlamaBlockWeights` when the training graph
/// needs the block.
///
/// Why bytes: ZeRO-3 shards each block's payload across ranks and all-gathers it before the
/// block's forward and again before its backward. Moving the stored form (fp32 today; NF4 codes
/// with double-quantized absmax once the NF4 base lands) keeps the gather as small as the
/// storage, and the engine never needs to know the format: an NF4 codec conforms by offering
/// `blockPayload(_:)` and a decoder that rebuilds (dequantizes) a block from those bytes.
///
/// The codec is asked for payloads once, at load, and then let go (with whatever it holds: a
/// memory-mapped checkpoint, a quantized copy of the whole base); only its `decoder` stays, so
/// a ZeRO-3 rank really keeps just its 1/P of the base.
public protocol FrozenBlockCodec {
    /// A short name for reports ("fp32", "nf4").
    var formatName: String { get }
    /// The stored bytes of block `index`, read from the model (called once per block at load).
    func blockPayload(_ index: Int) throws -> [UInt8]
    /// What turns payloads back into blocks for the rest of the run; it must not hold the source.
    var decoder: any FrozenBlockDecoder { get }
}

/// Rebuilds a block's weights from a payload its codec produced (dequantizing, for NF4).
public protocol FrozenBlockDecoder: Sendable {
    func blockWeights(fromPayload payload: [UInt8], index: Int) throws -> LlamaBlockWeights
}

/// The fp32 frozen base (until the NF4 base lands): a block's payload is its tensors' Float32
/// bytes end to end in a fixed order (input norm, q, k, v, o with their biases, post-attention
/// norm, gate, up, down), shapes implied by the configuration.
public struct Float32BlockCodec: FrozenBlockCodec {
    public let config: ModelConfiguration
    let source: any WeightSource

    public init(config: ModelConfiguration, source: any WeightSource) {
        self.config = config
        self.source = source
    }

    public var formatName: String { "fp32" }
    public var decoder: any FrozenBlockDecoder { Float32BlockDecoder(config: config) }

    public func blockPayload(_ index: Int) throws -> [UInt8] {
        let w = try LlamaBlockWeights.load(block: index, from: source, config: config)
        var floats: [Float] = []
        floats.reserveCapacity(Float32BlockDecoder.elementCount(config))
        for t in Float32BlockDecoder.tensors(of: w) { floats += t.scalars }
        return floats.withUnsafeBytes { Array($0) }
    }
}

/// Reads `Float32BlockCodec` payloads back into blocks.
public struct Float32BlockDecoder: FrozenBlockDecoder {
    public let config: ModelConfiguration

    public init(config: ModelConfiguration) { self.config = config }

    public func blockWeights(fromPayload payload: [UInt8], index: Int) throws -> LlamaBlockWeights {
        let expected = 4 * Self.elementCount(config)
        guard payload.count == expected else {
            throw ModelLoadError("block \(index): frozen payload of \(payload.count) bytes, fp32 block needs \(expected)")
        }
        var cursor = 0
        func next(_ shape: [Int]) -> Tensor {
            let n = shape.reduce(1, *)
            var scalars = [Float](repeating: 0, count: n)
            scalars.withUnsafeMutableBytes { dst in
                payload.withUnsafeBytes { src in
                    dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[cursor..<cursor + 4 * n]))
                }
            }
            cursor += 4 * n
            return Tensor(shape: shape, scalars: scalars)
        }
        let shapes = Self.shapes(config)
        func linear(_ s: (weight: [Int], bias: [Int]?)) -> LinearLayer {
            let w = next(s.weight)
            return LinearLayer(weight: w, bias: s.bias.map(next))
        }
        return LlamaBlockWeights(inputNorm: next(shapes.norm), q: linear(shapes.q), k: linear(shapes.k), v: linear(shapes.v),
                                 o: linear(shapes.o), postAttentionNorm: next(shapes.norm), gate: linear(shapes.gate),
                                 up: linear(shapes.up), down: linear(shapes.down))
    }

    /// The block's tensors in payload order.
    static func tensors(of w: LlamaBlockWeights) -> [Tensor] {
        func linear(_ l: LinearLayer) -> [Tensor] { [l.weight] + (l.bias.map { [$0] } ?? []) }
        return [w.inputNorm] + linear(w.q) + linear(w.k) + linear(w.v) + linear(w.o) + [w.postAttentionNorm]
            + linear(w.gate) + linear(w.up) + linear(w.down)
    }

    static func shapes(_ c: ModelConfiguration) -> (norm: [Int], q: (weight: [Int], bias: [Int]?), k: (weight: [Int], bias: [Int]?),
                                                     v: (weight: [Int], bias: [Int]?), o: (weight: [Int], bias: [Int]?),
                                                     gate: (weight: [Int], bias: [Int]?), up: (weight: [Int], bias: [Int]?),
                                                     down: (weight: [Int], bias: [Int]?)) {
        let h = c.hiddenSize, q = c.numAttentionHeads * c.headDim, kv = c.numKeyValueHeads * c.headDim, i = c.intermediateSize
        func l(_ out: Int, _ inF: Int, _ bias: Bool) -> (weight: [Int], bias: [Int]?) { ([out, inF], bias ? [out] : nil) }
        return ([h], l(q, h, c.hasQKVBias), l(kv, h, c.hasQKVBias), l(kv, h, c.hasQKVBias), l(h, q, c.hasOutputProjectionBias),
                l(i, h, c.mlpBias), l(i, h, c.mlpBias), l(h, i, c.mlpBias))
    }

    /// Floats in one block's payload.
    static func elementCount(_ c: ModelConfiguration) -> Int {
        let s = shapes(c)
        return [s.q, s.k, s.v, s.o, s.gate, s.up, s.down].reduce(2 * s.norm[0]) {
            $0 + $1.weight.reduce(1, *) + ($1.bias?[0] ?? 0)
        }
    }
}
