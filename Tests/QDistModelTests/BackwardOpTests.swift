import Foundation
import QDistIO
import QDistTensor
import XCTest
@testable import QDistModel

/// Central differences of a float64 function at `x`, one coordinate at a time.
func centralDifferences(at x: [Double], step h: Double = 1e-5, _ f: ([Double]) -> Double) -> [Double] {
    var p = x
    return (0..<x.count).map { i in
        let saved = p[i]
        p[i] = saved + h
        let up = f(p)
        p[i] = saved - h
        let down = f(p)
        p[i] = saved
        return (up - down) / (2 * h)
    }
}

/// ‖g − reference‖ / ‖reference‖.
func relativeError(_ g: [Float], _ reference: [Double]) -> Double {
    precondition(g.count == reference.count, "\(g.count) vs \(reference.count)")
    var diff = 0.0, norm = 0.0
    for (a, b) in zip(g, reference) { diff += (Double(a) - b) * (Double(a) - b); norm += b * b }
    return (diff / max(norm, 1e-300)).squareRoot()
}

func randomTensor(_ shape: [Int], _ rng: inout SeededGenerator, scale: Float = 1, offset: Float = 0) -> Tensor {
    Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in offset + scale * rng.normal() })
}

/// Σ w ⊙ y: a scalar whose gradient with respect to y is w, so backward(dy: w) is its gradient.
func weightedSum(_ y: Matrix64, _ w: Tensor) -> Double {
    zip(y.values, w.scalars).reduce(0) { $0 + $1.0 * Double($1.1) }
}

/// Each backward op's input gradient against float64 central differences of an independent
/// forward, through L = Σ w ⊙ op(x) with random w.
final class BackwardOpTests: XCTestCase {
    let tolerance = 1e-4

    func testRMSNormInputAndWeightGradientsMatchFiniteDifferences() {
        var rng = SeededGenerator(seed: 1)
        let x = randomTensor([5, 16], &rng, scale: 2), weight = randomTensor([16], &rng, scale: 0.1, offset: 1)
        let w = randomTensor([5, 16], &rng)
        let (y, inverse) = RMSNorm.forward(x, weight: weight, epsilon: 1e-5)
        XCTAssertEqual(y, x.rmsNormalized(weight: weight, epsilon: 1e-5), "the training forward is the eval forward")
        let dx = RMSNorm.backward(x, weight: weight, inverseRMS: inverse, outputGradient: w)
        let weight64 = weight.scalars.map(Double.init)
        let fdX = centralDifferences(at: x.scalars.map(Double.init)) { v in
            weightedSum(Float64Ops.rmsNorm(Matrix64(rows: 5, columns: 16, values: v), weight: weight64, epsilon: 1e-5), w)
        }
        XCTAssertLessThanOrEqual(relativeError(dx.scalars, fdX), tolerance)
        let dWeight = RMSNorm.weightGradient(x, inverseRMS: inverse, outputGradient: w)
        let fdW = centralDifferences(at: weight64) { v in
            weightedSum(Float64Ops.rmsNorm(Matrix64(x), weight: v, epsilon: 1e-5), w)
        }
        XCTAssertLessThanOrEqual(relativeError(dWeight.scalars, fdW), tolerance)
    }

    func testRotaryBackwardIsTheInverseRotationAndMatchesFiniteDifferences() {
        var rng = SeededGenerator(seed: 2)
        let rotary = RotaryEmbedding(headDim: 8, theta: 10000)
        let segments = [0..<5, 5..<12]
        let x = randomTensor([12, 16], &rng), w = randomTensor([12, 16], &rng)
        var y = x
        rotary.apply(to: &y, heads: 2, segments: segments)
        var single = x.rows(5..<12)
        rotary.apply(to: &single, heads: 2, positionOffset: 0)
        XCTAssertEqual(y.rows(5..<12), single, "a packed segment rotates like a sequence of its own")
        var dx = w
        rotary.apply(to: &dx, heads: 2, segments: segments, inverse: true)
        let fd = centralDifferences(at: x.scalars.map(Double.init)) { v in
            weightedSum(Float64Ops.rope(Matrix64(rows: 12, columns: 16, values: v), heads: 2, headDim: 8, theta: 10000, segments: segments), w)
        }
        XCTAssertLessThanOrEqual(relativeError(dx.scalars, fd), tolerance)
        var back = y
        rotary.apply(to: &back, heads: 2, segments: segments, inverse: true)
        for (a, b) in zip(back.scalars, x.scalars) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    /// Query chunks of 128 rows (the default: one chunk per short sequence), and of 4 and 5
    /// rows, so that a 7- and a 12-row sequence each span several chunks.
    func testCausalGroupedAttentionGradientsMatchFiniteDifferencesForAnyQueryChunk() {
        var rng = SeededGenerator(seed: 3)
        let attention = LlamaAttention(heads: 4, kvHeads: 2, headDim: 8)
        let segments = [0..<5, 5..<12, 12..<24]
        let q = randomTensor([24, 32], &rng), k = randomTensor([24, 16], &rng), v = randomTensor([24, 16], &rng)
        let w = randomTensor([24, 32], &rng)
        let out = attention.forward(queries: q, keys: k, values: v, segments: segments)
        let eval = k.rows(12..<24).withUnsafeBufferPointer { pk in
            v.rows(12..<24).withUnsafeBufferPointer { pv in attention(queries: q.rows(12..<24), keys: pk, values: pv, positionOffset: 0) }
        }
        XCTAssertEqual(out.rows(12..<24), eval, "packed attention equals the eval attention on one sequence")
        func f(_ q64: [Double], _ k64: [Double], _ v64: [Double]) -> Double {
            weightedSum(Float64Ops.attention(q: Matrix64(rows: 24, columns: 32, values: q64), k: Matrix64(rows: 24, columns: 16, values: k64),
                                             v: Matrix64(rows: 24, columns: 16, values: v64), heads: 4, kvHeads: 2, headDim: 8,
                                             segments: segments), w)
        }
        let q64 = q.scalars.map(Double.init), k64 = k.scalars.map(Double.init), v64 = v.scalars.map(Double.init)
        let fdQ = centralDifferences(at: q64) { f($0, k64, v64) }
        let fdK = centralDifferences(at: k64) { f(q64, $0, v64) }
        let fdV = centralDifferences(at: v64) { f(q64, k64, $0) }
        for chunk in [LlamaAttention.queryChunk, 4, 5] {
            let chunked = attention.forward(queries: q, keys: k, values: v, segments: segments, queryChunk: chunk)
            for (a, b) in zip(chunked.scalars, out.scalars) { XCTAssertEqual(a, b, accuracy: 1e-5, "chunk \(chunk)") }
            let g = attention.backward(queries: q, keys: k, values: v, segments: segments, outputGradient: w, queryChunk: chunk)
            XCTAssertLessThanOrEqual(relativeError(g.queries.scalars, fdQ), tolerance, "dq, chunk \(chunk)")
            XCTAssertLessThanOrEqual(relativeError(g.keys.scalars, fdK), tolerance, "dk, chunk \(chunk)")
            XCTAssertLessThanOrEqual(relativeError(g.values.scalars, fdV), tolerance, "dv, chunk \(chunk)")
        }
    }

    func testSwiGLUGradientsMatchFiniteDifferences() {
        var rng = SeededGenerator(seed: 4)
        let gate = randomTensor([6, 10], &rng, scale: 2), up = randomTensor([6, 10], &rng), w = randomTensor([6, 10], &rng)
        let g = Tensor.swiGLUBackward(gate: gate, up: up, outputGradient: w)
        let gate64 = gate.scalars.map(Double.init), up64 = up.scalars.map(Double.init)
        func f(_ a: [Double], _ b: [Double]) -> Double {
            weightedSum(Float64Ops.swiGLU(gate: Matrix64(rows: 6, columns: 10, values: a), up: Matrix64(rows: 6, columns: 10, values: b)), w)
        }
        XCTAssertLessThanOrEqual(relativeError(g.gate.scalars, centralDifferences(at: gate64) { f($0, up64) }), tolerance)
        XCTAssertLessThanOrEqual(relativeError(g.up.scalars, centralDifferences(at: up64) { f(gate64, $0) }), tolerance)
    }

    func testMaskedCrossEntropyGradientMatchesFiniteDifferencesAndIgnoresMaskedRows() {
        var rng = SeededGenerator(seed: 5)
        let targets = [3, CausalLMLoss.ignoreIndex, 0, 19, CausalLMLoss.ignoreIndex, 7]
        let logits = randomTensor([6, 20], &rng, scale: 3)
        var gradient = logits
        let r = CausalLMLoss.softmaxCrossEntropy(logits: &gradient, targets: targets, gradientScale: 1)
        XCTAssertEqual(r.counted, 4)
        XCTAssertEqual(r.sum, Float64Ops.crossEntropySum(Matrix64(logits), targets: targets), accuracy: 1e-5)
        let fd = centralDifferences(at: logits.scalars.map(Double.init)) {
            Float64Ops.crossEntropySum(Matrix64(rows: 6, columns: 20, values: $0), targets: targets)
        }
        XCTAssertLessThanOrEqual(relativeError(gradient.scalars, fd), tolerance)
        for row in [1, 4] { XCTAssertEqual(gradient.rows(row..<row + 1).absMax(), 0, "ignored row \(row)") }

        // Through the frozen head, back to the hidden states.
        let hidden = randomTensor([6, 8], &rng), head = randomTensor([20, 8], &rng)
        let h = CausalLMLoss.headLoss(hidden: hidden, head: head, targets: targets, gradientScale: 0.25)
        let fdHidden = centralDifferences(at: hidden.scalars.map(Double.init)) {
            0.25 * Float64Ops.crossEntropySum(Matrix64(rows: 6, columns: 8, values: $0).timesTransposed(Matrix64(head)), targets: targets)
        }
        XCTAssertLessThanOrEqual(relativeError(h.hiddenGradient!.scalars, fdHidden), tolerance)
        XCTAssertEqual(h.sum, LlamaModel.crossEntropySum(logits: Tensor.matmul(hidden.gatheringRows([0, 2, 3, 5]), head, transposeB: true),
                                                         targets: [3, 0, 19, 7]), accuracy: 1e-4)
    }

    /// The adapted linear as a block runs it (frozen W with bias, LoRA with dropout over two
    /// packed sequences): dX, dA and dB, and never a gradient for W.
    func testLoRALinearWithDropoutGradientsMatchFiniteDifferences() throws {
        var config = RandomModelWeights.configuration(layers: 1, hidden: 16, heads: 2, kvHeads: 1, intermediate: 24, vocab: 32)
        config.mlpBias = true
        let model = try LlamaModel.load(config: config, from: InMemoryWeights(RandomModelWeights.make(for: config, seed: 6)))
        var rng = SeededGenerator(seed: 7)
        let adapter = LoRAAdapter(a: randomTensor([3, 24], &rng, scale: 0.3), b: randomTensor([16, 3], &rng, scale: 0.3), scaling: 2)
        let segments = [0..<4, 4..<9]
        let block = TrainingBlock(index: 0, weights: model.blocks[0].weights, adapters: [.down: adapter],
                                  attention: model.blocks[0].attention, rotary: model.blocks[0].rotary,
                                  rotaryTable: RotaryTable(model.blocks[0].rotary, positions: 5), epsilon: 1e-5,
                                  segments: segments, dropout: 0.3, dropoutSeeds: [11, 12])
        let x = randomTensor([9, 24], &rng), w = randomTensor([9, 16], &rng)
        var tape = AdapterTape()
        _ = block.linear(.down, x, tape: &tape)
        let mask = try XCTUnwrap(tape.dropoutMasks[.down])
        XCTAssertTrue(mask.scalars.contains(0) && mask.scalars.allSatisfy { $0 == 0 || abs($0 - 1 / 0.7) < 1e-6 })
        var dx = Tensor.zeros(x.shape)
        let g = try XCTUnwrap(block.linearBackward(.down, w, tape: tape, inputGradient: &dx))

        let base = model.blocks[0].weights.down
        func f(_ x64: [Double], _ a64: [Double], _ b64: [Double]) -> Double {
            let xm = Matrix64(rows: 9, columns: 24, values: x64)
            var y = xm.timesTransposed(Matrix64(base.weight))
            for i in 0..<9 { for j in 0..<16 { y[i, j] += Double(base.bias!.scalars[j]) } }
            let dropped = Matrix64(rows: 9, columns: 24, values: zip(x64, mask.scalars).map { $0 * Double($1) })
            let path = dropped.timesTransposed(Matrix64(rows: 3, columns: 24, values: a64)).timesTransposed(Matrix64(rows: 16, columns: 3, values: b64))
            for i in 0..<y.values.count { y.values[i] += 2 * path.values[i] }
            return weightedSum(y, w)
        }
        let x64 = x.scalars.map(Double.init), a64 = adapter.a.scalars.map(Double.init), b64 = adapter.b.scalars.map(Double.init)
        XCTAssertLessThanOrEqual(relativeError(dx.scalars, centralDifferences(at: x64) { f($0, a64, b64) }), tolerance)
        XCTAssertLessThanOrEqual(relativeError(g.a.scalars, centralDifferences(at: a64) { f(x64, $0, b64) }), tolerance)
        XCTAssertLessThanOrEqual(relativeError(g.b.scalars, centralDifferences(at: b64) { f(x64, a64, $0) }), tolerance)
    }

    func testMergedAdapterEqualsBasePlusAdapterPath() {
        var rng = SeededGenerator(seed: 8)
        let base = LinearLayer(weight: randomTensor([10, 6], &rng), bias: randomTensor([10], &rng))
        let adapter = LoRAAdapter(a: randomTensor([2, 6], &rng), b: randomTensor([10, 2], &rng), scaling: 4)
        let x = randomTensor([5, 6], &rng)
        let merged = adapter.merged(into: base)(x), separate = adapter(x, base: base)
        for (a, b) in zip(merged.scalars, separate.scalars) { XCTAssertEqual(a, b, accuracy: 1e-4) }
    }
}
