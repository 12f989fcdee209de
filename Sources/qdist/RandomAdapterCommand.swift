import ArgumentParser
import Foundation
import QDistModel
import QDistPipeline

/// `qdist random-adapter` (hidden): a seeded random PEFT LoRA adapter for a model, with a
/// non-zero B so it changes the model — what tests and Benchmarks/peft_reference.py use to
/// check that PEFT, transformers and qdist apply the same adapter the same way.
struct RandomAdapterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "random-adapter",
        abstract: "Write a seeded random PEFT LoRA adapter for a model (for tests and interop checks).",
        shouldDisplay: false)

    @Option(name: .long, help: ArgumentHelp("The base model: a folder or a .gguf file.", valueName: "path"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("The adapter folder to write.", valueName: "dir"))
    var output: String

    @Option(name: .long, help: "LoRA rank r.")
    var rank = 8

    @Option(name: .long, help: "lora_alpha.")
    var alpha = 16.0

    @Option(name: .long, parsing: .upToNextOption, help: "target_modules (q_proj … down_proj).")
    var targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

    @Flag(name: .customLong("rslora"), help: "use_rslora: scaling alpha/√r.")
    var rsLoRA = false

    @Option(name: .long, help: "B is drawn from U(-b-scale, b-scale).")
    var bScale: Float = 0.05

    @Option(name: .long, help: "Seed.")
    var seed: UInt64 = 0

    func run() throws {
        do {
            let bundle = try ModelBundle.open(model)
            let lora = try LoRAConfig(rank: rank, alpha: alpha, targetModules: targets, useRSLoRA: rsLoRA)
            let adapter = PEFTAdapter.random(config: bundle.config, lora: lora, seed: seed, bScale: bScale)
            try PEFTAdapterWriter.write(adapter, baseModel: model, to: URL(fileURLWithPath: output))
        } catch {
            throw ConsoleOutput.fail("random-adapter", "\(error)")
        }
    }
}
