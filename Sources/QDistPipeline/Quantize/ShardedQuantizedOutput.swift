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
    static func write(job: SequentialQuantizer.Job, progress: QuantizeProgressFolder, report: QuantizationReport,
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
                let produced: [String: StoredTensor]
                switch job.format {
                case .compressedTensors: produced = try CompressedTensorsFormat.tensors(for: linear, scaleDType: scaleType, input: staged.input)
                case .gptq: produced = try GPTQFormat.tensors(for: linear, options: gptqOptions(job))
                }
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
            for (name, _) in config.tensorShapes where !quantized.contains(name) {
                tensors[name] = StoredTensor(try smoothed[name] ?? job.bundle.weights.tensor(name), as: floatType)
            }
        }
        let shardName = comm.size == 1 ? "model.safetensors" : ShardedCheckpointWriter.shardFileName(comm.rank + 1, of: comm.size)
        if !tensors.isEmpty {
            try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: progress.staging.appendingPathComponent(shardName))
        }
        // Rank 0 learns every shard's tensors and every linear's scheme (as text: names vary).
        let myShard = tensors.isEmpty ? "" : ([shardName] + tensors.keys.sorted().map { "\($0)\t\(tensors[$0]!.bytes.count)" }).joined(separator: "\n")
        let mySchemes = schemes.map {
            "\($0.name)\t\($0.scheme.numBits)\t\($0.scheme.symmetric ? 1 : 0)\t\($0.scheme.groupSize ?? 0)\t\($0.scheme.actOrder ? 1 : 0)"
                + ($0.scheme.inputActivations.map { "\t\($0.stagingText)" } ?? "")
        }.joined(separator: "\n")
        let shardTexts = try comm.allgatherStrings(myShard), schemeTexts = try comm.allgatherStrings(mySchemes)
        if comm.isMain {
            var shards: [(file: String, tensorBytes: [String: Int])] = []
            for text in shardTexts where !text.isEmpty {
                let lines = text.split(separator: "\n").map(String.init)
                var bytes: [String: Int] = [:]
                for line in lines.dropFirst() {
                    let f = line.split(separator: "\t")
                    bytes[String(f[0])] = Int(f[1])!
                }
                shards.append((lines[0], bytes))
            }
            var allSchemes: [(name: String, scheme: QuantizedLinearScheme)] = []
            for text in schemeTexts where !text.isEmpty {
                for line in text.split(separator: "\n") {
                    let f = line.split(separator: "\t").map(String.init)
                    allSchemes.append((f[0], QuantizedLinearScheme(numBits: Int(f[1])!, symmetric: f[2] == "1",
                                                                   groupSize: f[3] == "0" ? nil : Int(f[3]), actOrder: f[4] == "1",
                                                                   inputActivations: f.count > 5 ? InputActivationScheme(stagingText: f[5]) : nil)))
                }
            }
            allSchemes.sort { QuantizedCheckpointTensors.naturalOrder($0.name, $1.name) }
            try finish(job: job, progress: progress, report: report, shards: shards, schemes: allSchemes, scaleType: scaleType)
        }
        try comm.barrier()
    }

    static func gptqOptions(_ job: SequentialQuantizer.Job) -> GPTQFormat.Options {
        .init(checkpointFormat: .v2, dampPercent: job.plan.dampening)
    }

    /// Rank 0: index, config, tokenizer, report; then the staging folder becomes the output.
    static func finish(job: SequentialQuantizer.Job, progress: QuantizeProgressFolder, report: QuantizationReport,
                       shards: [(file: String, tensorBytes: [String: Int])], schemes: [(name: String, scheme: QuantizedLinearScheme)],
                       scaleType: DType) throws {
        let staging = progress.staging, fm = FileManager.default
        if shards.count > 1 || shards.first?.file != "model.safetensors" {
            try ShardedCheckpointWriter.writeIndex(shards: shards, to: staging)
        }
        let quantizationConfig: JSONValue
        switch job.format {
        case .compressedTensors:
            let staticOrder = job.plan.entries.contains { $0.args.actorder == .static }
            quantizationConfig = try CompressedTensorsFormat.quantizationConfig(
                schemes: schemes, options: .init(scaleDType: scaleType, staticActOrder: staticOrder))
        case .gptq:
            quantizationConfig = try GPTQFormat.quantizationConfig(schemes: schemes, options: gptqOptions(job))
        }
        var config = job.bundle.config
        config.quantizationConfig = quantizationConfig
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
        try OutputFolderGuard.mark(staging)
        try OutputFolderGuard.replace(job.output, overwrite: job.overwrite)
        do { try fm.moveItem(at: staging, to: job.output) } catch {
            throw QDistIOError(.io, path: job.output.path, "cannot move the finished output into place: \(FileErrorReason.describe(error))")
        }
    }
}
