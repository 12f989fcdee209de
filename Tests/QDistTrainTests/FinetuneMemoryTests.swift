import XCTest
import QDistIO
import QDistQuant
@testable import QDistTrain

/// The per-category fine-tuning memory prediction follows ZeRO's stage table.
final class FinetuneMemoryTests: XCTestCase {
    func testStagesShardTheirCategoriesAndActivationsStayPerRank() throws {
        let config = ModelConfiguration(modelType: "llama", hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2,
                                        numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 512, rmsNormEps: 1e-5,
                                        ropeTheta: 10000, maxPositionEmbeddings: 256, tieWordEmbeddings: false)
        let linears = config.linearLayers
        let model = ModelParameterSummary(total: Double(config.parameterCount),
                                          linear: Double(linears.reduce(0) { $0 + $1.inFeatures * $1.outFeatures }),
                                          linearShapes: linears.map { ($0.inFeatures, $0.outFeatures) })
        let lora = LoRAShapeSummary.allLinear(config, rank: 4)
        XCTAssertEqual(lora.parameters, model.loraParameters(rank: 4))
        let fp32 = try XCTUnwrap(NumberFormat.named("fp32"))
        func m(_ stage: Int, _ n: Int) -> FinetuneRankMemory {
            MemoryEstimator.finetune(model, config: config, lora: lora, microBatchSize: 2, seqLen: 32, zeroStage: stage,
                                     worldSize: n, baseFormat: fp32, keptFormat: fp32)
        }
        let s0 = m(0, 4), s1 = m(1, 4), s2 = m(2, 4), s3 = m(3, 4)
        XCTAssertEqual(s0.baseWeights, 4 * Double(config.parameterCount))
        XCTAssertEqual(s0.optimizerState, 8 * lora.parameters)
        XCTAssertEqual(s1.optimizerState, s0.optimizerState / 4)
        XCTAssertEqual(s1.gradients, s0.gradients)
        XCTAssertEqual(s2.gradients, s0.gradients / 4)
        XCTAssertEqual(s3.adapters, s0.adapters / 4)
        XCTAssertEqual(s3.baseWeights, s0.baseWeights / 4)
        XCTAssertEqual(s0.activations, m(0, 1).activations, "activations do not shard")
        XCTAssertGreaterThan(s0.total, s3.total)
    }
}
