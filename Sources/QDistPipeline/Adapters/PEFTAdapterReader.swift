import Foundation
import QDistIO
import QDistModel
import QDistTensor

/// Reads a PEFT LoRA adapter folder strictly, for one base model.
///
/// Every key of adapter_config.json is checked (`PEFTAdapterConfigFile`), and every tensor of
/// adapter_model.safetensors against the layout the configuration implies for `baseConfig`:
/// the exact set of names, each shape (`[r, in]` for lora_A, `[out, r]` for lora_B), a float
/// dtype, and finite values. An adapter trained for another base model therefore fails here,
/// with one line naming the file and the first tensor that does not fit, instead of producing
/// a silently wrong model or a crash deep inside a matrix product.
public enum PEFTAdapterReader {
    /// PEFT's `SAFETENSORS_WEIGHTS_NAME`.
    public static let weightsFileName = "adapter_model.safetensors"

    /// The adapter in `folder`, checked against the base model `baseConfig`.
    public static func read(_ folder: URL, baseConfig: ModelConfiguration) throws -> PEFTAdapter {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw QDistIOError(.io, path: folder.path, "no such adapter folder (expected adapter_config.json and adapter_model.safetensors)")
        }
        let configURL = folder.appendingPathComponent(PEFTAdapterConfigFile.fileName)
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw QDistIOError(.io, path: configURL.path, "missing: a PEFT adapter folder holds adapter_config.json")
        }
        let contents = try PEFTAdapterConfigFile.read(configURL, layers: baseConfig.numHiddenLayers)
        let weightsURL = folder.appendingPathComponent(weightsFileName)
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            if FileManager.default.fileExists(atPath: folder.appendingPathComponent("adapter_model.bin").path) {
                throw QDistIOError(.io, path: weightsURL.path,
                                   "missing; the folder has adapter_model.bin (pickle), which qdist does not read: re-save it with PEFT's save_pretrained(safe_serialization=True)")
            }
            throw QDistIOError(.io, path: weightsURL.path, "missing: a PEFT adapter folder holds adapter_model.safetensors")
        }
        let file = try SafetensorsReader(url: weightsURL)
        let layout = TrainableParameterLayout(config: baseConfig, lora: contents.lora)
        var values = [Float](repeating: 0, count: layout.count)
        for entry in layout.entries {
            guard file.contains(entry.name) else {
                throw QDistIOError(.safetensors, path: weightsURL.path,
                                   "missing tensor \(entry.name) (adapter_config.json targets \(entry.target.rawValue) in every layer)")
            }
            let info = try file.info(entry.name)
            guard [.f32, .f16, .bf16, .f64].contains(info.dtype) else {
                throw QDistIOError(.safetensors, path: weightsURL.path, "tensor \(entry.name) is \(info.dtype.rawValue); LoRA weights must be F32, F16, BF16 or F64")
            }
            guard info.shape == entry.shape else {
                let (inF, outF) = entry.target.features(baseConfig)
                let why = entry.role == .a ? "[r, in_features] = [\(contents.lora.rank), \(inF)]" : "[out_features, r] = [\(outF), \(contents.lora.rank)]"
                throw QDistIOError(.safetensors, path: weightsURL.path,
                                   "tensor \(entry.name) has shape \(info.shape), expected \(why) for r in adapter_config.json and the base model's config.json")
            }
            let scalars = try file.tensor(entry.name).scalars
            guard scalars.allSatisfy(\.isFinite) else {
                throw QDistIOError(.safetensors, path: weightsURL.path, "tensor \(entry.name) holds NaN or infinite values")
            }
            values.replaceSubrange(entry.range, with: scalars)
        }
        let expected = Set(layout.entries.map(\.name))
        if let extra = file.tensorNames.first(where: { !expected.contains($0) }) {
            throw QDistIOError(.safetensors, path: weightsURL.path, "unexpected tensor \(extra): \(explanation(ofUnexpected: extra, layers: baseConfig.numHiddenLayers))")
        }
        return PEFTAdapter(lora: contents.lora, baseModel: contents.baseModel,
                           parameters: TrainableParameters(layout: layout, values: values))
    }

    /// Why a tensor outside the layout is there, in the terms a PEFT user knows.
    static func explanation(ofUnexpected name: String, layers: Int) -> String {
        if name.contains("lora_magnitude_vector") { return "DoRA magnitudes, which qdist does not apply" }
        if name.contains("lora_embedding") { return "an embedding LoRA, which qdist does not apply" }
        if name.contains(".default.") { return "names carry the adapter name \"default\"; PEFT's save_pretrained drops it" }
        if !name.contains("lora_") { return "a fully trained module (modules_to_save or a bias), which qdist does not apply" }
        if let i = PEFTTargetModules.layerIndex(of: name.replacingOccurrences(of: "base_model.model.", with: "")), i >= layers {
            return "layer \(i) does not exist in the \(layers)-layer base model"
        }
        return "not the lora_A/lora_B of a linear that adapter_config.json targets"
    }
}
