import Foundation
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor
import XCTest
@testable import QDistPipeline

/// The QLoRA frozen base: NF4 blocks built from a weight source, dequantized on request,
/// serialized for ZeRO-3, and identical to what `--nf4` evaluates.
final class NF4FrozenBaseTests: XCTestCase {
    func model(_ arch: String = "llama", hidden: Int = 64, tied: Bool = false, seed: UInt64 = 1) -> (ModelConfiguration, InMemoryWeights) {
        let config = RandomModelWeights.configuration(arch: arch, layers: 2, hidden: hidden, heads: 4, kvHeads: 2, vocab: 256, tied: tied)
        return (config, InMemoryWeights(RandomModelWeights.make(for: config, seed: seed)))
    }

    func testBlocksHoldDoubleQuantizedNF4AndDequantizeToTheLinearsQuantizedAlone() throws {
        let (config, weights) = model("qwen2")  // q/k/v biases pass through in float32
        let base = try NF4FrozenBase.build(from: weights, config: config)
        XCTAssertEqual(base.blocks.count, 2)
        for i in 0..<2 {
            let original = try LlamaBlockWeights.load(block: i, from: weights, config: config)
            let forward = try base.blockWeights(i, pass: .forward), backward = try base.blockWeights(i, pass: .backward)
            for (name, layer) in forward.linears {
                let stored = try XCTUnwrap(base.blocks[i].weights[name])
                XCTAssertEqual(stored.quantType, .nf4)
                guard case .doubleQuantized = stored.absmax else { return XCTFail("\(name): absmax not double-quantized") }
                XCTAssertEqual(layer.weight, FourBitTensor(quantizing: original.linears[name]!.weight).dequantized(), "block \(i) \(name)")
                XCTAssertNotEqual(layer.weight, original.linears[name]!.weight, "block \(i) \(name) was rounded")
                XCTAssertEqual(layer.bias, original.linears[name]!.bias, "block \(i) \(name) bias")
                XCTAssertEqual(backward.linears[name]!.weight, layer.weight, "both passes see the same weights")
            }
            XCTAssertNotNil(forward.q.bias)
            XCTAssertEqual(forward.inputNorm, original.inputNorm)
            XCTAssertEqual(forward.postAttentionNorm, original.postAttentionNorm)
        }
        XCTAssertEqual(try base.embeddingWeight(), try weights.tensor("model.embed_tokens.weight"))
        XCTAssertEqual(try base.outputHeadWeight(), try weights.tensor("lm_head.weight"))
        XCTAssertEqual(try base.finalNormWeight(), try weights.tensor("model.norm.weight"))
        XCTAssertThrowsError(try base.blockWeights(2, pass: .forward)) { error in
            XCTAssertEqual("\(error)", "NF4 base: block 2 requested, the model has 2")
        }
    }

    func testMemoryCountsFourBitLinearsAndFloat32Rest() throws {
        let (config, weights) = model(hidden: 128, tied: true)
        let base = try NF4FrozenBase.build(from: weights, config: config)
        let m = base.memory
        let linearParams = (0..<2).reduce(0) { acc, i in acc + base.blocks[i].weights.values.reduce(0) { $0 + $1.count } }
        XCTAssertEqual(m.fourBitParameters, linearParams)
        XCTAssertEqual(m.bitsPerFourBitParameter, 4.127, accuracy: 0.01, "4 + 8/64 + second level + offsets")
        let dense = 4 * (config.vocabSize * config.hiddenSize + config.hiddenSize + 2 * 2 * config.hiddenSize)
        XCTAssertEqual(m.float32Bytes, dense, "tied head counted once; norms in float32")
        XCTAssertEqual(m.float32EquivalentBytes, dense + 4 * linearParams)
        XCTAssertEqual(m.totalBytes, m.fourBitBytes + m.float32Bytes)
    }

    func testBlockPayloadRoundTripsExactly() throws {
        let (config, weights) = model("qwen2")
        var base = try NF4FrozenBase.build(from: weights, config: config)
        for i in 0..<2 {
            let payload = base.blockPayload(i)
            XCTAssertLessThan(payload.count, base.blocks[i].float32Bytes / 5, "a payload is ~1/7 of the float32 block")
            let decoded = try NF4FrozenBlock(payload: payload)
            XCTAssertEqual(decoded, base.blocks[i])
            XCTAssertEqual(try decoded.dequantized(config: config).q.weight, try base.blockWeights(i, pass: .forward).q.weight)
        }
        let before = base.blocks
        try base.replaceBlock(0, payload: base.blockPayload(1))
        XCTAssertEqual(base.blocks[0], before[1])
        XCTAssertThrowsError(try base.replaceBlock(1, payload: Array(base.blockPayload(1).dropLast()))) { error in
            XCTAssertTrue("\(error)".hasPrefix("NF4 base block 1 payload: "), "\(error)")
        }
    }

    func testPayloadOfAnotherModelFailsTheShapeCheck() throws {
        let (config, _) = model(hidden: 64)
        let (otherConfig, otherWeights) = model(hidden: 32)
        let other = try NF4FrozenBase.build(from: otherWeights, config: otherConfig)
        let foreign = try NF4FrozenBlock(payload: other.blockPayload(0))
        XCTAssertThrowsError(try foreign.dequantized(config: config)) { error in
            XCTAssertTrue("\(error)".contains("has shape"), "\(error)")
        }
    }

    /// The weight source behind `--nf4` hands the decoder the very floats the training graph
    /// gets from the frozen base, so the two give the same loss bit for bit.
    func testNF4WeightSourceIsExactlyWhatTrainingSees() throws {
        let (config, weights) = model()
        let base = try NF4FrozenBase.build(from: weights, config: config)
        let source = NF4WeightSource(wrapping: weights)
        XCTAssertEqual(try source.tensor("model.layers.1.mlp.down_proj.weight"), try base.blockWeights(1, pass: .forward).down.weight)
        XCTAssertEqual(try source.tensor("model.embed_tokens.weight"), try weights.tensor("model.embed_tokens.weight"))
        XCTAssertEqual(try source.tensor("model.layers.0.input_layernorm.weight"), try weights.tensor("model.layers.0.input_layernorm.weight"))
        XCTAssertTrue(NF4WeightSource.isBlockLinearWeight("model.layers.12.self_attn.k_proj.weight"))
        XCTAssertFalse(NF4WeightSource.isBlockLinearWeight("model.layers.12.self_attn.k_proj.bias"))
        XCTAssertFalse(NF4WeightSource.isBlockLinearWeight("lm_head.weight"))

        let lora = LoRAConfig(rank: 4, alpha: 8, targets: [.q, .v])
        let graph = LlamaTrainingGraph(config: config, lora: lora)
        let adapters = TrainableParameters.initialized(config: config, lora: lora, seed: 3)
        let batch = [TrainingSequence(tokens: Array(0..<40).map { ($0 * 37) % 256 })]
        let viaBase = try graph.loss(batch, frozen: base, adapters: adapters)
        let viaSource = try graph.loss(batch, frozen: try LlamaModel.load(config: config, from: source), adapters: adapters)
        let viaModel = try graph.loss(batch, frozen: try base.dequantizedModel(), adapters: adapters)
        XCTAssertEqual(viaModel.sum, viaBase.sum, "dequantizedModel() is the same model")
        let fp32 = try graph.loss(batch, frozen: try LlamaModel.load(config: config, from: weights), adapters: adapters)
        XCTAssertEqual(viaBase.sum, viaSource.sum, "bit-identical")
        XCTAssertNotEqual(viaBase.sum, fp32.sum)
        XCTAssertEqual(viaBase.mean, fp32.mean, accuracy: 0.05 * fp32.mean, "NF4 moves a random model's loss only a little")
    }
}
