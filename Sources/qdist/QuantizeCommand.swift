import ArgumentParser
import Foundation
import QDistPipeline

/// `qdist quantize`: post-training quantization of a model by a YAML recipe.
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Quantize or prune a model by a recipe of modifiers (GPTQ, round-to-nearest, AWQ, SmoothQuant, HQQ, FP8, NF4; SparseGPT, Wanda) into compressed-tensors, GPTQ, bitsandbytes, float-zero or GGUF format.",
        discussion: """
            The recipe is YAML in llm-compressor's style (see Configs/quantize/): model, output, \
            format (\(CheckpointFormatTable.rows.map(\.name).joined(separator: " | "))), calibration {data, samples, seq_len, seed, sampler}, \
            sequential (block | linear | none) and recipe: one modifier, or a list applied in \
            order to each block — smoothing and pruning modifiers first, then the one that quantizes \
            (recipe: [{SmoothQuantModifier: {smoothing_strength: 0.5}}, {GPTQModifier: {scheme: W8A8}}]). \
            A pruning modifier alone writes the float model with exact zeros \
            (recipe: {SparseGPTModifier: {sparsity: 0.5, mask_structure: "2:4"}}).

            Modifiers:
            \(ModifierRegistry.helpLines.map { "  " + $0 }.joined(separator: "\n"))

            Quantizing modifiers take {targets, ignore, scheme | config_groups}. \
            Schemes: \(SchemePresets.names.joined(separator: ", ")). Flags override the file. \
            Unknown keys, a missing model or a group size that does not divide a layer fail at \
            once with one line, before any output exists; the output folder appears only when \
            complete, with quantization_report.json (per-layer error, smoothing choices, time) inside.

            Examples:
              qdist quantize --config Configs/quantize/smollm2-gptq-w4a16-asym.yaml --model "$(Launch/get-smollm2.sh | tail -n 1)"
              qdist quantize --config Configs/quantize/smollm2-rtn-w8a16.yaml --model models/smollm2 --output out/w8
              qdist quantize --config Configs/quantize/smollm2-sq-w8a8-static.yaml --model models/smollm2
              qdist quantize --config Configs/quantize/smollm2-awq-w4a16-asym.yaml --model models/smollm2
              qdist quantize --config Configs/quantize/smollm2-gptq-gguf-q4_k_m.yaml --model models/smollm2
              qdist quantize --config Configs/quantize/smollm2-gptq-gguf-q4_k_m.yaml --gguf-type Q3_K_M --imatrix smollm2.imatrix --output out/q3.gguf
              qdist quantize --config Configs/quantize/smollm2-gptq-w4a16-asym.yaml --bits-per-weight 3.5 --plan-only
              mpirun -n 4 qdist quantize --config recipe.yaml --samples 32

            Mixed precision (--bits-per-weight 3.5, or budget: {bits_per_weight, candidates, \
            metric, samples, fisher_samples} in the recipe): a sensitivity pass first measures the \
            float model's loss gradient at every linear's output (fisher_samples windows, default \
            8), then forwards it on the first budget.samples windows (default 16), solves every \
            targeted linear with every candidate (W<bits> [g<group>] [sym|asym]; with --format gguf, \
            block types such as Q4_0, Q5_K) and scores it by its Fisher-weighted output error \
            (metric fisher; kl takes the Fisher of labels sampled from the model; or output_error, \
            gptq_loss). An exact knapsack picks one candidate per \
            linear under the budget, counting codes, scales, zero points and shape records as the \
            file holds them. The plan is printed and kept in quantization_report.json; the output \
            is compressed-tensors with one config group per chosen scheme, or a GGUF with a block \
            type per tensor. --plan-only stops after the plan.

            GGUF (--format gguf with scheme: GGUF): every tensor takes the block type of the \
            llama-quantize mix (--gguf-type); GPTQModifier chooses the codes on the scales \
            llama.cpp's encoder picks (importance from each linear's Hessian diagonal, or --imatrix \
            FILE), QuantizationModifier writes exactly llama-quantize's bytes. The output is the \
            .gguf file itself.

            Under mpirun, ranks split the calibration windows, each linear is solved by one rank \
            (or a share of its rows), and each rank writes its own shard of the output. Finished \
            blocks are recorded beside the output (.<output>.qdist-partial/): after a crash, the \
            same command resumes after the last recorded block (also on another number of ranks).
            """)

    @Option(name: .long, help: ArgumentHelp("The recipe YAML file.", valueName: "file"))
    var config: String

    @Option(name: .long, help: ArgumentHelp("Model folder or .gguf (overrides the recipe's model).", valueName: "path"))
    var model: String?

    @Option(name: .long, help: ArgumentHelp("Output folder, or the .gguf file for --format gguf (overrides the recipe's output).", valueName: "path"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("Output format (overrides the recipe): \(CheckpointFormatTable.helpLines.joined(separator: "; ")).", valueName: "format"))
    var format: String?

    @Option(name: .long, help: ArgumentHelp("For --format gguf: the llama-quantize mix (Q4_K_M, Q3_K_M, Q4_0, Q8_0 …; overrides gguf.type).", valueName: "mix"))
    var ggufType: String?

    @Option(name: .long, help: ArgumentHelp("For --format gguf: importance vectors — hessian (default: each linear's calibration Hessian diagonal), none, or an imatrix file (llama-imatrix's or qdist imatrix's).", valueName: "file"))
    var imatrix: String?

    @Option(name: .long, help: "Scheme preset for every config group (overrides the recipe's scheme).")
    var scheme: String?

    @Option(name: .long, help: ArgumentHelp("Calibration text (.txt or .jsonl with \"text\").", valueName: "file"))
    var data: String?

    @Option(name: .long, help: "Calibration windows.")
    var samples: Int?

    @Option(name: .long, help: "Tokens per calibration window.")
    var seqLen: Int?

    @Option(name: .long, help: "Seed of the calibration window offsets.")
    var seed: UInt64?

    @Option(name: .long, help: ArgumentHelp("How window offsets are drawn: splitmix64 (default) or python_random (Python's random.seed(seed); random.randint(0, tokens − seq_len) per window, the draw of llm-compressor reference scripts, for window-for-window comparisons).", valueName: "sampler"))
    var sampler: String?

    @Option(name: .long, help: ArgumentHelp("Mixed precision: give each targeted linear one of the budget's candidate schemes (default \(BudgetConfig.defaultCandidates.joined(separator: ", "))), chosen by measured sensitivity, so the quantized linears take at most this many bits per weight all-in (overrides budget.bits_per_weight).", valueName: "bits"))
    var bitsPerWeight: Double?

    @Flag(name: .long, help: "With a budget: measure sensitivities, print the allocation and the predicted size (--json: the plan), and write nothing.")
    var planOnly = false

    @Flag(name: .long, help: "Replace the output folder if it exists.")
    var overwrite = false

    @Flag(name: .long, help: "Print the report as one JSON object.")
    var json = false

    @Flag(name: .long, help: "Discard the blocks (and a budget's plan) an interrupted run of this job recorded, instead of resuming after them.")
    var noResume = false

    @Option(name: .customLong("inject-failure"), help: ArgumentHelp(visibility: .hidden))
    var injectFailure: String?

    @Option(name: .long, help: ArgumentHelp("Stop once block K is recorded (exit 3); the same command resumes after it. Splits a long job across short allocations.", valueName: "K"))
    var stopAfterBlock: Int?

    func run() throws {
        try DistributedJob.run("quantize") { comm in
            var job = try QuantizeJobSetup.resolve(recipePath: config, model: model, output: output, format: format,
                                                   scheme: scheme, data: data, samples: samples, seqLen: seqLen,
                                                   seed: seed, sampler: sampler,
                                                   overwrite: overwrite, resume: !noResume, stopAfterBlock: stopAfterBlock,
                                                   ggufType: ggufType, imatrix: imatrix, bitsPerWeight: bitsPerWeight, planOnly: planOnly)
            if let spec = injectFailure {
                let parts = spec.split(separator: ":").compactMap { Int($0) }
                guard parts.count == 2 else { throw ValidationError("--inject-failure takes RANK:BLOCK") }
                job.injectedFailure = (parts[0], parts[1])
            }
            if planOnly, let budget = job.budget {
                let plan = try SequentialQuantizer.planBudget(job, budget: budget, communicator: comm) { line in
                    if comm.isMain && !json { print(line) }
                }
                guard comm.isMain else { return }
                if json {
                    print(String(decoding: plan.jsonValue.serialized(.pretty(sortKeys: false)), as: UTF8.self))
                } else {
                    print(String(format: "predicted size of the %d quantized linears: %.1f MB (%.4f bits per weight); nothing written",
                                 plan.names.count, Double(plan.totalBits) / 8e6, plan.bitsPerWeight))
                }
                return
            }
            if comm.isMain && !json {
                let what = job.plan.pruneOnly ? "\(job.plan.prunedFloat.count) linears pruned (float output)"
                    : "\(job.plan.entries.count) linears" + (job.plan.prunedFloat.isEmpty ? "" : " + \(job.plan.prunedFloat.count) pruned in float")
                print("quantize: \(job.recipeName): \(what), \(job.plan.recipeName)"
                      + (job.plan.pruneOnly && job.format == .compressedTensors ? "" : ", \(job.format.rawValue)")
                    + (job.plan.gguf.map { " \($0.mix.name)" } ?? "") + " → \(job.output.path)")
            }
            let report = try SequentialQuantizer.run(job, communicator: comm) { line in
                if comm.isMain && !json { print(line) }
            }
            guard comm.isMain else { return }
            if json {
                print(String(decoding: report.jsonValue.serialized(.pretty(sortKeys: false)), as: UTF8.self))
            } else {
                print(report.table())
                print(String(format: "done in %.1f s (forward %.1f s, solve %.1f s, collectives %.1f s, write %.1f s); wrote %@",
                             report.seconds["total"] ?? 0, report.seconds["forward"] ?? 0, report.seconds["solve"] ?? 0,
                             report.seconds["collectives"] ?? 0, report.seconds["write"] ?? 0, job.output.path))
                if report.worldSize > 1 {
                    for (r, t) in report.perRank.enumerated() {
                        let rss = r < report.peakResidentBytesPerRank.count ? Double(report.peakResidentBytesPerRank[r]) / 1e9 : 0
                        let anon = r < report.peakAnonymousBytesPerRank.count ? Double(report.peakAnonymousBytesPerRank[r]) / 1e9 : 0
                        print(String(format: "  rank %d: forward %.1f s, solve %.1f s, collectives %.1f s, io %.1f s, peak RSS %.2f GB (private %.2f GB)",
                                     r, t["forward"] ?? 0, t["solve"] ?? 0, t["collectives"] ?? 0, t["io"] ?? 0, rss, anon))
                    }
                }
            }
        }
    }
}
