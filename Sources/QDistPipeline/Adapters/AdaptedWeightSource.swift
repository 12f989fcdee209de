import Foundation
import QDistIO
import QDistModel
import QDistTensor

/// A base model's weights with a LoRA adapter merged in as they are read: the weight of every
/// adapted linear comes back as `W + scaling · B·A` (PEFT's `merge`), every other tensor as
/// stored.
///
/// The merge happens per tensor, when the decoder (or a writer) asks for it, so loading block
/// by block holds one extra (out, in) product at a time and no merged copy of the model is
/// ever kept beside the base. B·A is one `cblas_sgemm` accumulating into W; in Float32 the
/// result differs from a float64 merge by rounding only (≈1e-7 relative).
///
/// This is how `qdist eval --adapter`, `qdist generate --adapter` and `qdist merge-adapter`
/// see an adapted model; a quantized base (GPTQ, compressed-tensors, NF4) is dequantized by
/// `base` first and the adapter added in Float32.
public struct AdaptedWeightSource: WeightSource {
    /// Where the base weights come from (a folder, a GGUF file, a dequantizing source).
    public let base: any WeightSource
    public let adapter: PEFTAdapter

    public init(base: any WeightSource, adapter: PEFTAdapter) {
        self.base = base
        self.adapter = adapter
    }

    public func contains(_ name: String) -> Bool { base.contains(name) }

    public func tensor(_ name: String) throws -> Tensor {
        let weight = try base.tensor(name)
        guard let (block, target) = adapter.adaptedLinear(forWeight: name),
              let lora = adapter.adapter(block: block, target: target) else { return weight }
        guard weight.shape == [lora.outFeatures, lora.inFeatures] else {
            throw ModelLoadError("tensor \(name) has shape \(weight.shape) but its LoRA adapter is \(lora.outFeatures)×\(lora.inFeatures): the adapter was made for another base model")
        }
        return lora.merged(into: LinearLayer(weight: weight)).weight
    }
}

extension ModelBundle {
    /// This model with `adapter` merged into its weights as they load (tokenizer, config and
    /// GGUF metadata unchanged).
    public func applying(_ adapter: PEFTAdapter) -> ModelBundle {
        ModelBundle(path: path, config: config, weights: AdaptedWeightSource(base: weights, adapter: adapter),
                    tokenizer: tokenizer, tokenizerFiles: tokenizerFiles, gguf: gguf)
    }

    /// This model with the PEFT adapter in `folder` applied, after checking the adapter against
    /// this model's config (one-line errors naming the adapter file at fault).
    public func applyingAdapter(at folder: URL) throws -> ModelBundle {
        applying(try PEFTAdapterReader.read(folder, baseConfig: config))
    }
}
