import ArgumentParser
import Foundation
import QDistIO
import QDistPipeline
import QDistTensor

/// `qdist convert`: a GGUF file (or a model folder) into a Hugging Face folder that
/// transformers and qdist load.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a GGUF file or model folder into a Hugging Face folder, or a model into a llama.cpp GGUF file.",
        discussion: """
            Dequantizes every tensor (F32, F16, BF16, Q4_0…Q8_0, Q2_K…Q6_K, TQ1_0, TQ2_0), undoes \
            llama.cpp's Q/K row permutation, maps names to transformers' and writes config.json, \
            model.safetensors, tokenizer.json, tokenizer_config.json and generation_config.json. \
            The folder appears only when complete.

            An output ending in .gguf writes one llama.cpp GGUF file instead, as \
            convert_hf_to_gguf.py then llama-quantize would: llama metadata and tokenizer, \
            Q/K rows permuted, each tensor in the type --gguf-type's mix gives it (llama.cpp's \
            per-tensor rules), encoded bit-identically to llama.cpp's encoders.

            Examples:
              qdist convert SmolLM2-135M-Instruct.Q4_1.gguf models/smollm2
              qdist convert model.gguf out --dtype bf16 --overwrite
              qdist convert models/smollm2 smollm2-f32.gguf --gguf-type F32
            """)

    @Argument(help: ArgumentHelp("A .gguf file or a model folder.", valueName: "input"))
    var input: String

    @Argument(help: ArgumentHelp("The model folder to write.", valueName: "output"))
    var output: String

    @OptionGroup var folder: ModelFolderOptions

    @Option(name: .long, help: ArgumentHelp("For a .gguf output: the llama-quantize mix (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q2_K_S, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, TQ1_0, TQ2_0).", valueName: "mix"))
    var ggufType = "F16"

    @Option(name: .long, help: ArgumentHelp("For a .gguf output: an importance matrix (llama-imatrix's GGUF or .dat, or qdist imatrix's) to weight the encoders, as llama-quantize --imatrix.", valueName: "file"))
    var imatrix: String?

    @Flag(name: .long, help: "For a .gguf output: every quantized tensor in the mix's default type (llama-quantize --pure).")
    var pure = false

    func run() throws {
        if output.lowercased().hasSuffix(".gguf") { return try runGGUF() }
        let summary: ModelConversion.Summary
        do {
            summary = try ModelConversion.convert(ModelBundle.open(input), to: URL(fileURLWithPath: output),
                                                  dtype: folder.target, overwrite: folder.overwrite)
        } catch {
            throw ConsoleOutput.fail("convert", "\(error)")
        }
        try folder.report(summary)
    }

    /// `convert … OUT.gguf`: the GGUF export.
    func runGGUF() throws {
        let summary: GGUFExport.Summary
        do {
            let mix = try GGUFMix(name: ggufType)
            let matrix = try imatrix.map { try GGUFImatrix(contentsOf: URL(fileURLWithPath: $0)) }
            let bundle = try ModelBundle.open(input)
            let reporter = ProgressReporter(label: "gguf", total: bundle.config.tensorShapes.count, unit: "tensors", enabled: !folder.json)
            summary = try GGUFExport.write(bundle, to: URL(fileURLWithPath: output), mix: mix, options: .init(pure: pure),
                                           imatrix: matrix, imatrixPath: imatrix, overwrite: folder.overwrite,
                                           progress: { done, _, _ in reporter.update(done: done, work: done) })
        } catch {
            throw ConsoleOutput.fail("convert", "\(error)")
        }
        if folder.json {
            try ConsoleOutput.printJSON(["output": summary.destination.path, "tensors": summary.tensors.count,
                                         "parameters": summary.parameters, "bytes": summary.bytes,
                                         "bits_per_weight": summary.bitsPerWeight, "seconds": summary.seconds])
        } else {
            print(String(format: "wrote %@: %d tensors, %@ parameters, %@, %.2f bits per weight (%.1f s)", summary.destination.path,
                         summary.tensors.count, ConsoleOutput.count(Double(summary.parameters)), ConsoleOutput.bytes(Double(summary.bytes)),
                         summary.bitsPerWeight, summary.seconds))
        }
    }
}
