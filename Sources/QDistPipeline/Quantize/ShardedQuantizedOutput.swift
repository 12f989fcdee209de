import Foundation
import QDistComm
import QDistIO
import QDistQuant
import QDistTensor

/// Assembles the finished output folder from the recorded blocks: each rank packs the linears it
/// wrote (in the job's format) into its own shard `model-0000r-of-0000P.safetensors` — rank 0's
/// also holds embeddings, norms and an untied head in the model's float dtype — then rank 0
/// writes the index, config.json with the quantization_config, the tokenizer files and the
/// report, and renames the staging folder into place. One rank writes `model.safetensors` with
/// no index, exactly as before, so outputs load the same whatever P was.
///
/// A rank that wrote nothing writes no shard (the index lists only the shards that exist).
/// Block files of ranks beyond the current world (a resume on fewer ranks) go to rank `r mod P`.
enum ShardedQuantizedOutput {
    static func write(row: any FolderFormatRow, job: SequentialQuantizer.Job, progress: QuantizeProgressFolder, report: QuantizationReport,
                      communicator comm: any Communicator) throws {
        let config = job.bundle.config
        let floatType = DType.modelDType(torchDtype: config.torchDtype)
        let scaleType: DType = floatType == .f32 ? .f16 : floatType
        let files = try progress.allFiles(blockCount: config.numHiddenLayers)
        let mine = files.filter { (QuantizeProgressFolder.writerRank(ofFile: $0) ?? 0) % comm.size == comm.rank }

        var tensors: [String: StoredTensor] = [:]
        var schemes: [(name: String, scheme: QuantizedLinearScheme)] = []
        for file in mine {
            for staged in try progress.readLinears(file: file) {
                let linear = staged.weights
                let produced = try row.tensors(for: linear, input: staged.input, plan: job.plan, scaleType: scaleType)
                tensors.merge(produced) { a, _ in a }
                var scheme = linear.scheme
                scheme.inputActivations = staged.input?.scheme
                schemes.append((linear.name, scheme))
            }
        }
        if comm.isMain {
            // Smoothed norms (and unquantized linears) replace the model's own.
            var smoothed: [String: Tensor] = [:]
            for b in 0..<config.numHiddenLayers {
                if let f = try progress.record(b).floatFile { smoothed.merge(try progress.readFloatTensors(file: f)) { a, _ in a } }
            }
            let quantized = Set(job.plan.entries.flatMap { [$0.name + ".weight", $0.name + ".bias"] })
            // Pruned float linears go through the format, which may store them sparse.
            let prunedFloat = Set(job.plan.prunedFloat.map { $0.name + ".weight" })
            for (name, _) in config.tensorShapes where !quantized.contains(name) {
                let weight = try smoothed[name] ?? job.bundle.weights.tensor(name)
                if prunedFloat.contains(name) {
                    let stored = try row.prunedFloatTensors(module: String(name.dropLast(".weight".count)), weight: weight,
                                                                       dtype: floatType, plan: job.plan)
                    tensors.merge(stored) { a, _ in a }
                } else {
                    tensors[name] = StoredTensor(weight, as: floatType)
                }
            }
        }
        let shardName = comm.size == 1 ? "model.safetensors" : ShardedCheckpointWriter.shardFileName(comm.rank + 1, of: comm.size)
        if !tensors.isEmpty {
            try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: progress.staging.appendingPathComponent(shardName))
        }
        // Rank 0 learns every shard's tensors and every linear's scheme, as JSON.
        let myShard: JSONValue = tensors.isEmpty ? .null : .object([
            (key: "file", value: .string(shardName)),
            (key: "tensors", value: .object(tensors.keys.sorted().map { (key: $0, value: .integer(tensors[$0]!.bytes.count)) })),
        ])
        let mySchemes: JSONValue = .array(schemes.map { s in
            .object([
                (key: "name", value: .string(s.name)), (key: "bits", value: .integer(s.scheme.numBits)),
                (key: "symmetric", value: .bool(s.scheme.symmetric)), (key: "group_size", value: s.scheme.groupSize.map { .integer($0) } ?? .null),
                (key: "act_order", value: .bool(s.scheme.actOrder)),
                (key: "type", value: .string(s.scheme.codeType.rawValue)), (key: "per_tensor", value: .bool(s.scheme.perTensor)),
                (key: "fractional_zeros", value: .bool(s.scheme.fractionalZeros)),
                (key: "double_quantized", value: .bool(s.scheme.doubleQuantized)),
                (key: "input", value: s.scheme.inputActivations.map { .string($0.stagingText) } ?? .null),
            ])
        })
        let texts = try comm.allgatherStrings(String(decoding: JSONValue.array([myShard, mySchemes]).serialized(), as: UTF8.self))
        if comm.isMain {
            var shards: [(file: String, tensorBytes: [String: Int])] = []
            var allSchemes: [(name: String, scheme: QuantizedLinearScheme)] = []
            for (rank, text) in texts.enumerated() {
                let bad = QuantizePlanError(description: "rank \(rank) sent malformed shard metadata")
                guard let parts = (try? JSONParser.parse(text))?.arrayValue, parts.count == 2 else { throw bad }
                if let file = parts[0]["file"]?.stringValue, let entries = parts[0]["tensors"]?.objectValue {
                    var bytes: [String: Int] = [:]
                    for (name, value) in entries {
                        guard let n = value.intValue else { throw bad }
                        bytes[name] = n
                    }
                    shards.append((file, bytes))
                }
                for s in parts[1].arrayValue ?? [] {
                    guard let name = s["name"]?.stringValue, let bits = s["bits"]?.intValue, let symmetric = s["symmetric"]?.boolValue,
                          let actOrder = s["act_order"]?.boolValue else { throw bad }
                    allSchemes.append((name, QuantizedLinearScheme(numBits: bits, symmetric: symmetric, groupSize: s["group_size"]?.intValue,
                                                                   actOrder: actOrder,
                                                                   inputActivations: s["input"]?.stringValue.flatMap(InputActivationScheme.init(stagingText:)),
                                                                   codeType: s["type"]?.stringValue.flatMap(QuantizationArgs.ValueType.init(rawValue:)) ?? .int,
                                                                   perTensor: s["per_tensor"]?.boolValue ?? false,
                                                                   fractionalZeros: s["fractional_zeros"]?.boolValue ?? false,
                                                                   doubleQuantized: s["double_quantized"]?.boolValue ?? false)))
                }
            }
            allSchemes.sort { QuantizedCheckpointTensors.naturalOrder($0.name, $1.name) }
            try finish(row: row, job: job, progress: progress, report: report, shards: shards, schemes: allSchemes, scaleType: scaleType)
        }
        try comm.barrier()
    }

    /// Rank 0: index, config, tokenizer, report; then the staging folder becomes the output.
    static func finish(row: any FolderFormatRow, job: SequentialQuantizer.Job, progress: QuantizeProgressFolder, report: QuantizationReport,
                       shards: [(file: String, tensorBytes: [String: Int])], schemes: [(name: String, scheme: QuantizedLinearScheme)],
                       scaleType: DType) throws {
        let staging = progress.staging, fm = FileManager.default
        if shards.count > 1 || shards.first?.file != "model.safetensors" {
            try ShardedCheckpointWriter.writeIndex(shards: shards, to: staging)
        }
        var config = job.bundle.config
        // A recipe that only prunes writes a float model: no quantization_config at all, since
        // transformers 5 fails on one without config groups (FORMATS.md §12.6 item 13) — unless
        // the format describes the sparsity (the legacy sparse row).
        // (`JSONValue` takes `nil` as JSON null: say Optional.none.)
        let base = job.plan.pruneOnly ? Optional<JSONValue>.none
            : try row.quantizationConfig(schemes: schemes, plan: job.plan, scaleType: scaleType)
        config.quantizationConfig = try row.finalQuantizationConfig(base, plan: job.plan, model: job.bundle.config,
                                                                             staged: { try CheckpointFolder(url: staging) })
        try config.write(to: staging.appendingPathComponent("config.json"))
        let files = try job.bundle.tokenizerFileContents()
        for (name, json) in [("tokenizer.json", files.tokenizer), ("tokenizer_config.json", files.tokenizerConfig),
                             ("generation_config.json", files.generationConfig)] {
            guard let json else { continue }
            try AtomicFileWriter.write(json.serialized(.pretty(sortKeys: false)) + [0x0A], to: staging.appendingPathComponent(name))
        }
        try AtomicFileWriter.write(report.jsonValue.serialized(.pretty(sortKeys: false)) + [0x0A],
                                   to: staging.appendingPathComponent("quantization_report.json"))
        try fm.removeItem(at: progress.blocks)
        try fm.removeItem(at: staging.appendingPathComponent("job.json"))
        // A budget's plan, kept while the job ran; the report holds it now.
        let plan = staging.appendingPathComponent(StagedBudgetPlan.fileName)
        if fm.fileExists(atPath: plan.path) { try fm.removeItem(at: plan) }
        try OutputFolderGuard.mark(staging)
        try OutputFolderGuard.replace(job.output, overwrite: job.overwrite)
        do { try fm.moveItem(at: staging, to: job.output) } catch {
            throw QDistIOError(.io, path: job.output.path, "cannot move the finished output into place: \(FileErrorReason.describe(error))")
        }
    }
}
