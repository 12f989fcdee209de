import ArgumentParser
import Foundation
import QDistComm
import QDistPipeline
import QDistQuant

/// `qdist generate`: see what a (quantized) model says, token by token.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a prompt, streaming tokens as they come.",
        discussion: """
            Greedy by default (--temperature 0); with a temperature, samples from the nucleus of \
            --top-p probability mass with a seeded generator, so runs repeat exactly. --chat wraps \
            the prompt in the model's chat format (ChatML for SmolLM2 and Qwen2, with the \
            template's default system prompt unless --system is given). Speed goes to stderr.

            Examples:
              qdist generate --model models/smollm2 --chat --prompt "What is the capital of France?"
              qdist generate --model model.gguf --prompt "Once upon a time" --temperature 0.8 --top-p 0.95 --seed 7
              qdist generate --model models/smollm2 --adapter runs/lora --chat --prompt "Summarize LoRA in one line."
            """)

    @Option(name: .long, help: ArgumentHelp("Model folder or .gguf file.", valueName: "path"))
    var model: String

    @OptionGroup var adapterOptions: AdapterOptions

    @OptionGroup var kernelOptions: KernelOptions

    @Option(name: .long, help: "The prompt text.")
    var prompt: String

    @Option(name: .long, help: "Most tokens to generate.")
    var maxTokens = 128

    @Option(name: .long, help: "Sampling temperature; 0 is greedy.")
    var temperature = 0.0

    @Option(name: .long, help: "Nucleus sampling: keep the most likely tokens up to this probability mass.")
    var topP = 1.0

    @Option(name: .long, help: "Seed of the sampler.")
    var seed: UInt64 = 0

    @Flag(name: .long, help: "Wrap the prompt in the model's chat format.")
    var chat = false

    @Option(name: .long, help: "System prompt for --chat (default: the chat template's own).")
    var system: String?

    @Flag(name: .long, help: "Print one JSON object at the end instead of streaming.")
    var json = false

    func validate() throws {
        if maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
        if !(temperature >= 0 && temperature.isFinite) { throw ValidationError("--temperature must be a finite number, 0 or more") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
    }

    func run() throws {
        try DistributedJob.run("generate") { comm in
            guard comm.isMain else { return }  // nothing to share: other ranks wait at finalize
            let bundle = try adapterOptions.openModel(model)
            var llama = try bundle.loadModel()
            let sparseLinears = kernelOptions.prepare(&llama, inputRows: 1)  // decode steps; prefill runs dense
            let tokenizer = bundle.tokenizer
            var text = prompt
            if chat {
                guard let format = ChatFormat.detect(hasToken: { tokenizer.tokenID(for: $0) != nil },
                                                     chatTemplate: bundle.chatTemplate, systemPrompt: system) else {
                    throw ValidationError("\(model): --chat needs a ChatML vocabulary (<|im_start|>, <|im_end|>)")
                }
                text = format.prompt(user: prompt)
            }
            var ids = tokenizer.encode(text, addSpecialTokens: !chat)
            if ids.isEmpty, let bos = tokenizer.bosTokenID { ids = [bos] }
            var stop = Set(tokenizer.eosTokenIDs)
            if chat, let end = tokenizer.tokenID(for: "<|im_end|>") { stop.insert(end) }
            var sampler = TokenSampler(temperature: temperature, topP: topP, seed: seed)
            let result = TextGeneration.run(model: llama, tokenizer: tokenizer, promptTokens: ids, maxTokens: maxTokens,
                                            sampler: &sampler, stopTokens: stop) { piece in
                if !json { FileHandle.standardOutput.write(Data(piece.utf8)) }
            }
            if json {
                var report: [String: Any] = [
                    "text": result.text, "tokens": result.tokens, "prompt_tokens": result.promptTokens,
                    "prompt_seconds": result.promptSeconds, "tokens_per_s": result.tokensPerSecond,
                    "stopped_at_eos": result.stoppedAtEndOfSequence,
                ]
                report.merge(sparseLinears.jsonFields) { a, _ in a }
                try ConsoleOutput.printJSON(report)
            } else {
                print("")
                FileHandle.standardError.write(Data(String(
                    format: "[%d prompt tokens in %.2f s; %d generated at %.1f tokens/s%@%@]\n",
                    result.promptTokens, result.promptSeconds, result.tokens.count, result.tokensPerSecond,
                    result.stoppedAtEndOfSequence ? "; end of sequence" : "",
                    sparseLinears.summary.map { "; " + $0 } ?? "").utf8))
            }
        }
    }
}
