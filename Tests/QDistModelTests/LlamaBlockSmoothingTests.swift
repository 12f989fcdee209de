import QDistIO
import QDistModel
import QDistTensor
import XCTest

/// Folding smoothing scales into a block (`LlamaBlockWeights.smoothed`) leaves the block's
/// function unchanged in float, for every mapping, with q/k/v biases (qwen2) and without GQA
/// (so v → o applies); and v → o is refused under GQA, as llm-compressor skips it.
final class LlamaBlockSmoothingTests: XCTestCase {
    func block(arch: String, kvHeads: Int) -> (LlamaBlock, ModelConfiguration) {
        let config = RandomModelWeights.configuration(arch: arch, layers: 1, hidden: 32, heads: 4, kvHeads: kvHeads, intermediate: 48)
        let source = InMemoryWeights(RandomModelWeights.make(for: config, seed: 5))
        let weights = try! LlamaBlockWeights.load(block: 0, from: source, config: config)
        return (LlamaBlock(index: 0, weights: weights, config: config, rotary: LlamaModel.rotary(for: config)), config)
    }

    func output(_ block: LlamaBlock, _ x: Tensor) -> Tensor {
        var cache: KVCache? = nil
        var none: (any BlockInputObserver)? = nil
        return block.forward(x, cache: &cache, observer: &none)
    }

    func testEveryMappingIsFunctionPreservingInFloat() throws {
        for arch in ["llama", "qwen2"] {
            let (block, config) = self.block(arch: arch, kvHeads: 4)
            var rng = SeededGenerator(seed: 9)
            let x = Tensor(shape: [10, config.hiddenSize], scalars: (0..<(10 * config.hiddenSize)).map { _ in rng.normal() })
            let reference = output(block, x)
            var smoothed = block
            for mapping in SmoothingMapping.allCases {
                XCTAssertTrue(mapping.applies(to: block.weights), "\(mapping) applies without GQA")
                let n = mapping.balance(block.weights)[0].inFeatures
                // Scales over two orders of magnitude, as AWQ and SmoothQuant produce.
                let s = (0..<n).map { _ in Float(exp(Double(rng.normal()) * 1.5)) }
                smoothed.weights = smoothed.weights.smoothed(mapping, scales: s)
                XCTAssertNotEqual(smoothed.weights.linears.values.map(\.weight.scalars), block.weights.linears.values.map(\.weight.scalars))
                let y = output(smoothed, x)
                var worst: Float = 0
                for i in 0..<y.count { worst = max(worst, abs(y.scalars[i] - reference.scalars[i]) / max(1, abs(reference.scalars[i]))) }
                XCTAssertLessThan(worst, 1e-5, "\(arch) after \(mapping): block output changed")
            }
        }
    }

    func testValueToOutputIsSkippedUnderGroupedQueryAttention() {
        let (block, _) = self.block(arch: "llama", kvHeads: 2)
        XCTAssertFalse(SmoothingMapping.valueToOutput.applies(to: block.weights))
        for m in SmoothingMapping.allCases where m != .valueToOutput { XCTAssertTrue(m.applies(to: block.weights)) }
    }
}
