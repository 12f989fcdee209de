import Foundation
import QDistIO
import QDistTensor
import XCTest
@testable import QDistModel

/// `LinearOutputFisher` is Σ_t (∂L/∂y_tj)² at every decoder linear's output. On a sequence with
/// one predicted position there is one token, so it is g_j², and g_j is found independently by
/// central differences: the weight change W + ε·e_j·xᵀ/‖x‖² moves that token's output y_j by
/// exactly ε and nothing else of the linear.
final class LinearOutputFisherTests: XCTestCase {
    final class Inputs: BlockInputObserver {
        var seen: [String: Tensor] = [:]
        func observe(block: Int, group: LinearGroup, input: Tensor) { seen["\(block) \(group)"] = input }
    }

    func testEachOutputsFisherIsItsSquaredLossGradientByFiniteDifferences() throws {
        let config = RandomModelWeights.configuration(layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 64)
        let model = try LlamaModel.load(config: config, from: InMemoryWeights(RandomModelWeights.make(for: config, seed: 41)))
        let tokens = [7, 23]
        let fisher = try LinearOutputFisher.measure(tokens: tokens, config: config, frozen: model)
        XCTAssertEqual(fisher.blocks.count, 2)

        var observer: (any BlockInputObserver)? = Inputs()
        var cache: KVCache? = nil
        _ = model.hiddenStates([tokens[0]], cache: &cache, observer: &observer)
        let inputs = (observer as! Inputs).seen
        var checked = 0
        for b in 0..<2 {
            for target in LoRATarget.allCases {
                let squares = try XCTUnwrap(fisher.blocks[b][target], "block \(b) \(target)")
                let layer = model.blocks[b].weights.linears[target.modulePath]!
                XCTAssertEqual(squares.count, layer.outFeatures)
                let group: LinearGroup = switch target {
                case .q, .k, .v: .qkv
                case .o: .o
                case .gate, .up: .gateUp
                case .down: .down
                }
                let x = try XCTUnwrap(inputs["\(b) \(group)"]).scalars
                let norm2 = x.reduce(0.0) { $0 + Double($1) * Double($1) }
                for j in [0, layer.outFeatures / 2, layer.outFeatures - 1] {
                    let epsilon = 1e-2
                    func loss(_ sign: Double) -> Double {
                        var perturbed = model
                        var w = layer.weight
                        for c in 0..<w.columns { w.scalars[j * w.columns + c] += Float(sign * epsilon * Double(x[c]) / norm2) }
                        perturbed.blocks[b].weights.linears = [target.modulePath: LinearLayer(weight: w, bias: layer.bias)]
                        return perturbed.negativeLogLikelihood(tokens).sum
                    }
                    let g = (loss(1) - loss(-1)) / (2 * epsilon)
                    XCTAssertEqual(squares[j].squareRoot(), abs(g), accuracy: 0.02 * abs(g) + 2e-4, "block \(b) \(target) output \(j)")
                    checked += 1
                }
            }
        }
        XCTAssertEqual(checked, 2 * 7 * 3)
        // One query attends to one key with weight 1 whatever q and k are: their gradient is 0;
        // every other linear's is not.
        for block in fisher.blocks {
            for (target, squares) in block {
                if target == .q || target == .k {
                    XCTAssertTrue(squares.allSatisfy { $0 == 0 }, "\(target)")
                } else {
                    XCTAssertTrue(squares.contains { $0 > 1e-8 }, "\(target)")
                }
            }
        }
    }

    /// With labels sampled from the model, the Fisher's expectation is the true (Gauss–Newton)
    /// one, [J·(diag p − ppᵀ)·Jᵀ]_jj = Σ_v p_v J_jv² − (Σ_v p_v J_jv)², J_jv = ∂z_v/∂y_j. J by
    /// central differences of the logits (the same weight change as above), p from the logits;
    /// the mean over 1,500 seeds within 5 standard errors of it.
    func testSampledLabelsFisherAveragesToTheGaussNewtonDiagonal() throws {
        let config = RandomModelWeights.configuration(layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 64)
        let model = try LlamaModel.load(config: config, from: InMemoryWeights(RandomModelWeights.make(for: config, seed: 41)))
        let tokens = [7, 23]
        var observer: (any BlockInputObserver)? = Inputs()
        var cache: KVCache? = nil
        _ = model.hiddenStates([tokens[0]], cache: &cache, observer: &observer)
        let inputs = (observer as! Inputs).seen
        let z0 = model.logits(tokens).scalars.prefix(config.vocabSize).map(Double.init)
        let m = z0.max()!
        let e = z0.map { exp($0 - m) }, total = e.reduce(0, +)
        let p = e.map { $0 / total }

        let draws = 1_500
        let samples = try (0..<draws).map { try LinearOutputFisher.measure(tokens: tokens, config: config, frozen: model, labels: .sampled(seed: UInt64($0))) }
        XCTAssertNotEqual(samples[0].blocks[1][.down], samples[1].blocks[1][.down], "labels differ by seed")
        let checks: [(Int, LoRATarget, LinearGroup)] = [(0, .v, .qkv), (0, .gate, .gateUp), (1, .o, .o), (1, .up, .gateUp), (1, .down, .down)]
        for (b, target, group) in checks {
            let layer = model.blocks[b].weights.linears[target.modulePath]!
            let x = try XCTUnwrap(inputs["\(b) \(group)"]).scalars
            let norm2 = x.reduce(0.0) { $0 + Double($1) * Double($1) }
            for j in [0, layer.outFeatures - 1] {
                let epsilon = 1e-2
                func logits(_ sign: Double) -> [Double] {
                    var perturbed = model
                    var w = layer.weight
                    for c in 0..<w.columns { w.scalars[j * w.columns + c] += Float(sign * epsilon * Double(x[c]) / norm2) }
                    perturbed.blocks[b].weights.linears = [target.modulePath: LinearLayer(weight: w, bias: layer.bias)]
                    return perturbed.logits(tokens).scalars.prefix(config.vocabSize).map(Double.init)
                }
                let (up, down) = (logits(1), logits(-1))
                let jacobian = (0..<config.vocabSize).map { (up[$0] - down[$0]) / (2 * epsilon) }
                let mean = zip(p, jacobian).reduce(0.0) { $0 + $1.0 * $1.1 }
                let exact = zip(p, jacobian).reduce(0.0) { $0 + $1.0 * $1.1 * $1.1 } - mean * mean
                let values = try samples.map { try XCTUnwrap($0.blocks[b][target])[j] }
                let average = values.reduce(0, +) / Double(draws)
                let variance = values.reduce(0.0) { $0 + ($1 - average) * ($1 - average) } / Double(draws - 1)
                let standardError = (variance / Double(draws)).squareRoot()
                XCTAssertGreaterThan(exact, 0)
                XCTAssertEqual(average, exact, accuracy: 5 * standardError + 0.02 * exact, "block \(b) \(target) output \(j)")
            }
        }
    }
}
