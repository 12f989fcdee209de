import Foundation
import QDistIO
import QDistTensor
import XCTest
@testable import QDistModel

/// The LoRA training graph on the tiny model (2 layers, hidden 32, 4 heads over 2 KV heads,
/// vocabulary 64, two sequences of 12 tokens) against a float64 forward, the eval forward, and
/// itself with checkpointing off.
final class BackwardGraphTests: XCTestCase {
    struct Fixture {
        let config: ModelConfiguration
        let model: LlamaModel
        let lora: LoRAConfig
        /// A from PEFT's init, B random (so dA is not zero).
        let parameters: TrainableParameters
        let batch: [TrainingSequence]
    }

    func fixture(rank: Int = 4, dropout: Double = 0, targets: [LoRATarget] = LoRATarget.allCases,
                 config: ModelConfiguration = RandomModelWeights.configuration(layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 64)) throws -> Fixture {
        let model = try LlamaModel.load(config: config, from: InMemoryWeights(RandomModelWeights.make(for: config, seed: 31)))
        let lora = LoRAConfig(rank: rank, alpha: 8, dropout: dropout, targets: targets)
        var parameters = TrainableParameters.initialized(config: config, lora: lora, seed: 5)
        var rng = SeededGenerator(seed: 77)
        for e in parameters.layout.entries where e.role == .b {
            for i in e.range { parameters.values[i] = 0.2 * rng.normal() }
        }
        let tokens = (0..<2).map { _ in (0..<12).map { _ in Int(rng.next() % 64) } }
        let batch = [TrainingSequence(tokens: tokens[0], dropoutSeed: 1),
                     TrainingSequence(prompt: Array(tokens[1][..<4]), completion: Array(tokens[1][4...]), dropoutSeed: 2)]
        return Fixture(config: config, model: model, lora: lora, parameters: parameters, batch: batch)
    }

    /// Per-tensor relative error of the analytic gradient against float64 central differences of
    /// the mean loss; returns the worst, after asserting each ≤ 1e-4.
    @discardableResult
    func assertGradientsMatchFiniteDifferences(_ f: Fixture, dropout: Bool, file: StaticString = #filePath, line: UInt = #line) throws -> Double {
        let graph = LlamaTrainingGraph(config: f.config, lora: f.lora)
        let (loss, gradients) = try graph.lossAndGradients(f.batch, frozen: f.model, adapters: f.parameters, applyDropout: dropout)
        let reference = Float64Llama(model: f.model, lora: f.lora).preparingDropoutMasks(for: f.batch)
        let p64 = f.parameters.values.map(Double.init)
        let exact = reference.loss(f.batch, adapters: p64, dropout: dropout)
        XCTAssertEqual(loss.countedTokens, exact.counted, file: file, line: line)
        XCTAssertEqual(loss.countedTokens, 11 + 8, file: file, line: line)
        XCTAssertEqual(loss.mean, exact.sum / Double(exact.counted), accuracy: 1e-5 * loss.mean, file: file, line: line)
        // Central differences block by block, each starting from that block's (unperturbed) input.
        var fd: [Double] = []
        for b in 0..<f.config.numHiddenLayers {
            let inputs = reference.blockInputs(f.batch, upTo: b, adapters: p64, dropout: dropout)
            let range = graph.layout.blockRange(b)
            var p = p64
            for i in range {
                let saved = p[i]
                p[i] = saved + 1e-5
                let up = reference.loss(f.batch, adapters: p, dropout: dropout, from: (b, inputs)).sum
                p[i] = saved - 1e-5
                let down = reference.loss(f.batch, adapters: p, dropout: dropout, from: (b, inputs)).sum
                p[i] = saved
                fd.append((up - down) / 2e-5 / Double(exact.counted))
            }
        }
        var worst = 0.0
        var report: [String] = []
        for e in graph.layout.entries {
            let error = relativeError(Array(gradients[e.range]), Array(fd[e.range]))
            XCTAssertGreaterThan(fd[e.range].map(abs).max()!, 1e-6, "\(e.name) has a gradient", file: file, line: line)
            XCTAssertLessThanOrEqual(error, 1e-4, e.name, file: file, line: line)
            worst = max(worst, error)
            report.append(String(format: "%@ %.2e", e.name.replacingOccurrences(of: "base_model.model.model.", with: ""), error))
        }
        print("finite differences (dropout \(dropout)), relative error per tensor:\n  " + report.joined(separator: "\n  "))
        print(String(format: "worst relative error: %.3e", worst))
        return worst
    }

    func testLoRAGradientsOfAllSevenTargetsMatchFloat64FiniteDifferences() throws {
        try assertGradientsMatchFiniteDifferences(try fixture(), dropout: false)
    }

    func testLoRAGradientsWithSeededDropoutMatchFloat64FiniteDifferences() throws {
        try assertGradientsMatchFiniteDifferences(try fixture(rank: 2, dropout: 0.2), dropout: true)
    }

    /// Qwen2's q/k/v biases, a tied head and one KV head per query head, on two targets.
    func testLoRAGradientsWithBiasesTiedHeadAndNoGQAMatchFloat64FiniteDifferences() throws {
        let config = RandomModelWeights.configuration(arch: "qwen2", layers: 2, hidden: 24, heads: 3, kvHeads: 3, vocab: 64, tied: true)
        XCTAssertTrue(config.hasQKVBias)
        try assertGradientsMatchFiniteDifferences(try fixture(rank: 2, targets: [.v, .gate], config: config), dropout: false)
    }

    /// Sequences of different lengths, one of 300 tokens (several 128-row attention chunks).
    func testTrainingLossWithZeroAdaptersEqualsEvalNegativeLogLikelihood() throws {
        let f = try fixture()
        let zeroB = TrainableParameters.initialized(config: f.config, lora: f.lora, seed: 9)
        var batch = f.batch.map { TrainingSequence(tokens: $0.tokens) }
        batch.append(TrainingSequence(tokens: Array(f.batch[0].tokens.prefix(7))))
        var rng = SeededGenerator(seed: 12)
        batch.append(TrainingSequence(tokens: (0..<300).map { _ in Int(rng.next() % 64) }))
        let graph = LlamaTrainingGraph(config: f.config, lora: f.lora)
        let loss = try graph.loss(batch, frozen: f.model, adapters: zeroB)
        let trained = try graph.lossAndGradients(batch, frozen: f.model, adapters: zeroB).loss
        var sum = 0.0, count = 0
        for s in batch {
            let nll = f.model.negativeLogLikelihood(s.tokens)
            sum += nll.sum
            count += nll.predicted
        }
        XCTAssertEqual(loss.countedTokens, count)
        XCTAssertEqual(loss.mean, sum / Double(count), accuracy: 1e-6 * sum / Double(count))
        XCTAssertEqual(trained, loss)
    }

    func testAdaptedLossEqualsEvalOfTheMergedModel() throws {
        let f = try fixture()
        var merged = f.model
        for i in 0..<f.config.numHiddenLayers {
            var linears = merged.blocks[i].weights.linears
            for t in f.lora.targets {
                linears[t.modulePath] = f.parameters.adapter(block: i, target: t, scaling: f.lora.scaling)!.merged(into: linears[t.modulePath]!)
            }
            merged.blocks[i].weights.linears = linears
        }
        let tokens = f.batch[0].tokens
        let loss = try LlamaTrainingGraph(config: f.config, lora: f.lora).loss([TrainingSequence(tokens: tokens)], frozen: f.model, adapters: f.parameters)
        let nll = merged.negativeLogLikelihood(tokens)
        XCTAssertEqual(loss.sum, nll.sum, accuracy: 1e-4 * nll.sum)
    }

    /// Checkpointing recomputes each block instead of keeping it: the gradients must not change,
    /// and the frozen weights (and adapters) of every block are asked for twice per step —
    /// forward 0…L−1, then backward L−1…0 — as ZeRO-3's gathers expect.
    func testCheckpointedBackwardEqualsKeptActivationsAndFetchesEachBlockTwice() throws {
        let f = try fixture(dropout: 0.1)
        final class Log { var calls: [String] = [] }
        let log = Log()
        let model = f.model
        let frozen = FrozenWeightClosures(
            embedding: { log.calls.append("embedding"); return model.embedding },
            finalNorm: { log.calls.append("norm"); return model.finalNorm },
            outputHead: { log.calls.append("head"); return model.outputHead },
            block: { i, pass in log.calls.append("\(pass.rawValue) \(i)"); return model.blocks[i].weights })
        struct Adapters: AdapterParameterSource {
            let parameters: TrainableParameters
            let log: Log
            func adapterValues(block: Int, pass: TrainingPass) throws -> [Float] {
                log.calls.append("adapters \(pass.rawValue) \(block)")
                return try parameters.adapterValues(block: block, pass: pass)
            }
        }
        var graph = LlamaTrainingGraph(config: f.config, lora: f.lora)
        XCTAssertTrue(graph.gradientCheckpointing)
        var ready: [Int] = []
        var checkpointed = [Float](repeating: 0, count: graph.layout.count)
        let loss = try graph.accumulateGradients(f.batch, frozen: frozen, adapters: Adapters(parameters: f.parameters, log: log),
                                                 into: &checkpointed, blockGradientsReady: { block, _ in ready.append(block) })
        XCTAssertEqual(log.calls, ["embedding", "forward 0", "adapters forward 0", "forward 1", "adapters forward 1", "norm", "head",
                                   "backward 1", "adapters backward 1", "backward 0", "adapters backward 0"])
        XCTAssertEqual(ready, [1, 0])
        graph.gradientCheckpointing = false
        let kept = try graph.lossAndGradients(f.batch, frozen: f.model, adapters: f.parameters)
        XCTAssertEqual(kept.loss, loss)
        XCTAssertEqual(kept.gradients, checkpointed)
    }

    func testMaskedPositionsContributeNothing() throws {
        let f = try fixture()
        let graph = LlamaTrainingGraph(config: f.config, lora: f.lora)
        let first = f.batch[0]
        let silent = TrainingSequence(tokens: f.batch[1].tokens, labels: [Int](repeating: CausalLMLoss.ignoreIndex, count: 12))
        let alone = try graph.lossAndGradients([first], frozen: f.model, adapters: f.parameters)
        let withSilent = try graph.lossAndGradients([first, silent], frozen: f.model, adapters: f.parameters)
        XCTAssertEqual(withSilent.loss.countedTokens, 11)
        // Equal up to Float rounding: packing another sequence changes BLAS's summation order.
        XCTAssertEqual(withSilent.loss.sum, alone.loss.sum, accuracy: 1e-6 * alone.loss.sum)
        XCTAssertLessThanOrEqual(relativeError(withSilent.gradients, alone.gradients.map(Double.init)), 1e-5)
        // Nothing counted, or no sequence at all: zero loss and gradient, and still every block
        // fetched in both passes (a ZeRO-3 rank must join every gather the others make).
        for batch in [[silent], []] {
            var fetches: [String] = []
            let model = f.model
            let frozen = FrozenWeightClosures(embedding: { model.embedding }, finalNorm: { model.finalNorm }, outputHead: { model.outputHead },
                                              block: { i, pass in fetches.append("\(pass.rawValue) \(i)"); return model.blocks[i].weights })
            let nothing = try graph.lossAndGradients(batch, frozen: frozen, adapters: f.parameters)
            XCTAssertEqual(nothing.loss, LossSummary(sum: 0, countedTokens: 0))
            XCTAssertTrue(nothing.gradients.allSatisfy { $0 == 0 })
            XCTAssertEqual(fetches, ["forward 0", "forward 1", "backward 1", "backward 0"])
        }

        // Partially masked: the loss is the eval per-position loss summed over counted rows.
        let zeroB = TrainableParameters.initialized(config: f.config, lora: f.lora, seed: 9)
        let prompt = f.batch[1]
        let loss = try graph.loss([prompt], frozen: f.model, adapters: zeroB)
        let logits = f.model.logits(Array(prompt.tokens.dropLast()))
        let expected = LlamaModel.crossEntropySum(logits: logits.rows(3..<11), targets: Array(prompt.tokens[4...]))
        XCTAssertEqual(loss.countedTokens, 8)
        XCTAssertEqual(loss.sum, expected, accuracy: 1e-5 * expected)
    }

    /// Data-parallel ranks and accumulation micro-batches pass the global token count as the
    /// normalizer; their summed gradients must equal one batch's.
    func testAccumulatingMicroBatchesWithGlobalNormalizerEqualsOneBatch() throws {
        let f = try fixture()
        let graph = LlamaTrainingGraph(config: f.config, lora: f.lora)
        let batch = f.batch + f.batch.map { TrainingSequence(tokens: $0.tokens.reversed(), labels: $0.labels.reversed()) }
        let whole = try graph.lossAndGradients(batch, frozen: f.model, adapters: f.parameters)
        var accumulated = [Float](repeating: 0, count: graph.layout.count)
        var sum = 0.0
        for part in [Array(batch[..<1]), Array(batch[1...])] {
            sum += try graph.accumulateGradients(part, frozen: f.model, adapters: f.parameters, into: &accumulated,
                                                 lossNormalizer: whole.loss.countedTokens).sum
        }
        XCTAssertEqual(sum, whole.loss.sum, accuracy: 1e-6 * whole.loss.sum)
        XCTAssertLessThanOrEqual(relativeError(accumulated, whole.gradients.map(Double.init)), 1e-6)
    }

    func testLayoutUsesPEFTNamesShapesAndContiguousBlocks() throws {
        let f = try fixture(rank: 4)
        let layout = TrainableParameterLayout(config: f.config, lora: f.lora)
        XCTAssertEqual(layout.entries.count, 2 * 7 * 2)
        XCTAssertEqual(layout.entries[0].name, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
        XCTAssertEqual(layout.entries[0].shape, [4, 32])
        XCTAssertEqual(layout.entry(named: "base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight")?.shape, [16, 4])
        XCTAssertEqual(layout.entry(named: "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight")?.shape, [4, 80])
        XCTAssertEqual(layout.entries.last?.name, "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight")
        var offset = 0
        for e in layout.entries {
            XCTAssertEqual(e.offset, offset)
            offset += e.count
        }
        XCTAssertEqual(layout.count, offset)
        XCTAssertEqual(layout.blockRanges, [0..<offset / 2, offset / 2..<offset])
        let tensors = layout.tensors(from: f.parameters.values)
        XCTAssertEqual(layout.flatten(tensors), f.parameters.values)
        let qv = TrainableParameterLayout(config: f.config, lora: LoRAConfig(rank: 8, targets: [.v, .q]))
        let expected = ["q_proj.lora_A", "q_proj.lora_B", "v_proj.lora_A", "v_proj.lora_B"].map { (s: String) -> String in
            "base_model.model.model.layers.0.self_attn." + s + ".weight"
        }
        XCTAssertEqual(Array(qv.entries.map(\.name).prefix(4)), expected)
    }

    func testInitializationIsKaimingUniformWithZeroBAndSeeded() throws {
        let config = RandomModelWeights.configuration(layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 64)
        let lora = LoRAConfig(rank: 16, alpha: 32, targets: LoRATarget.allCases)
        XCTAssertEqual(lora.scaling, 2)
        let p = TrainableParameters.initialized(config: config, lora: lora, seed: 1)
        for e in p.layout.entries {
            let t = p.tensor(e)
            if e.role == .b {
                XCTAssertEqual(t.absMax(), 0, e.name)
            } else {
                let bound = 1 / Float(e.shape[1]).squareRoot()
                XCTAssertLessThanOrEqual(t.absMax(), bound, e.name)
                XCTAssertGreaterThan(t.absMax(), 0.95 * bound, e.name)
                let rms = (t.scalars.reduce(0) { $0 + Double($1 * $1) } / Double(t.count)).squareRoot()
                XCTAssertEqual(rms, Double(bound) / 3.0.squareRoot(), accuracy: 0.1 * Double(bound), e.name)
            }
        }
        XCTAssertEqual(p, TrainableParameters.initialized(config: config, lora: lora, seed: 1))
        XCTAssertNotEqual(p.values, TrainableParameters.initialized(config: config, lora: lora, seed: 2).values)
        let qOnly = TrainableParameters.initialized(config: config, lora: LoRAConfig(rank: 16, alpha: 32, targets: [.q]), seed: 1)
        let name = "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"
        XCTAssertEqual(qOnly.tensor(named: name), p.tensor(named: name), "a tensor's init does not depend on the other targets")
    }

    func testLoRAConfigReadsPEFTTargetModuleNames() throws {
        XCTAssertEqual(try LoRAConfig(rank: 8, alpha: 16, targetModules: ["all-linear"]).targets, LoRATarget.allCases)
        XCTAssertEqual(try LoRAConfig(rank: 8, alpha: 16, targetModules: ["v_proj", "self_attn.q_proj", "q_proj"]).targetModules,
                       ["q_proj", "v_proj"])
        XCTAssertThrowsError(try LoRAConfig(rank: 8, alpha: 16, targetModules: ["lm_head"])) { error in
            XCTAssertTrue("\(error)".contains("lm_head"), "\(error)")
        }
        XCTAssertThrowsError(try LoRAConfig(rank: 8, alpha: 16, targetModules: ["mlp.q_proj"]))
        XCTAssertEqual(try LoRAConfig(rank: 16, alpha: 8, targetModules: ["q_proj"], useRSLoRA: true).scaling, 2)
    }
}
