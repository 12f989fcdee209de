import Foundation
import QDistTensor
import XCTest
@testable import QDistModel

/// `CausalLMLoss.sampledTargets` draws each counted row's label from softmax(h·headᵀ): the
/// inverse of the cumulative distribution at the generator's uniform, recomputed here in float64
/// from the logits.
final class SampledTargetsTests: XCTestCase {
    func testEachLabelIsTheInverseCumulativeSoftmaxAtTheUniform() {
        var g = SeededGenerator(seed: 5)
        let (rows, width, vocab) = (6, 8, 11)
        let h = Tensor(shape: [rows, width], scalars: (0..<rows * width).map { _ in g.normal() })
        let head = Tensor(shape: [vocab, width], scalars: (0..<vocab * width).map { _ in 2 * g.normal() })
        var targets = (0..<rows).map { $0 % vocab }
        targets[2] = CausalLMLoss.ignoreIndex
        let seed: UInt64 = 1234
        let sampled = CausalLMLoss.sampledTargets(hidden: h, head: head, targets: targets, seed: seed)

        var uniforms = SeededGenerator(seed: seed)
        for r in 0..<rows {
            guard targets[r] != CausalLMLoss.ignoreIndex else {
                XCTAssertEqual(sampled[r], CausalLMLoss.ignoreIndex)
                continue
            }
            let z = (0..<vocab).map { v in (0..<width).reduce(0.0) { $0 + Double(h.scalars[r * width + $1]) * Double(head.scalars[v * width + $1]) } }
            let m = z.max()!
            let p = z.map { exp($0 - m) }
            let u = uniforms.uniform() * p.reduce(0, +)
            var cumulative = 0.0
            let expected = p.indices.first { cumulative += p[$0]; return cumulative > u } ?? vocab - 1
            XCTAssertEqual(sampled[r], expected, "row \(r)")
        }
        XCTAssertEqual(CausalLMLoss.sampledTargets(hidden: h, head: head, targets: targets, seed: seed), sampled, "same seed, same labels")
    }

    func testLabelFrequenciesFollowTheSoftmax() {
        // Logits 0, 1, 2, 3 → p ∝ e^k; 40,000 draws: each frequency within 5 standard errors.
        let logits: [Float] = [0, 1, 2, 3]
        let p = logits.map { exp(Double($0)) }, total = p.reduce(0, +)
        var counts = [Int](repeating: 0, count: 4)
        var g = SeededGenerator(seed: 9)
        let draws = 40_000
        logits.withUnsafeBufferPointer { z in
            for _ in 0..<draws { counts[CausalLMLoss.sample(logits: z, uniform: g.uniform())] += 1 }
        }
        for k in 0..<4 {
            let q = p[k] / total, se = (q * (1 - q) / Double(draws)).squareRoot()
            XCTAssertEqual(Double(counts[k]) / Double(draws), q, accuracy: 5 * se, "label \(k)")
        }
    }

    func testALabelWithZeroProbabilityIsNeverDrawn() {
        let logits: [Float] = [0, -.infinity, 0, -.infinity]
        logits.withUnsafeBufferPointer { z in
            for u in [0.0, 0.25, 0.49, 0.5, 0.75, 0.999_999_999] {
                XCTAssertTrue([0, 2].contains(CausalLMLoss.sample(logits: z, uniform: u)), "u \(u)")
            }
            XCTAssertEqual(CausalLMLoss.sample(logits: z, uniform: 0.25), 0)
            XCTAssertEqual(CausalLMLoss.sample(logits: z, uniform: 0.75), 2)
        }
    }
}
