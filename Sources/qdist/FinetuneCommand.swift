import ArgumentParser
import Foundation
import QDistIO
import QDistPipeline

/// `qdist finetune`: LoRA fine-tuning of a frozen base, data-parallel under ZeRO stages 0–3,
/// writing a PEFT adapter.
struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "LoRA fine-tuning, data-parallel with ZeRO stages 0–3; writes a PEFT adapter.",
        discussion: """
            The config is YAML (see Configs/finetune/): model, output, data (.txt cut into \
            seq_len windows; .jsonl with "text", or "prompt" and "completion" with the loss on \
            the completion only), seq_len, micro_batch_size, global_batch_size (or \
            gradient_accumulation_steps), steps, learning_rate, warmup_steps (then cosine decay), \
            weight_decay, max_grad_norm, adam_beta1/adam_beta2/adam_epsilon, seed, save_steps, \
            lora: {r, lora_alpha, lora_dropout, target_modules, use_rslora} as PEFT names them, \
            and zero_optimization: {stage} as DeepSpeed does. Unknown keys fail with one line \
            naming file, line and key. Flags override the file.

            Each global batch is split across the ranks and every loss is normalized by the \
            global batch's token count, so the losses do not depend on the number of ranks. \
            ZeRO 1 shards AdamW's state, 2 also the gradients, 3 also the LoRA parameters and the \
            frozen base (gathered block by block). Every save_steps steps each rank writes its \
            shard to <output>/checkpoints; running the same command again resumes from the last \
            one, on any number of ranks. Rank 0 prints step, loss, learning rate, tokens/s and \
            ETA on stderr, and at the end the per-rank memory by category.

            Examples:
              qdist finetune --config Configs/finetune/smollm2-qlora.yaml --steps 20
              mpirun -n 2 qdist finetune --config Configs/finetune/smollm2-qlora.yaml --model "$(Launch/get-smollm2.sh | tail -n 1)" --output out/ft --zero-stage 3
              mpirun -n 4 qdist finetune --config C.yaml --stop-after 100   # then run again to continue
            """)

    @Option(name: .long, help: ArgumentHelp("The finetune config YAML file.", valueName: "file"))
    var config: String

    @Option(name: .long, help: ArgumentHelp("Base model folder (overrides the config's model).", valueName: "path"))
    var model: String?

    @Option(name: .long, help: ArgumentHelp("Output folder for the adapter and checkpoints (overrides output).", valueName: "dir"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("Training data, .txt or .jsonl (overrides data).", valueName: "file"))
    var data: String?

    @Option(name: .long, help: "ZeRO stage 0–3 (overrides zero_optimization.stage).")
    var zeroStage: Int?

    @Option(name: .long, help: "Optimizer steps in all (overrides steps; also sets the cosine schedule's length).")
    var steps: Int?

    @Option(name: .long, help: "End this run after this many completed steps, writing a checkpoint; run again to resume.")
    var stopAfter: Int?

    @Flag(name: .long, help: "Delete the output folder (adapter and checkpoints) and start afresh.")
    var overwrite = false

    @Flag(name: .long, help: "Print a summary as one JSON object on stdout.")
    var json = false

    func validate() throws {
        if let z = zeroStage, !(0...3).contains(z) { throw ValidationError("--zero-stage must be 0, 1, 2 or 3") }
        if let s = steps, s < 1 { throw ValidationError("--steps must be at least 1") }
        if let s = stopAfter, s < 1 { throw ValidationError("--stop-after must be at least 1") }
    }

    func run() throws {
        try DistributedJob.run("finetune") { comm in
            let job = try FinetuneJob.resolve(
                configPath: config,
                overrides: FinetuneOverrides(model: model, output: output, data: data, zeroStage: zeroStage, steps: steps,
                                             stopAfter: stopAfter, overwrite: overwrite))
            let report = try FinetuneRun.run(job, communicator: comm) { line in
                if comm.isMain { FileHandle.standardError.write(Data((line + "\n").utf8)) }
            }
            guard comm.isMain else { return }
            if json {
                print(String(decoding: report.jsonValue.serialized(.pretty(sortKeys: false)), as: UTF8.self))
            } else {
                print(summary(report))
            }
        }
    }

    /// The human summary: losses, speed and the per-rank memory table.
    func summary(_ r: FinetuneReport) -> String {
        var lines: [String] = []
        if let first = r.steps.first, let last = r.steps.last {
            lines.append(String(format: "steps %d–%d of %d: loss %.4f → %.4f, %.0f tokens/s over %d rank%@ (%.1f s)",
                                first.step, last.step, r.totalSteps, first.loss, last.loss, r.tokensPerSecond, r.worldSize,
                                r.worldSize == 1 ? "" : "s", r.seconds))
        }
        var table = [["rank", "base weights", "adapters", "gradients", "optimizer", "activations*", "RSS", "peak RSS"]]
        for (rank, m) in r.memoryByRank.enumerated() {
            table.append(["\(rank)"] + m.categories.map { ConsoleOutput.bytes($0.bytes) }
                         + [ConsoleOutput.bytes(r.residentBytesByRank[rank]), ConsoleOutput.bytes(r.peakResidentBytesByRank[rank])])
        }
        table.append(["predicted"] + r.predictedMemory.categories.map { ConsoleOutput.bytes($0.bytes) } + ["", ""])
        lines.append("memory per rank, ZeRO-\(r.zeroStage.rawValue):")
        lines.append(ConsoleOutput.table(table, rightAligned: [1, 2, 3, 4, 5, 6, 7]))
        lines.append("(* estimated for one micro-batch with per-block checkpointing, plus the stage's transient buffers)")
        lines.append(r.stoppedEarly
            ? "stopped after step \(r.startStep + r.steps.count); checkpoint in \(r.output.path)/checkpoints — run again to continue"
            : "wrote \(r.output.path)/adapter_config.json and adapter_model.safetensors")
        return lines.joined(separator: "\n")
    }
}
