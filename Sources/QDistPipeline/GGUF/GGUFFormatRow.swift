import Foundation
import QDistComm
import QDistTensor
import QDistIO
import QDistQuant

/// `--format gguf`: one llama.cpp GGUF file instead of a folder. Every tensor gets the block type
/// of the job's mix (`gguf.type`, llama-quantize's rules); the linears the recipe targets are
/// solved by its modifier on that type's grid (GPTQ's codes on llama.cpp's scales, or llama.cpp's
/// own encoder for `QuantizationModifier`), everything else is encoded as llama-quantize would.
/// The blocks are staged per rank like any job (so it resumes), then rank 0 writes the file
/// through `GGUFExport`: the converter's metadata, llama-quantize's layout.
struct GGUFRow: CheckpointFormatRow {
    var name: String { "gguf" }
    var summary: String { "one llama.cpp GGUF file in a llama-quantize mix (gguf.type / --gguf-type), GPTQ codes on llama.cpp's block scales (llama.cpp, qdist)" }
    var carriesActivations: Bool { false }

    func validate(_ plan: QuantizationPlan) throws {
        guard plan.gguf != nil, !plan.entries.isEmpty, plan.entries.allSatisfy({ $0.ggmlType != nil }) else {
            throw QuantizePlanError(description: "format gguf needs the recipe's scheme: GGUF and a mix (gguf: {type: Q4_K_M} or --gguf-type)")
        }
        if plan.entries.contains(where: { $0.inputActivations != nil }) {
            throw QuantizePlanError(description: "format gguf stores weights only; llama.cpp quantizes activations itself: remove input_activations")
        }
    }

    func checkOutput(_ destination: URL, inputs: [URL], overwrite: Bool) throws {
        for input in inputs {
            try GGUFExport.checkDestination(destination, input: input, overwrite: overwrite)
        }
    }

    /// Rank 0 gathers every staged linear (each rank's block files) and writes the file; the
    /// staging folder is removed once the file is in place.
    func writeOutput(job: SequentialQuantizer.Job, progress: QuantizeProgressFolder, report: QuantizationReport,
                     communicator comm: any Communicator) throws {
        if comm.isMain {
            guard let target = job.plan.gguf else { throw QuantizePlanError(description: "format gguf without a mix") }
            var solved: [String: QuantizedLinearWeights.GGMLRows] = [:]
            // A smoothing's norms (and unquantized linears it scaled) replace the model's own.
            var smoothed: [String: Tensor] = [:]
            for b in 0..<job.bundle.config.numHiddenLayers {
                if let f = try progress.record(b).floatFile { smoothed.merge(try progress.readFloatTensors(file: f)) { a, _ in a } }
            }
            for file in try progress.allFiles(blockCount: job.bundle.config.numHiddenLayers) {
                for staged in try progress.readLinears(file: file) {
                    guard let rows = staged.weights.ggml else {
                        throw QuantizePlanError(description: "\(staged.weights.name) was staged without ggml blocks; rerun with --fresh")
                    }
                    solved[staged.weights.name + ".weight"] = rows
                }
            }
            _ = try GGUFExport.write(job.bundle, to: job.output, mix: target.mix, options: target.options,
                                     imatrix: target.imatrixFile?.matrix, imatrixPath: target.imatrixFile?.path,
                                     overwrite: job.overwrite, precomputed: solved, replacements: smoothed,
                                     typeOverrides: Dictionary(job.plan.entries.compactMap { e in e.ggmlType.map { (e.name + ".weight", $0) } },
                                                               uniquingKeysWith: { a, _ in a }))
            try FileManager.default.removeItem(at: progress.staging)
        }
        try comm.barrier()
    }
}
