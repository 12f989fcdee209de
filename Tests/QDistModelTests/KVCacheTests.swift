import QDistTensor
import XCTest
@testable import QDistModel

/// Cached decoding must reproduce the full forward pass token by token.
final class KVCacheTests: XCTestCase {
    func testIncrementalDecodingEqualsFullForward() throws {
        let config = RandomModelWeights.configuration(arch: "llama", layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 64)
        let model = try LlamaModel.load(config: config, from: InMemoryWeights(RandomModelWeights.make(for: config, seed: 9)))
        let tokens = [3, 17, 42, 5, 9, 60, 1, 33]
        let full = model.logits(tokens)
        var cache: KVCache? = model.makeCache()
        let prefix = model.logits(Array(tokens[0..<5]), cache: &cache)
        XCTAssertEqual(cache?.length, 5)
        var rows = [prefix]
        for t in tokens[5...] { rows.append(model.logits([t], cache: &cache)) }
        let stepped = Tensor.concatenateRows(rows)
        XCTAssertEqual(stepped.shape, full.shape)
        for i in 0..<full.count { XCTAssertEqual(stepped.scalars[i], full.scalars[i], accuracy: 1e-4) }
        cache?.reset()
        XCTAssertEqual(cache?.length, 0)
    }

    func testCachedPrefixLongerThanOneAttentionChunkThenStepsEqualsFullForward() throws {
        let config = RandomModelWeights.configuration(arch: "llama", layers: 1, hidden: 32, heads: 4, kvHeads: 1, vocab: 50)
        let model = try LlamaModel.load(config: config, from: InMemoryWeights(RandomModelWeights.make(for: config, seed: 4)))
        var rng = SeededGenerator(seed: 8)
        let tokens = (0..<270).map { _ in Int(rng.next() % 50) }
        let full = model.logits(tokens)
        var cache: KVCache? = model.makeCache()
        var rows = [model.logits(Array(tokens[0..<140]), cache: &cache)]
        rows.append(model.logits(Array(tokens[140..<268]), cache: &cache))  // a 128-row chunk at offset 140
        for t in tokens[268...] { rows.append(model.logits([t], cache: &cache)) }
        let stepped = Tensor.concatenateRows(rows)
        for i in 0..<full.count { XCTAssertEqual(stepped.scalars[i], full.scalars[i], accuracy: 1e-4) }
    }

    func testNegativeLogLikelihoodCountsPredictedTokens() throws {
        let config = RandomModelWeights.configuration(layers: 1, hidden: 16, heads: 2, kvHeads: 1, vocab: 32)
        let model = try LlamaModel.load(config: config, from: InMemoryWeights(RandomModelWeights.make(for: config, seed: 5)))
        let tokens = [1, 2, 3, 4, 5, 6]
        let nll = model.negativeLogLikelihood(tokens)
        XCTAssertEqual(nll.predicted, 5)
        // Same sum from explicit log-softmax rows.
        let lp = model.logits(Array(tokens.dropLast())).logSoftmaxRows()
        let expected = (0..<5).reduce(0.0) { $0 - Double(lp[$1, tokens[$1 + 1]]) }
        XCTAssertEqual(nll.sum, expected, accuracy: 1e-4)
    }

    func testMissingOrMisshapenTensorIsANamedError() throws {
        let config = RandomModelWeights.configuration(layers: 1, hidden: 16, heads: 2, kvHeads: 1, vocab: 32)
        var weights = RandomModelWeights.make(for: config, seed: 1)
        weights["model.layers.0.mlp.up_proj.weight"] = nil
        XCTAssertThrowsError(try LlamaModel.load(config: config, from: InMemoryWeights(weights))) {
            XCTAssertTrue("\($0)".contains("model.layers.0.mlp.up_proj.weight"), "\($0)")
        }
        weights = RandomModelWeights.make(for: config, seed: 1)
        weights["model.norm.weight"] = Tensor.zeros([15])
        XCTAssertThrowsError(try LlamaModel.load(config: config, from: InMemoryWeights(weights))) {
            XCTAssertTrue("\($0)".contains("model.norm.weight") && "\($0)".contains("[16]"), "\($0)")
        }
    }
}
