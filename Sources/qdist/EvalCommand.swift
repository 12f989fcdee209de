import ArgumentParser
import Foundation
import QDistComm
import QDistModel
import QDistPipeline
import QDistQuant

/// `qdist eval`: perplexity of a model on a text file, by qdist's fixed protocol, so numbers
/// before and after quantization (and against transformers) are comparable.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Measure perplexity (and speed, memory) of a model on a text file.",
        discussion: """
            Protocol: the whole file is read as UTF-8 and tokenized once without BOS; it is cut \
            into non-overlapping windows of --seq-len tokens; the first --windows of them are \
            scored (default: all); ppl = exp(mean NLL over the seq-len − 1 predicted tokens of \
            every window). Under mpirun the windows are split across ranks and the result is the \
            same for every world size.

            MODEL is a Hugging Face folder (config.json, *.safetensors, tokenizer.json) or a .gguf.

            Examples:
              qdist eval --model models/smollm2 --data ../shared/data/wikitext-2/test.txt --windows 40
              mpirun -n 4 qdist eval --model models/smollm2 --data test.txt --json
              qdist eval --model models/smollm2 --adapter runs/lora --no-nf4 --data test.txt --windows 40
            """)

    @Option(name: .long, help: ArgumentHelp("Model folder or .gguf file.", valueName: "path"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("UTF-8 text file to score.", valueName: "file"))
    var data: String

    @Option(name: .long, help: "Tokens per window.")
    var seqLen = 512

    @Option(name: .long, help: "Score only the first N windows (default: all).")
    var windows: Int?

    @Flag(name: .long, help: "llama.cpp's llama-perplexity protocol: score only the second half of every window (positions ≥ seq-len/2), for numbers comparable with it.")
    var secondHalf = false

    @Flag(name: .long, help: "With a .gguf MODEL: round every linear's input as llama.cpp's CPU kernels do before their dot products (Q8_0/Q8_1 blocks of 32 for Q4_0…Q8_0 weights, Q8_K blocks of 256 for k-quants and TQ types, F16/BF16 for half weights), so the perplexity is what llama-perplexity measures on the file. Default: float32 inputs, the file's own quality.")
    var llamacppActivations = false

    @Flag(name: .long, help: "Print one JSON object (keys: ppl, tokens, tokens_per_s, peak_rss_bytes, ...; outlier_columns per LLM.int8 linear).")
    var json = false

    @OptionGroup var adapterOptions: AdapterOptions

    @OptionGroup var kernelOptions: KernelOptions

    @Option(name: .customLong("dump-logits"), help: ArgumentHelp(visibility: .hidden))
    var dumpLogits: String?

    func validate() throws {
        if seqLen < 2 { throw ValidationError("--seq-len must be at least 2") }
        if let w = windows, w < 1 { throw ValidationError("--windows must be at least 1") }
        if llamacppActivations, adapterOptions.adapter != nil || adapterOptions.useNF4 {
            throw ValidationError("--llamacpp-activations evaluates a .gguf as llama.cpp runs it; it does not combine with --adapter or --nf4")
        }
    }

    func run() throws {
        try DistributedJob.run("eval") { comm in
            let loadStart = Date()
            // With --nf4 alone, build the QLoRA frozen base (below) from the stored weights; with an
            // adapter, openModel rounds the base through NF4 (unless --no-nf4) and applies it.
            let bundle = try adapterOptions.adapter == nil ? ModelBundle.open(model) : adapterOptions.openModel(model)
            // --nf4 builds the QLoRA frozen base itself (block by block), so the run can say what
            // it holds and how long it took, then evaluates its dequantized weights.
            var nf4Base: (memory: NF4FrozenBase.Memory, seconds: Double)?
            var llama: LlamaModel
            if adapterOptions.useNF4 && adapterOptions.adapter == nil {
                let base = try NF4FrozenBase.build(from: bundle.weights, config: bundle.config)
                nf4Base = (base.memory, Date().timeIntervalSince(loadStart))
                llama = try base.dequantizedModel()
            } else if llamacppActivations {
                guard let gguf = bundle.gguf else {
                    throw ValidationError("--llamacpp-activations needs a .gguf model; \(model) is a folder")
                }
                llama = try LlamaModel.load(config: bundle.config, from: LlamaCppActivationWeights(gguf))
            } else {
                llama = try bundle.loadModel()
            }
            // A window's forward is seq-len − 1 tokens: past the kernels' limits (8 tokens for 2:4)
            // nothing runs sparse, so nothing is compressed and the count is 0.
            let sparseLinears = kernelOptions.prepare(&llama, inputRows: seqLen - 1)
            let loadSeconds = Date().timeIntervalSince(loadStart)
            let context = bundle.config.maxPositionEmbeddings
            if seqLen > context, comm.isMain {
                FileHandle.standardError.write(Data("qdist eval: warning: --seq-len \(seqLen) is longer than the model's context (max_position_embeddings \(context)); positions past it were never trained, so this perplexity says little\n".utf8))
            }
            let tokens = try TextTokens.load(data, tokenizer: bundle.tokenizer, communicator: comm)
            if let dumpLogits, comm.isMain, tokens.count >= seqLen {
                // The first window's logits for the predicted positions, float32 little-endian,
                // for Benchmarks/transformers_reference.py --compare-logits.
                let logits = llama.logits(Array(tokens[0..<seqLen - 1]))
                try logits.scalars.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dumpLogits)) }
            }
            // LLM.int8 linears count the input columns they keep in float (the report below).
            let tallies = llama.attachOutlierTallies()
            let result = try PerplexityEvaluation.run(model: llama, tokens: tokens, seqLen: seqLen,
                                                      windowLimit: windows, scoreFrom: secondHalf ? seqLen / 2 : 0, communicator: comm)
            let outliers = try OutlierColumnReport.combine(tallies, communicator: comm)
            let threshold = llama.blocks.first.flatMap { b -> Float? in
                if case .llmInt8(let t) = b.weights.down.inputQuantizer?.mode { return t }
                return nil
            }
            guard comm.isMain else { return }
            if result.windows == 0 {
                throw ValidationError("\(data): \(tokens.count) tokens make no window of \(seqLen)")
            }
            let peak = result.peakResidentBytesPerRank.max() ?? 0
            if json {
                var report: [String: Any] = [
                    "ppl": result.perplexity, "mean_nll": result.meanNegativeLogLikelihood,
                    "tokens": result.windows * seqLen, "predicted_tokens": result.predictedTokens,
                    "windows": result.windows, "seq_len": seqLen, "file_tokens": tokens.count,
                    "tokens_per_s": result.tokensPerSecond, "seconds": result.seconds, "load_seconds": loadSeconds,
                    "peak_rss_bytes": peak, "peak_rss_bytes_per_rank": result.peakResidentBytesPerRank,
                    "world_size": comm.size, "second_half": secondHalf, "llamacpp_activations": llamacppActivations, "model": model, "data": data, "nf4": adapterOptions.useNF4, "adapter": adapterOptions.adapter ?? NSNull(),
                ]
                report.merge(sparseLinears.jsonFields) { a, _ in a }
                if !outliers.isEmpty {
                    report["llm_int8_threshold"] = threshold.map { Double($0) } ?? NSNull()
                    report["outlier_columns"] = outliers.map { l -> [String: Any] in
                        ["layer": l.name, "share": l.counts.share, "outlier_columns": l.counts.outlierColumns,
                         "columns": l.counts.columns, "calls": l.counts.calls, "max_outlier_columns": l.counts.maxOutlierColumns]
                    }
                }
                if let (m, seconds) = nf4Base {
                    report["nf4_base_bytes"] = m.totalBytes
                    report["nf4_base_float32_bytes"] = m.float32EquivalentBytes
                    report["nf4_bits_per_parameter"] = m.bitsPerFourBitParameter
                    report["nf4_build_seconds"] = seconds
                }
                try ConsoleOutput.printJSON(report)
            } else {
                print(String(format: "ppl %.4f  (mean NLL %.5f over %d predicted tokens, %d windows × %d)",
                             result.perplexity, result.meanNegativeLogLikelihood, result.predictedTokens, result.windows, seqLen))
                print(String(format: "speed %.1f tokens/s on %d rank%@ (%.1f s; model load %.1f s); peak RSS %@ per rank",
                             result.tokensPerSecond, comm.size, comm.size == 1 ? "" : "s", result.seconds, loadSeconds,
                             ConsoleOutput.binaryBytes(Double(peak))))
                OutlierColumnReport.summary(outliers, threshold: threshold).forEach { print($0) }
                if let summary = sparseLinears.summary { print(summary + " (--dense: none)") }
                if let (m, seconds) = nf4Base {
                    print(String(format: "NF4 base %@ (4-bit linears %@ at %.3f bits/param + float32 %@; %@ in float32), built in %.1f s",
                                 ConsoleOutput.binaryBytes(Double(m.totalBytes)), ConsoleOutput.binaryBytes(Double(m.fourBitBytes)),
                                 m.bitsPerFourBitParameter, ConsoleOutput.binaryBytes(Double(m.float32Bytes)),
                                 ConsoleOutput.binaryBytes(Double(m.float32EquivalentBytes)), seconds))
                }
            }
        }
    }
}
