import Foundation
import QDistIO
import QDistModel
import QDistTensor

/// Writes a LoRA adapter as PEFT saves one (FORMATS.md §8): `adapter_config.json` with
/// LoraConfig's keys and `adapter_model.safetensors` with one F32 tensor per
/// `TrainableParameterLayout` entry, named as PEFT names them
/// (`base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`, A `[r, in]`, B `[out, r]`).
///
/// Kept small and separate on purpose: the PEFT adapter reader/merger lives elsewhere, and the
/// two meet only in these two files' contents.
public enum PEFTAdapterWriter {
    public static let configFileName = "adapter_config.json"
    public static let weightsFileName = "adapter_model.safetensors"

    /// Writes both files into `folder` (created if needed), each atomically.
    public static func write(_ parameters: TrainableParameters, lora: LoRAConfig, baseModel: String, to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var tensors: [String: StoredTensor] = [:]
        for e in parameters.layout.entries { tensors[e.name] = StoredTensor(parameters.tensor(e), as: .f32) }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: folder.appendingPathComponent(weightsFileName))
        try AtomicFileWriter.write(configJSON(lora: lora, baseModel: baseModel).serialized(.pretty(sortKeys: true)),
                                   to: folder.appendingPathComponent(configFileName))
    }

    /// adapter_config.json: PEFT's LoraConfig fields for a plain LoRA on a causal LM.
    public static func configJSON(lora: LoRAConfig, baseModel: String) -> JSONValue {
        .object([
            ("peft_type", "LORA"), ("task_type", "CAUSAL_LM"), ("base_model_name_or_path", .string(baseModel)),
            ("revision", nil), ("r", .integer(lora.rank)), ("lora_alpha", .number(lora.alpha)),
            ("lora_dropout", .number(lora.dropout)), ("target_modules", .array(lora.targetModules.map { .string($0) })),
            ("exclude_modules", nil), ("bias", "none"), ("fan_in_fan_out", false), ("use_rslora", .bool(lora.useRSLoRA)),
            ("use_dora", false), ("init_lora_weights", true), ("modules_to_save", nil), ("rank_pattern", .object([])),
            ("alpha_pattern", .object([])), ("layers_to_transform", nil), ("layers_pattern", nil), ("inference_mode", true),
        ])
    }
}
