import Foundation
import QDistIO
import QDistModel
import QDistTensor

/// `qdist merge-adapter`: a base model with a PEFT LoRA adapter folded into its weights
/// (`W + scaling · B·A` for every adapted linear), written as a plain Hugging Face folder —
/// config.json, safetensors, the tokenizer files — that transformers, `qdist quantize` and
/// `qdist eval` load with no adapter support at all. This is PEFT's `merge_and_unload()` +
/// `save_pretrained`, and llama.cpp's `export-lora`.
///
/// The merge is into the base weights as stored (dequantized if the base is quantized), not
/// into an NF4 view of them: quantize the merged folder afterwards to deploy it small. The
/// folder appears whole or not at all (`ModelFolderWriter`).
public enum AdapterMerge {
    /// Merges the adapter in `adapterFolder` into `base` and writes the result to
    /// `destination` with weights in `dtype` (f32, f16 or bf16).
    public static func merge(base: ModelBundle, adapterFolder: URL, to destination: URL, dtype: DType,
                             overwrite: Bool) throws -> ModelConversion.Summary {
        let adapted = try base.applyingAdapter(at: adapterFolder)
        return try ModelConversion.convert(adapted, to: destination, dtype: dtype, overwrite: overwrite, otherInputs: [adapterFolder])
    }
}
