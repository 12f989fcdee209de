import ArgumentParser
import Foundation
import QDistPipeline
import QDistTensor

/// `qdist merge-adapter`: fold a PEFT LoRA adapter into its base model and write a plain
/// Hugging Face folder (PEFT's merge_and_unload + save_pretrained; llama.cpp's export-lora).
struct MergeAdapterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge-adapter",
        abstract: "Merge a PEFT LoRA adapter into its base model, writing a Hugging Face model folder.",
        discussion: """
            Every adapted linear becomes W + scaling·B·A (scaling = lora_alpha/r, or \
            lora_alpha/√r with use_rslora); every other tensor is copied. The adapter is checked \
            against the base model's config first (every key of adapter_config.json, every \
            tensor name and shape). The output holds config.json, model.safetensors and the \
            tokenizer files, loads in transformers without PEFT, and is what `qdist quantize` \
            and `qdist eval` take. It is merged into the base weights as stored (a quantized or \
            GGUF base is dequantized first), not into an NF4 view of them. The folder appears \
            only when complete.

            Examples:
              qdist merge-adapter --model models/smollm2 --adapter runs/lora --output models/smollm2-lora
              qdist merge-adapter --model model.gguf --adapter runs/lora --output merged --dtype bf16 --overwrite
            """)

    @Option(name: .long, help: ArgumentHelp("The base model: a folder or a .gguf file.", valueName: "path"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("The PEFT adapter folder (adapter_config.json + adapter_model.safetensors).", valueName: "dir"))
    var adapter: String

    @Option(name: .long, help: ArgumentHelp("The merged model folder to write.", valueName: "dir"))
    var output: String

    @OptionGroup var folder: ModelFolderOptions

    func run() throws {
        let summary: ModelConversion.Summary
        do {
            summary = try AdapterMerge.merge(base: ModelBundle.open(model), adapterFolder: URL(fileURLWithPath: adapter),
                                             to: URL(fileURLWithPath: output), dtype: folder.target, overwrite: folder.overwrite)
        } catch {
            throw ConsoleOutput.fail("merge-adapter", "\(error)")
        }
        try folder.report(summary)
    }
}
