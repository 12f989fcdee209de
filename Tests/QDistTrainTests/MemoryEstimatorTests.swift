import XCTest
import QDistQuant
@testable import QDistTrain

/// ZeRO memory accounting against the paper's worked example and the stage table's rules.
final class MemoryEstimatorTests: XCTestCase {
    func testFullTrainingReproducesTheZeROPaperExample() {
        // Rajbhandari et al.: Ψ = 7.5B, Nd = 64 → 120 GB, 31.4 GB, 16.6 GB, 1.9 GB.
        let expected = [120.0, 31.4, 16.6, 1.9]
        for stage in 0...3 {
            let m = MemoryEstimator.fullTraining(parameters: 7.5e9, zeroStage: stage, worldSize: 64)
            XCTAssertEqual(m.total / 1e9, expected[stage], accuracy: 0.05, "stage \(stage)")
        }
    }

    func testStagesShardExactlyTheirStates() {
        let n = 8.0, psi = 1e9
        let s0 = MemoryEstimator.fullTraining(parameters: psi, zeroStage: 0, worldSize: 8)
        let s1 = MemoryEstimator.fullTraining(parameters: psi, zeroStage: 1, worldSize: 8)
        let s2 = MemoryEstimator.fullTraining(parameters: psi, zeroStage: 2, worldSize: 8)
        let s3 = MemoryEstimator.fullTraining(parameters: psi, zeroStage: 3, worldSize: 8)
        XCTAssertEqual(s1.optimizerState, s0.optimizerState / n)
        XCTAssertEqual(s1.gradients, s0.gradients)
        XCTAssertEqual(s2.gradients, s0.gradients / n)
        XCTAssertEqual(s2.weights, s0.weights)
        XCTAssertEqual(s3.weights, s0.weights / n)
        XCTAssertEqual(MemoryEstimator.fullTraining(parameters: psi, zeroStage: 3, worldSize: 1).total, 16 * psi)
    }

    func testQLoRACountsNF4BaseAndSixteenBytesPerAdapterParameter() throws {
        // Two linears of 64→128 and 128→64: LoRA rank 4 has 4·192 · 2 = 1536 parameters.
        let model = ModelParameterSummary(total: 20_000, linear: 16_384, linearShapes: [(64, 128), (128, 64)])
        XCTAssertEqual(model.loraParameters(rank: 4), 1536)
        let nf4 = try XCTUnwrap(NumberFormat.named("nf4_dq")), fp16 = try XCTUnwrap(NumberFormat.named("fp16"))
        let m = MemoryEstimator.qloraTraining(model, loraParameters: 1536, zeroStage: 0, worldSize: 4, baseFormat: nf4, keptFormat: fp16)
        let base = 16_384 * nf4.bitsPerWeight() / 8 + 3_616 * 2
        XCTAssertEqual(m.weights, base + 4 * 1536, accuracy: 1e-9)
        XCTAssertEqual(m.gradients, 4 * 1536)
        XCTAssertEqual(m.optimizerState, 8 * 1536)
        let m3 = MemoryEstimator.qloraTraining(model, loraParameters: 1536, zeroStage: 3, worldSize: 4, baseFormat: nf4, keptFormat: fp16)
        XCTAssertEqual(m3.total, m.total / 4, accuracy: 1e-9, "stage 3 shards everything")
    }

    func testInferenceKeepsNonLinearTensorsAtSixteenBits() throws {
        let model = ModelParameterSummary(total: 1000, linear: 800, linearShapes: [])
        let int4 = try XCTUnwrap(NumberFormat.named("int4")), fp16 = try XCTUnwrap(NumberFormat.named("fp16"))
        let b = MemoryEstimator.inferenceBytes(model, format: int4, groupSize: 100, keptFormat: fp16)
        XCTAssertEqual(b.linear, 800 * (4 + 0.16) / 8, accuracy: 1e-9)
        XCTAssertEqual(b.other, 400)
    }
}
