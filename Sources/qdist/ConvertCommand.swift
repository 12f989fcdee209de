import ArgumentParser
import Foundation
import QDistPipeline
import QDistTensor

/// `qdist convert`: a GGUF file (or a model folder) into a Hugging Face folder that
/// transformers and qdist load.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a GGUF file (or a model folder) into a Hugging Face model folder.",
        discussion: """
            Dequantizes every tensor (F32, F16, BF16, Q4_0…Q8_0, Q2_K…Q6_K, TQ1_0, TQ2_0), undoes \
            llama.cpp's Q/K row permutation, maps names to transformers' and writes config.json, \
            model.safetensors, tokenizer.json, tokenizer_config.json and generation_config.json. \
            The folder appears only when complete.

            Examples:
              qdist convert SmolLM2-135M-Instruct.Q4_1.gguf models/smollm2
              qdist convert model.gguf out --dtype bf16 --overwrite
            """)

    @Argument(help: ArgumentHelp("A .gguf file or a model folder.", valueName: "input"))
    var input: String

    @Argument(help: ArgumentHelp("The model folder to write.", valueName: "output"))
    var output: String

    @OptionGroup var folder: ModelFolderOptions

    func run() throws {
        let summary: ModelConversion.Summary
        do {
            summary = try ModelConversion.convert(ModelBundle.open(input), to: URL(fileURLWithPath: output),
                                                  dtype: folder.target, overwrite: folder.overwrite)
        } catch {
            throw ConsoleOutput.fail("convert", "\(error)")
        }
        try folder.report(summary)
    }
}
