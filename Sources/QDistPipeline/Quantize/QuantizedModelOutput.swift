import Foundation
import QDistIO
import QDistQuant
import QDistTensor

/// Writes a quantized model folder: the packed linears in the job's format, every other tensor
/// (embeddings, norms, an untied lm_head) in the model's float dtype, config.json with the
/// quantization_config, the tokenizer files and quantization_report.json — atomically.
enum QuantizedModelOutput {
    static func write(job: SequentialQuantizer.Job, linears: [QuantizedLinearWeights], report: QuantizationReport) throws {
        let config = job.bundle.config
        let quantizedNames = Set(linears.flatMap { l in [l.name + ".weight", l.name + ".bias"] })
        let floatType = DType.modelDType(torchDtype: config.torchDtype)
        var others: [String: StoredTensor] = [:]
        for (name, _) in config.tensorShapes where !quantizedNames.contains(name) {
            others[name] = StoredTensor(try job.bundle.weights.tensor(name), as: floatType)
        }
        let checkpoint: QuantizedCheckpointTensors
        switch job.format {
        case .compressedTensors:
            checkpoint = try CompressedTensorsFormat.write(linears, otherTensors: others,
                                                           options: .init(scaleDType: floatType == .f32 ? .f16 : floatType))
        case .gptq:
            checkpoint = try GPTQFormat.write(linears, otherTensors: others,
                                              options: .init(checkpointFormat: .v2, dampPercent: job.plan.dampening))
        }
        let files = try job.bundle.tokenizerFileContents()
        var reportBytes = report.jsonValue.serialized(.pretty(sortKeys: false))
        reportBytes.append(0x0A)
        try ModelFolderWriter(destination: job.output, overwrite: job.overwrite).write(
            config: checkpoint.configuration(updating: config), tensors: checkpoint.entries,
            load: { checkpoint.tensors[$0]! },
            tokenizerJSON: files.tokenizer, tokenizerConfig: files.tokenizerConfig, generationConfig: files.generationConfig,
            extraFiles: ["quantization_report.json": reportBytes])
    }
}
