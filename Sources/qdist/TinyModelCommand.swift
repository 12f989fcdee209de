import ArgumentParser
import Foundation
import QDistPipeline

/// `qdist tiny-model`: a small random model with a working tokenizer, for tests and trying
/// qdist without downloading anything.
struct TinyModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tiny-model",
        abstract: "Write a small random Llama/Qwen2 model folder with a real BPE tokenizer.",
        discussion: """
            The weights are seeded random (same seed, same model); the tokenizer is byte-level BPE \
            trained on a built-in English text, with ChatML special tokens. Its perplexity is high \
            (it learned nothing), but every qdist command runs on it exactly as on a real model.

            Examples:
              qdist tiny-model models/tiny
              qdist tiny-model models/tiny-qwen --arch qwen2 --layers 4 --hidden 128 --heads 8 --kv-heads 2
            """)

    @Argument(help: ArgumentHelp("The model folder to write.", valueName: "output"))
    var output: String

    @Option(name: .long, help: "Architecture: llama, qwen2 or mistral.")
    var arch = "llama"

    @Option(name: .long, help: "Decoder blocks.")
    var layers = 2

    @Option(name: .long, help: "Hidden size.")
    var hidden = 64

    @Option(name: .long, help: "Attention heads.")
    var heads = 4

    @Option(name: .customLong("kv-heads"), help: "Key/value heads (grouped-query attention).")
    var kvHeads = 2

    @Option(name: .long, help: "MLP size (default: about 8/3 × hidden).")
    var intermediate: Int?

    @Option(name: .long, help: "Vocabulary size (≥ 259: 3 specials + 256 bytes + merges).")
    var vocab = 512

    @Option(name: .long, help: "Seed of the random weights.")
    var seed: UInt64 = 0

    @Flag(name: .long, help: "Tie the output head to the embedding.")
    var tied = false

    @Flag(name: .long, help: "Replace the output folder if it exists.")
    var overwrite = false

    func validate() throws {
        for (name, v) in [("--layers", layers), ("--hidden", hidden), ("--heads", heads), ("--kv-heads", kvHeads)] where v < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
    }

    func run() throws {
        var o = TinyModel.Options()
        (o.arch, o.layers, o.hidden, o.heads, o.kvHeads) = (arch, layers, hidden, heads, kvHeads)
        (o.intermediate, o.vocab, o.seed, o.tied) = (intermediate, vocab, seed, tied)
        do {
            let config = try TinyModel.write(to: URL(fileURLWithPath: output), options: o, overwrite: overwrite)
            print("wrote \(output): \(config.modelType), \(config.numHiddenLayers) layers, hidden \(config.hiddenSize), "
                  + "\(config.numAttentionHeads)/\(config.numKeyValueHeads) heads, vocab \(config.vocabSize), "
                  + "\(ConsoleOutput.count(Double(config.parameterCount))) parameters")
        } catch {
            throw ConsoleOutput.fail("tiny-model", "\(error)")
        }
    }
}
