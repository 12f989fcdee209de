import QDistTensor
import XCTest
@testable import QDistModel

/// Pruned linears (2:4, or at least half zeros) switch to a compressed kernel for decode-sized
/// inputs only, and a pruned model decodes the same logits through it as through the dense sgemm.
final class LinearLayerSparseKernelTests: XCTestCase {
    /// `weights` with every decoder linear magnitude-pruned to 2:4 (two largest |w| of each four kept).
    static func pruned(_ weights: [String: Tensor]) -> [String: Tensor] {
        var out = weights
        for (name, w) in weights where name.hasPrefix("model.layers.") && name.hasSuffix("_proj.weight") {
            var s = w.scalars
            for g in 0..<(s.count / 4) {
                let order = (0..<4).sorted { abs(s[4 * g + $0]) > abs(s[4 * g + $1]) }
                for j in order[2...] { s[4 * g + j] = 0 }
            }
            out[name] = Tensor(shape: w.shape, scalars: s)
        }
        return out
    }

    func testPrunedModelDecodesTheSameLogitsThroughTheSparseKernel() throws {
        // qwen2 has q/k/v biases: the sparse product must add them too.
        let config = RandomModelWeights.configuration(arch: "qwen2", layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 96)
        let dense = try LlamaModel.load(config: config, from: InMemoryWeights(Self.pruned(RandomModelWeights.make(for: config, seed: 3))))
        var sparse = dense
        XCTAssertEqual(sparse.useSparseKernels(forInputRows: 9), [:], "9-row forwards are faster on sgemm: no copy kept")
        XCTAssertNil(sparse.blocks[0].weights.q.sparseWeight)
        XCTAssertEqual(sparse.useSparseKernels(), ["2:4": 14], "7 linears × 2 blocks, 2:4 preferred over unstructured")
        XCTAssertNotNil(sparse.blocks[1].weights.down.sparseWeight)
        let tokens = [5, 17, 42, 8, 91, 30, 2, 64, 11, 77, 40, 3]
        // A 10-token prefill takes the dense path in both: the same bits.
        var denseCache: KVCache? = dense.makeCache(), sparseCache: KVCache? = sparse.makeCache()
        let prefill = Array(tokens[0..<10])
        XCTAssertEqual(sparse.logits(prefill, cache: &sparseCache), dense.logits(prefill, cache: &denseCache))
        // Decode steps of one token go through the kernel: equal to rounding.
        for t in tokens[10...] {
            let a = sparse.logits([t], cache: &sparseCache), b = dense.logits([t], cache: &denseCache)
            for i in 0..<a.count { XCTAssertEqual(a.scalars[i], b.scalars[i], accuracy: 1e-4 * max(1, abs(b.scalars[i]))) }
        }
        // Short windows (≤ maxTokens) use the kernel too.
        let short = Array(tokens[0..<SemiStructuredSparseMatrix.maxTokens])
        let a = sparse.logits(short), b = dense.logits(short)
        XCTAssertNotEqual(a, b, "another summation order: the kernel really ran")
        for i in 0..<a.count { XCTAssertEqual(a.scalars[i], b.scalars[i], accuracy: 1e-4 * max(1, abs(b.scalars[i]))) }
    }

    func testUnstructuredHalfZeroLinearsDecodeThroughTheirKernelAndLongerInputsStayDense() throws {
        let config = RandomModelWeights.configuration(layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 96)
        var weights = RandomModelWeights.make(for: config, seed: 6)
        var rng = SeededGenerator(seed: 2)
        for (name, w) in weights where name.hasPrefix("model.layers.") && name.hasSuffix("_proj.weight") {
            // 60% zeros anywhere: never 2:4 at this size.
            weights[name] = Tensor(shape: w.shape, scalars: w.scalars.map { rng.nextUniform() < 0.6 ? 0 : $0 })
        }
        let dense = try LlamaModel.load(config: config, from: InMemoryWeights(weights))
        var sparse = dense
        XCTAssertEqual(sparse.useSparseKernels(forInputRows: 2), [:], "the unstructured kernel serves one token only")
        XCTAssertEqual(sparse.useSparseKernels(), ["unstructured": 14])
        var denseCache: KVCache? = dense.makeCache(), sparseCache: KVCache? = sparse.makeCache()
        // Two tokens are past the unstructured kernel's limit of one: the dense path, same bits.
        XCTAssertEqual(sparse.logits([4, 9], cache: &sparseCache), dense.logits([4, 9], cache: &denseCache))
        for t in [17, 3, 88] {
            let a = sparse.logits([t], cache: &sparseCache), b = dense.logits([t], cache: &denseCache)
            XCTAssertNotEqual(a, b, "another summation order: the kernel really ran")
            for i in 0..<a.count { XCTAssertEqual(a.scalars[i], b.scalars[i], accuracy: 1e-4 * max(1, abs(b.scalars[i]))) }
        }
    }

    func testUnprunedModelKeepsEveryLinearDense() throws {
        let config = RandomModelWeights.configuration(layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 64)
        var model = try LlamaModel.load(config: config, from: InMemoryWeights(RandomModelWeights.make(for: config, seed: 4)))
        XCTAssertEqual(model.useSparseKernels(), [:])
        XCTAssertNil(model.blocks[0].weights.q.sparseWeight)
    }

    func testChangingTheWeightDropsTheCompressedCopy() throws {
        let w = Tensor(shape: [2, 8], scalars: [1, 0, 0, 2, 0, 3, 4, 0, 0, 0, 5, 6, 7, 0, 8, 0])
        var layer = LinearLayer(weight: w)
        XCTAssertEqual(layer.useSparseKernel()?.kindName, "2:4")
        let x = Tensor(shape: [1, 8], scalars: [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(layer(x).scalars, [55, 130] as [Float])  // 1·1 + 2·4 + 3·6 + 4·7, 5·3 + 6·4 + 7·5 + 8·7: exact
        layer.weight.scalars[1] = 9  // no longer 2:4, and the copy would be stale
        XCTAssertNil(layer.sparseWeight)
        XCTAssertEqual(layer(x).scalars, [73, 130] as [Float])  // + 9·2 through the dense path
    }
}
