import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest
@testable import QDistModel

/// qdist's decoder against an independent float64 numpy implementation of the same equations
/// (Tests/Reference/llama_reference.py), on tiny random Llama and Qwen2 models.
final class LlamaModelReferenceTests: XCTestCase {
    /// Writes a random model folder and returns it with the loaded model.
    func makeModel(_ config: ModelConfiguration, seed: UInt64) throws -> (URL, LlamaModel) {
        let dir = try QdistProcess.temporaryDirectory(self)
        let weights = RandomModelWeights.make(for: config, seed: seed)
        try config.write(to: dir.appendingPathComponent("config.json"))
        try SafetensorsWriter.write(weights.mapValues { StoredTensor($0, as: .f32) }, metadata: ["format": "pt"],
                                    to: dir.appendingPathComponent("model.safetensors"))
        let model = try LlamaModel.load(config: config, from: CheckpointFolder(url: dir))
        return (dir, model)
    }

    func referenceLogits(_ dir: URL, tokens: [Int]) throws -> [Double] {
        let out = dir.appendingPathComponent("reference.f64")
        let script = QdistProcess.repositoryRoot.appendingPathComponent("Tests/Reference/llama_reference.py").path
        let r = try QdistProcess.runProcess(try QdistProcess.python(), [script, dir.path, tokens.map(String.init).joined(separator: ","), out.path],
                                            environment: [:], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        let data = try Data(contentsOf: out)
        return data.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
    }

    func assertMatchesReference(_ config: ModelConfiguration, seed: UInt64, tokenCount: Int = 37,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let (dir, model) = try makeModel(config, seed: seed)
        var rng = SeededGenerator(seed: seed + 1)
        let tokens = (0..<tokenCount).map { _ in Int(rng.next() % UInt64(config.vocabSize)) }
        let ours = model.logits(tokens)
        let reference = try referenceLogits(dir, tokens: tokens)
        XCTAssertEqual(ours.shape, [tokens.count, config.vocabSize], file: file, line: line)
        XCTAssertEqual(reference.count, ours.count, file: file, line: line)
        var maxDiff = 0.0, maxAbs = 0.0
        for i in 0..<min(reference.count, ours.count) {
            maxDiff = max(maxDiff, abs(Double(ours.scalars[i]) - reference[i]))
            maxAbs = max(maxAbs, abs(reference[i]))
        }
        XCTAssertGreaterThan(maxAbs, 0.5, "logits should not be flat", file: file, line: line)
        XCTAssertLessThanOrEqual(maxDiff, 1e-4, "max |ours − float64 reference|", file: file, line: line)
    }

    func testLlamaLogitsMatchFloat64Reference() throws {
        try assertMatchesReference(RandomModelWeights.configuration(arch: "llama", layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 256), seed: 1)
    }

    func testLongSequenceSpanningSeveralAttentionChunksMatchesReference() throws {
        // 300 tokens: three 128-row query chunks, each scoring only the keys it can see.
        try assertMatchesReference(RandomModelWeights.configuration(arch: "llama", layers: 1, hidden: 32, heads: 4, kvHeads: 2, vocab: 64),
                                   seed: 6, tokenCount: 300)
    }

    func testTiedEmbeddingLlamaWithoutGQAMatchesReference() throws {
        try assertMatchesReference(RandomModelWeights.configuration(arch: "llama", layers: 3, hidden: 48, heads: 3, kvHeads: 3, vocab: 200, tied: true), seed: 2)
    }

    func testQwen2WithQKVBiasesMatchesReference() throws {
        let config = RandomModelWeights.configuration(arch: "qwen2", layers: 2, hidden: 64, heads: 8, kvHeads: 2, vocab: 300)
        XCTAssertTrue(config.hasQKVBias)
        try assertMatchesReference(config, seed: 3)
    }

    func testLlama3RopeScalingMatchesReference() throws {
        var config = RandomModelWeights.configuration(arch: "llama", layers: 2, hidden: 64, heads: 4, kvHeads: 1, vocab: 128)
        config.ropeTheta = 500_000
        config.ropeScaling = .init(ropeType: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16)
        try assertMatchesReference(config, seed: 4)
    }
}
