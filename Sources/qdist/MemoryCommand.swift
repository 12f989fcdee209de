import ArgumentParser
import Foundation
import QDistIO
import QDistQuant
import QDistTrain

/// `qdist memory`: how many bytes a model needs per rank, for inference at a format or for
/// training under a ZeRO stage, before anyone buys hardware or waits for an out-of-memory.
struct MemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Predict memory per rank: weights at a format, or training state under ZeRO stages 0–3.",
        discussion: """
            Inference: bytes of the weights at --dtype (see `qdist formats`). Integer formats \
            count codes only unless --group-size adds one fp16 scale per group (and \
            --zero-point one packed zero). With --model, the decoder's linear layers take \
            --dtype and the rest (embeddings, norms, lm_head) stay fp16, as a quantized \
            checkpoint stores them.

            Training (--train): the ZeRO paper's accounting of model states per rank for \
            mixed-precision Adam — fp16 weights 2Ψ, fp16 gradients 2Ψ, optimizer state 12Ψ — with \
            stage 1 sharding the optimizer state across --world-size ranks, stage 2 also the \
            gradients, stage 3 also the weights. With --lora-rank it is QLoRA instead: the frozen \
            base in NF4 with double-quantized absmax, fp32 LoRA adapters with fp32 gradients \
            and AdamW state (16 bytes per trainable parameter), sharded by the same stages. \
            Activations and temporary buffers come on top.

            With --model and --lora-rank the table also splits QLoRA's memory the way             `qdist finetune` reports it — base weights, adapters, gradients, optimizer state, and             activations of one --micro-batch-size × --seq-len micro-batch under per-block             gradient checkpointing (plus the stage's transient buffers: the full gradient             scratch from stage 2, one gathered block and the embedding at stage 3).             --base-dtype matches the finetune config's bnb_4bit_quant_type (nf4_dq for nf4, the default; fp32 for fp32).

            Examples:
              qdist memory --params 7e9 --dtype fp16              # 14.0 GB
              qdist memory --params 7e9 --dtype int4 --group-size 128
              qdist memory --params 7.5e9 --train --zero-stage 3 --world-size 64
              qdist memory --model models/smollm2 --train --lora-rank 16 --zero-stage 2 --world-size 4
              qdist memory --model models/smollm2 --train --lora-rank 16 --zero-stage 3 --world-size 2 --base-dtype fp32 --seq-len 128 --micro-batch-size 2
            """)

    @Option(name: .long, help: ArgumentHelp("Parameter count: 7e9, 7B, 135M.", valueName: "count"))
    var params: ParameterCount?

    @Option(name: .long, help: ArgumentHelp("A model folder (config.json + safetensors) to count and shape.", valueName: "path"))
    var model: String?

    @Option(name: .long, help: ArgumentHelp("Storage format of the weights (`qdist formats` lists them).", valueName: "format"))
    var dtype: String = "fp16"

    @Option(name: .long, help: "Weights per fp16 scale, for integer formats (e.g. 128).")
    var groupSize: Int?

    @Flag(name: .long, help: "Also count one packed zero point per group (asymmetric integer formats).")
    var zeroPoint = false

    @Flag(name: .long, help: "Estimate training instead of inference.")
    var train = false

    @Option(name: .long, help: "ZeRO stage 0–3 for --train.")
    var zeroStage: Int = 0

    @Option(name: .long, help: "Data-parallel ranks for --train.")
    var worldSize: Int = 1

    @Option(name: .long, help: "LoRA rank: estimate QLoRA (NF4 base + LoRA) instead of full training.")
    var loraRank: Int?

    @Option(name: .long, help: ArgumentHelp("Trainable LoRA parameters, when no --model gives the layer shapes.", valueName: "count"))
    var loraParams: ParameterCount?

    @Option(name: .long, help: "QLoRA with --model: tokens per sequence, for the activation estimate.")
    var seqLen: Int = 512

    @Option(name: .long, help: "QLoRA with --model: sequences per forward/backward on one rank.")
    var microBatchSize: Int = 1

    @Option(name: .long, help: ArgumentHelp("QLoRA: format of the frozen base's decoder linears (nf4_dq, fp32, …).", valueName: "format"))
    var baseDtype: String = "nf4_dq"

    @Flag(name: .long, help: "Print one JSON object for scripts.")
    var json = false

    func validate() throws {
        if (params == nil) == (model == nil) { throw ValidationError("give exactly one of --params or --model") }
        if NumberFormat.named(dtype) == nil {
            throw ValidationError("unknown --dtype '\(dtype)'; `qdist formats` lists the known formats")
        }
        if let g = groupSize, g <= 0 { throw ValidationError("--group-size must be positive") }
        if groupSize != nil, NumberFormat.named(dtype)?.family != .integer {
            throw ValidationError("--group-size applies to integer formats; \(dtype) fixes its own scale layout")
        }
        if !(0...3).contains(zeroStage) { throw ValidationError("--zero-stage must be 0, 1, 2 or 3") }
        if worldSize < 1 { throw ValidationError("--world-size must be at least 1") }
        if let r = loraRank, r < 1 { throw ValidationError("--lora-rank must be at least 1") }
        if !train, loraRank != nil || loraParams != nil || zeroStage != 0 || worldSize != 1 {
            throw ValidationError("--zero-stage, --world-size, --lora-rank and --lora-params need --train")
        }
        if NumberFormat.named(baseDtype) == nil { throw ValidationError("unknown --base-dtype '\(baseDtype)'") }
        if seqLen < 2 || microBatchSize < 1 { throw ValidationError("--seq-len must be ≥ 2 and --micro-batch-size ≥ 1") }
        if train, loraRank != nil, model == nil, loraParams == nil {
            throw ValidationError("--lora-rank with --params needs --lora-params (or use --model to get layer shapes)")
        }
    }

    func run() throws {
        let summary: ModelParameterSummary
        do {
            summary = try model.map(ModelInventory.summary(ofModelAt:)) ?? ModelParameterSummary(total: params!.value)
        } catch {
            throw ConsoleOutput.fail("memory", "\(error)")
        }
        let format = NumberFormat.named(dtype)!
        let fp16 = NumberFormat.named("fp16")!
        var report: [String: Any] = ["parameters": summary.total, "linear_parameters": summary.linear]
        var lines = ["parameters: \(ConsoleOutput.count(summary.total))"]

        if !train {
            let bytes = MemoryEstimator.inferenceBytes(summary, format: format, groupSize: groupSize,
                                                       zeroPoint: zeroPoint, keptFormat: fp16)
            let total = bytes.linear + bytes.other
            let bits = format.bitsPerWeight(groupSize: groupSize, zeroPoint: zeroPoint)
            report["inference"] = ["dtype": format.name, "bits_per_weight": bits, "group_size": groupSize as Any,
                                   "linear_bytes": bytes.linear, "other_bytes": bytes.other, "weight_bytes": total]
            lines.append("weights at \(format.name) (\(String(format: "%.4g", bits)) bits/weight): \(ConsoleOutput.bytes(total)) (\(ConsoleOutput.binaryBytes(total)))")
            if summary.linear < summary.total {
                lines.append("  decoder linears: \(ConsoleOutput.bytes(bytes.linear)); embeddings, norms, lm_head at fp16: \(ConsoleOutput.bytes(bytes.other))")
            }
            if format.family == .integer && groupSize == nil {
                lines.append("  (codes only: add --group-size to count scales)")
            }
        } else {
            let lora = loraRank.map { r in loraParams?.value ?? summary.loraParameters(rank: r) }
            let baseFormat = NumberFormat.named(baseDtype)!
            // `qdist finetune` keeps embeddings, norms and the head in fp32 whatever the linears' format.
            let keptFormat = NumberFormat.named("fp32")!
            func estimate(_ stage: Int) -> RankMemory {
                guard let lora else {
                    return MemoryEstimator.fullTraining(parameters: summary.total, zeroStage: stage, worldSize: worldSize)
                }
                return MemoryEstimator.qloraTraining(summary, loraParameters: lora, zeroStage: stage, worldSize: worldSize,
                                                     baseFormat: baseFormat, keptFormat: keptFormat)
            }
            let chosen = estimate(zeroStage)
            report["training"] = [
                "mode": lora == nil ? "full" : "qlora", "zero_stage": zeroStage, "world_size": worldSize,
                "lora_rank": loraRank as Any, "lora_parameters": lora as Any,
                "per_rank": ["weights": chosen.weights, "gradients": chosen.gradients,
                             "optimizer_state": chosen.optimizerState, "total": chosen.total],
                "per_rank_total_by_stage": (0...3).map { estimate($0).total },
            ]
            lines.append(lora == nil
                ? "full fine-tuning, mixed-precision Adam (16 bytes/parameter before sharding)"
                : "QLoRA rank \(loraRank!): \(ConsoleOutput.count(lora!)) trainable parameters, \(baseFormat.name == "nf4_dq" ? "NF4 (double-quant)" : baseFormat.name) base")
            lines.append("world size \(worldSize), per rank:")
            var table = [["ZeRO stage", "weights", "gradients", "optimizer", "total"]]
            for stage in 0...3 {
                let m = estimate(stage)
                table.append(["\(stage)\(stage == zeroStage ? " *" : "")", ConsoleOutput.bytes(m.weights),
                              ConsoleOutput.bytes(m.gradients), ConsoleOutput.bytes(m.optimizerState), ConsoleOutput.bytes(m.total)])
            }
            lines.append(ConsoleOutput.table(table, rightAligned: [1, 2, 3, 4]))
            lines.append("(* = --zero-stage \(zeroStage); activations and buffers not included)")
            if let r = loraRank, let path = model, loraParams == nil {
                let config = try ModelConfiguration.load(from: URL(fileURLWithPath: path))
                let shape = LoRAShapeSummary.allLinear(config, rank: r)
                func byCategory(_ stage: Int) -> FinetuneRankMemory {
                    MemoryEstimator.finetune(summary, config: config, lora: shape, microBatchSize: microBatchSize, seqLen: seqLen,
                                             zeroStage: stage, worldSize: worldSize, baseFormat: baseFormat, keptFormat: keptFormat)
                }
                var training = report["training"] as! [String: Any]
                training["per_rank_by_category"] = Dictionary(uniqueKeysWithValues: byCategory(zeroStage).categories.map { ($0.name, $0.bytes) })
                training["per_rank_by_category_by_stage"] = (0...3).map { stage in
                    Dictionary(uniqueKeysWithValues: byCategory(stage).categories.map { ($0.name, $0.bytes) })
                }
                training["base_dtype"] = baseFormat.name
                report["training"] = training
                lines.append("")
                lines.append("by category as `qdist finetune` reports it (base \(baseFormat.name), micro-batch \(microBatchSize) × \(seqLen) tokens):")
                var rows = [["ZeRO stage", "base weights", "adapters", "gradients", "optimizer", "activations", "total"]]
                for stage in 0...3 {
                    let m = byCategory(stage)
                    rows.append(["\(stage)\(stage == zeroStage ? " *" : "")"] + m.categories.map { ConsoleOutput.bytes($0.bytes) }
                                + [ConsoleOutput.bytes(m.total)])
                }
                lines.append(ConsoleOutput.table(rows, rightAligned: [1, 2, 3, 4, 5, 6]))
            }
        }
        if json { try ConsoleOutput.printJSON(report) } else { print(lines.joined(separator: "\n")) }
    }
}

/// A parameter count as people write it: `7e9`, `7B`, `135M`, `1.5k`, `123456`.
struct ParameterCount: ExpressibleByArgument, Sendable {
    let value: Double

    init?(argument: String) {
        let s = argument.trimmingCharacters(in: .whitespaces).uppercased()
        let suffixes: [Character: Double] = ["K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12]
        var scale = 1.0
        var digits = Substring(s)
        if let last = s.last, let m = suffixes[last] { scale = m; digits = s.dropLast() }
        guard let v = Double(digits), v.isFinite, v > 0 else { return nil }
        value = v * scale
    }
}
