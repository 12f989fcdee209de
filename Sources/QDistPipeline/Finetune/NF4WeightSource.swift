import QDistModel
import QDistQuant
import QDistTensor

/// A `WeightSource` whose decoder-block linear weights come back quantized to 4-bit and
/// dequantized again — NF4 with double-quantized absmax by default — exactly the float32
/// values `NF4FrozenBase` hands the training graph. Everything else (embedding, norms, head,
/// biases) passes through unchanged, as `Linear4bit` leaves it.
///
/// `qdist eval --nf4` and `generate --nf4` load through this, so the perplexity of "the base as
/// QLoRA trains on it" is measured with the ordinary decoder.
public struct NF4WeightSource: WeightSource {
    public let base: any WeightSource
    public let type: FourBitQuantType

    public init(wrapping base: any WeightSource, type: FourBitQuantType = .nf4) {
        self.base = base
        self.type = type
    }

    /// True for `model.layers.N.<self_attn|mlp>.<q|k|v|o|gate|up|down>_proj.weight`.
    public static func isBlockLinearWeight(_ name: String) -> Bool {
        guard name.hasPrefix("model.layers."), name.hasSuffix(".weight") else { return false }
        let parts = name.split(separator: ".")
        guard parts.count == 6, Int(parts[2]) != nil else { return false }
        return NF4FrozenBlock.linearNames.contains("\(parts[3]).\(parts[4])")
    }

    public func contains(_ name: String) -> Bool { base.contains(name) }

    public func tensor(_ name: String) throws -> Tensor {
        let t = try base.tensor(name)
        guard Self.isBlockLinearWeight(name), t.rank == 2 else { return t }
        return FourBitTensor(quantizing: t, type: type).dequantized()
    }
}

extension ModelBundle {
    /// This model with its decoder linears rounded through a 4-bit format on load (the base a
    /// QLoRA adapter was trained on); everything else unchanged.
    public func roundingLinears(through type: FourBitQuantType) -> ModelBundle {
        ModelBundle(path: path, config: config, weights: NF4WeightSource(wrapping: weights, type: type),
                    tokenizer: tokenizer, tokenizerFiles: tokenizerFiles, gguf: gguf)
    }
}
