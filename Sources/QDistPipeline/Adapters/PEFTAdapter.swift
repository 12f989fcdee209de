import Foundation
import QDistIO
import QDistModel
import QDistTensor

/// A LoRA adapter set as PEFT saves it — a folder with `adapter_config.json` and
/// `adapter_model.safetensors` — held in memory: the configuration, the base model it names,
/// and every A and B in `TrainableParameterLayout` order (so a trained `TrainableParameters`
/// is already one, and the writer and the merge read the same flat buffer).
///
/// Read one with `PEFTAdapterReader.read(_:baseConfig:)`, write one with
/// `PEFTAdapterWriter.write(...)`, apply one with `AdaptedWeightSource` (eval, generate,
/// merge-adapter).
public struct PEFTAdapter: Sendable, Equatable {
    /// r, α, dropout, targets, rsLoRA: what adapter_config.json says.
    public var lora: LoRAConfig
    /// `base_model_name_or_path` (a Hub id or a path), when the file names one. qdist never
    /// loads it: the user names the base model, and the tensor shapes are checked against it.
    public var baseModel: String?
    /// Every lora_A / lora_B, laid out as `TrainableParameterLayout(config:lora:)` for the
    /// base model.
    public var parameters: TrainableParameters

    public init(lora: LoRAConfig, baseModel: String?, parameters: TrainableParameters) {
        self.lora = lora
        self.baseModel = baseModel
        self.parameters = parameters
    }

    /// The flat layout of the tensors (PEFT names, shapes, offsets).
    public var layout: TrainableParameterLayout { parameters.layout }

    /// α/r, or α/√r with rsLoRA: the factor on B·A.
    public var scaling: Float { lora.scaling }

    /// The A and B of one linear of one decoder layer, or nil when that linear is not adapted.
    public func adapter(block: Int, target: LoRATarget) -> LoRAAdapter? {
        parameters.adapter(block: block, target: target, scaling: scaling)
    }

    /// Which adapted linear a checkpoint weight name (`model.layers.3.self_attn.q_proj.weight`)
    /// belongs to, or nil for a weight the adapter does not touch.
    public func adaptedLinear(forWeight name: String) -> (block: Int, target: LoRATarget)? {
        guard name.hasPrefix("model.layers."), name.hasSuffix(".weight") else { return nil }
        let parts = name.dropFirst("model.layers.".count).dropLast(".weight".count).split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let block = Int(parts[0]), block >= 0, block < layout.blockRanges.count,
              let target = lora.targets.first(where: { $0.modulePath == parts[1] }) else { return nil }
        return (block, target)
    }
}

extension PEFTAdapter {
    /// A seeded random adapter for `config`: every A from PEFT's default init (as training
    /// starts), and — unlike a fresh PEFT adapter, whose B is zero and so changes nothing —
    /// every B drawn from U(−bScale, bScale), so the adapter visibly changes the model. For
    /// tests and for checking a loader (PEFT's, transformers', ours) against the others.
    public static func random(config: ModelConfiguration, lora: LoRAConfig, seed: UInt64, bScale: Float = 0.05,
                              baseModel: String? = nil) -> PEFTAdapter {
        var parameters = TrainableParameters.initialized(config: config, lora: lora, seed: seed)
        var rng = SeededGenerator(seed: seed ^ 0xB0B0_B0B0)
        for e in parameters.layout.entries where e.role == .b {
            for i in e.range { parameters.values[i] = (2 * rng.nextUniform() - 1) * bScale }
        }
        return PEFTAdapter(lora: lora, baseModel: baseModel, parameters: parameters)
    }
}
