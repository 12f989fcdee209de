import Foundation
import QDistComm
import QDistIO
import QDistModel
import QDistTestSupport
import QDistTrain
import XCTest
@testable import QDistPipeline

/// The data-parallel trainer in one process: the adapter it writes loads back into the same
/// parameters and the same loss, prompt/completion data trains the completion only, and the
/// ZeRO-3 sources hand the graph exactly what the replicated ones do.
final class FinetuneEngineTests: XCTestCase {
    struct Setup {
        let bundle: ModelBundle
        let graph: LlamaTrainingGraph
        let lora: LoRAConfig
        let frozen: ShardedFrozenBase
    }

    func setUp(in dir: URL, stage: ZeROStage = .zero) throws -> Setup {
        var options = TinyModel.Options()
        options.layers = 2
        options.hidden = 32
        options.vocab = 300
        options.seed = 4
        let folder = dir.appendingPathComponent("tiny")
        try TinyModel.write(to: folder, options: options)
        let bundle = try ModelBundle.open(folder.path)
        let lora = LoRAConfig(rank: 2, alpha: 4, dropout: 0, targets: [.q, .v, .down])
        let comm = SingleProcessCommunicator()
        let frozen = try ShardedFrozenBase(config: bundle.config, source: bundle.weights,
                                           codec: Float32BlockCodec(config: bundle.config, source: bundle.weights),
                                           sharded: stage.shardsParameters, communicator: comm)
        return Setup(bundle: bundle, graph: LlamaTrainingGraph(config: bundle.config, lora: lora), lora: lora, frozen: frozen)
    }

    func trainer(_ s: Setup, examples: [TrainingExample], stage: ZeROStage = .zero) -> DataParallelTrainer {
        let settings = TrainerSettings(
            zeroStage: stage, schedule: LearningRateSchedule(peakLearningRate: 0.05, warmupSteps: 0, totalSteps: 10),
            adamW: AdamWHyperparameters(), maxGradNorm: 1, microBatchSize: 2,
            batches: BatchSchedule(exampleCount: examples.count, globalBatchSize: 4, seed: 1))
        return DataParallelTrainer(graph: s.graph, frozen: s.frozen, examples: examples, settings: settings,
                                   initial: TrainableParameters.initialized(config: s.bundle.config, lora: s.lora, seed: 2),
                                   dropoutSeed: 5, communicator: SingleProcessCommunicator())
    }

    func examples(_ s: Setup) -> [TrainingExample] {
        TrainingExamples.windows(s.bundle.tokenizer.encode(TinyModelCorpus.text), seqLen: 16)
    }

    func testWrittenAdapterLoadsBackToTheSameParametersAndTheSameNextLoss() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let s = try setUp(in: dir)
        let data = examples(s)
        let t = trainer(s, examples: data)
        for _ in 0..<5 { try t.step() }
        let trained = try t.fullParameters()
        try PEFTAdapterWriter.writeFiles(config: s.lora, layout: trained.layout, parameters: trained.values, baseModel: "tiny",
                                         into: dir.appendingPathComponent("adapter"))

        let reader = try SafetensorsReader(url: dir.appendingPathComponent("adapter/adapter_model.safetensors"))
        XCTAssertEqual(Set(reader.tensorNames), Set(s.graph.layout.entries.map(\.name)))
        let loaded = TrainableParameters(layout: s.graph.layout,
                                         values: try s.graph.layout.flatten(s.graph.layout.entries.map { try reader.tensor($0.name) }))
        XCTAssertEqual(loaded.values, trained.values)
        // The next step's loss (taken before its update) equals the loaded adapter's loss on that batch.
        let batch = t.settings.batches.globalBatch(step: 5).map { data[$0.example].sequence(dropoutSeed: 0) }
        let fromFile = try s.graph.loss(batch, frozen: s.frozen, adapters: loaded)
        let next = try t.step()
        XCTAssertEqual(next.loss, fromFile.mean, accuracy: 1e-6 * fromFile.mean)
        XCTAssertEqual(next.countedTokens, fromFile.countedTokens)
    }

    func testZeRO3ShardedSourcesTrainLikeReplicatedOnes() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let replicated = try setUp(in: dir)
        let other = dir.appendingPathComponent("z3")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        let sharded = try setUp(in: other, stage: .three)
        let a = trainer(replicated, examples: examples(replicated)), b = trainer(sharded, examples: examples(sharded), stage: .three)
        for _ in 0..<3 { XCTAssertEqual(try a.step().loss, try b.step().loss, accuracy: 1e-9) }
        XCTAssertEqual(try a.fullParameters().values, try b.fullParameters().values)
    }

    func testPromptCompletionLinesCountOnlyTheCompletion() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let s = try setUp(in: dir)
        let file = dir.appendingPathComponent("pairs.jsonl")
        try Data("""
            {"prompt": "The cat", "completion": " sat on the mat."}

            {"prompt": "Once upon", "completion": " a time there was a model."}
            """.utf8).write(to: file)
        let examples = try TrainingExamples.load(path: file.path, seqLen: 64, tokenizer: s.bundle.tokenizer,
                                                 communicator: SingleProcessCommunicator())
        XCTAssertEqual(examples.count, 2)
        let tokenizer = s.bundle.tokenizer
        let prompt = tokenizer.encode("The cat"), completion = tokenizer.encode(" sat on the mat.")
        XCTAssertEqual(examples[0].tokens, prompt + completion + [try XCTUnwrap(tokenizer.eosTokenID)])
        XCTAssertEqual(examples[0].promptLength, prompt.count)
        XCTAssertEqual(examples[0].countedTokens, completion.count + 1)
        let labels = examples[0].sequence(dropoutSeed: 0).labels
        XCTAssertEqual(Array(labels[..<prompt.count]), [Int](repeating: CausalLMLoss.ignoreIndex, count: prompt.count))

        try Data(#"{"prompt": "x"}"#.utf8).write(to: file)
        XCTAssertThrowsError(try TrainingExamples.read(path: file.path, seqLen: 64, tokenizer: tokenizer)) {
            XCTAssertTrue("\($0)".contains("line 1"), "\($0)")
        }
    }

    func testTextFileIsCutIntoConsecutiveWindows() {
        let w = TrainingExamples.windows(Array(0..<10), seqLen: 4)
        XCTAssertEqual(w.map(\.tokens), [[0, 1, 2, 3], [4, 5, 6, 7]])
        XCTAssertEqual(w[0].countedTokens, 3)
    }
}
