/// One `nn.Linear` of a Llama-family model as the checkpoint names it, with its sizes.
///
/// Quantizers walk these (every linear layer is a GPTQ/AWQ target); the memory estimator sums
/// them. The weight tensor is `<name>.weight` with shape `[outFeatures, inFeatures]`
/// (PyTorch layout: one row per output feature); a bias, when present, is `<name>.bias` `[outFeatures]`.
public struct LinearLayerShape: Sendable, Equatable {
    /// Module path without `.weight`, e.g. `model.layers.0.self_attn.q_proj`.
    public var name: String
    public var inFeatures: Int
    public var outFeatures: Int
    public var hasBias: Bool

    public init(name: String, inFeatures: Int, outFeatures: Int, hasBias: Bool) {
        self.name = name
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.hasBias = hasBias
    }

    /// `[outFeatures, inFeatures]`.
    public var weightShape: [Int] { [outFeatures, inFeatures] }
    /// Weights plus bias.
    public var parameterCount: Int { inFeatures * outFeatures + (hasBias ? outFeatures : 0) }
}

extension ModelConfiguration {
    /// True when q_proj, k_proj and v_proj carry biases (qwen2 always; llama/mistral with `attention_bias`).
    public var hasQKVBias: Bool { attentionBias }
    /// True when o_proj carries a bias (`attention_bias` on llama/mistral; never on qwen2).
    public var hasOutputProjectionBias: Bool { attentionBias && modelType != "qwen2" }

    /// The seven linear layers of decoder layer `layer`, in checkpoint order:
    /// q, k, v, o projections, then gate, up, down.
    public func linearLayers(inLayer layer: Int) -> [LinearLayerShape] {
        let p = "model.layers.\(layer)"
        let q = numAttentionHeads * headDim, kv = numKeyValueHeads * headDim
        return [
            LinearLayerShape(name: "\(p).self_attn.q_proj", inFeatures: hiddenSize, outFeatures: q, hasBias: hasQKVBias),
            LinearLayerShape(name: "\(p).self_attn.k_proj", inFeatures: hiddenSize, outFeatures: kv, hasBias: hasQKVBias),
            LinearLayerShape(name: "\(p).self_attn.v_proj", inFeatures: hiddenSize, outFeatures: kv, hasBias: hasQKVBias),
            LinearLayerShape(name: "\(p).self_attn.o_proj", inFeatures: q, outFeatures: hiddenSize, hasBias: hasOutputProjectionBias),
            LinearLayerShape(name: "\(p).mlp.gate_proj", inFeatures: hiddenSize, outFeatures: intermediateSize, hasBias: mlpBias),
            LinearLayerShape(name: "\(p).mlp.up_proj", inFeatures: hiddenSize, outFeatures: intermediateSize, hasBias: mlpBias),
            LinearLayerShape(name: "\(p).mlp.down_proj", inFeatures: intermediateSize, outFeatures: hiddenSize, hasBias: mlpBias),
        ]
    }

    /// Every decoder layer's linear layers, layer by layer (the usual quantization targets;
    /// `lm_head` is not included, see `lmHead`).
    public var linearLayers: [LinearLayerShape] {
        (0..<numHiddenLayers).flatMap { linearLayers(inLayer: $0) }
    }

    /// The output projection; it has its own tensor only when `tieWordEmbeddings` is false.
    public var lmHead: LinearLayerShape {
        LinearLayerShape(name: "lm_head", inFeatures: hiddenSize, outFeatures: vocabSize, hasBias: false)
    }

    /// Every tensor a transformers checkpoint of this model holds, with its shape, in the
    /// order transformers' state dict lists them (embedding, layers, final norm, lm_head).
    public var tensorShapes: [(name: String, shape: [Int])] {
        var out: [(name: String, shape: [Int])] = [(name: "model.embed_tokens.weight", shape: [vocabSize, hiddenSize])]
        for layer in 0..<numHiddenLayers {
            for l in linearLayers(inLayer: layer) {
                out.append((name: "\(l.name).weight", shape: l.weightShape))
                if l.hasBias { out.append((name: "\(l.name).bias", shape: [l.outFeatures])) }
            }
            out.append((name: "model.layers.\(layer).input_layernorm.weight", shape: [hiddenSize]))
            out.append((name: "model.layers.\(layer).post_attention_layernorm.weight", shape: [hiddenSize]))
        }
        out.append((name: "model.norm.weight", shape: [hiddenSize]))
        if !tieWordEmbeddings { out.append((name: "lm_head.weight", shape: lmHead.weightShape)) }
        return out
    }

    /// Parameters in one decoder layer (projections, their biases, both RMSNorm weights).
    public var parametersPerLayer: Int {
        linearLayers(inLayer: 0).reduce(0) { $0 + $1.parameterCount } + 2 * hiddenSize
    }

    /// Total parameters: embedding, all layers, final norm, and `lm_head` unless tied.
    /// SmolLM2-135M gives 134,515,008.
    public var parameterCount: Int {
        vocabSize * hiddenSize + numHiddenLayers * parametersPerLayer + hiddenSize
            + (tieWordEmbeddings ? 0 : lmHead.parameterCount)
    }
}
