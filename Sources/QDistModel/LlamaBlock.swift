import QDistIO
import QDistTensor

/// The weights of one decoder block, named as in a Hugging Face checkpoint under
/// `model.layers.N.`.
public struct LlamaBlockWeights: Sendable {
    public var inputNorm: Tensor  // (hidden)
    public var q: LinearLayer, k: LinearLayer, v: LinearLayer, o: LinearLayer
    public var postAttentionNorm: Tensor  // (hidden)
    public var gate: LinearLayer, up: LinearLayer, down: LinearLayer

    /// A block from its tensors (a dequantizer or a byte payload rebuilding one).
    public init(inputNorm: Tensor, q: LinearLayer, k: LinearLayer, v: LinearLayer, o: LinearLayer,
                postAttentionNorm: Tensor, gate: LinearLayer, up: LinearLayer, down: LinearLayer) {
        self.inputNorm = inputNorm
        self.q = q
        self.k = k
        self.v = v
        self.o = o
        self.postAttentionNorm = postAttentionNorm
        self.gate = gate
        self.up = up
        self.down = down
    }

    /// The block's linear layers by HF suffix ("self_attn.q_proj", …), for quantizers.
    public var linears: [String: LinearLayer] {
        get {
            ["self_attn.q_proj": q, "self_attn.k_proj": k, "self_attn.v_proj": v, "self_attn.o_proj": o,
             "mlp.gate_proj": gate, "mlp.up_proj": up, "mlp.down_proj": down]
        }
        set {
            for (name, layer) in newValue {
                switch name {
                case "self_attn.q_proj": q = layer
                case "self_attn.k_proj": k = layer
                case "self_attn.v_proj": v = layer
                case "self_attn.o_proj": o = layer
                case "mlp.gate_proj": gate = layer
                case "mlp.up_proj": up = layer
                case "mlp.down_proj": down = layer
                default: preconditionFailure("no linear \(name) in a Llama block")
                }
            }
        }
    }

    /// Reads block `index` from `source`, verifying every shape against `config`.
    public static func load(block index: Int, from source: any WeightSource, config: ModelConfiguration) throws -> LlamaBlockWeights {
        let p = "model.layers.\(index)."
        let h = config.hiddenSize, d = config.headDim
        func linear(_ name: String, out: Int, inFeatures: Int, bias: Bool) throws -> LinearLayer {
            let w = try source.tensor(p + name + ".weight", expectedShape: [out, inFeatures])
            let b = bias ? try source.tensor(p + name + ".bias", expectedShape: [out]) : nil
            return LinearLayer(weight: w, bias: b, inputQuantizer: try source.inputQuantizer(forLinear: p + name))
        }
        let qkvBias = config.hasQKVBias, oBias = config.hasOutputProjectionBias, mlpBias = config.mlpBias
        return LlamaBlockWeights(
            inputNorm: try source.tensor(p + "input_layernorm.weight", expectedShape: [h]),
            q: try linear("self_attn.q_proj", out: config.numAttentionHeads * d, inFeatures: h, bias: qkvBias),
            k: try linear("self_attn.k_proj", out: config.numKeyValueHeads * d, inFeatures: h, bias: qkvBias),
            v: try linear("self_attn.v_proj", out: config.numKeyValueHeads * d, inFeatures: h, bias: qkvBias),
            o: try linear("self_attn.o_proj", out: h, inFeatures: config.numAttentionHeads * d, bias: oBias),
            postAttentionNorm: try source.tensor(p + "post_attention_layernorm.weight", expectedShape: [h]),
            gate: try linear("mlp.gate_proj", out: config.intermediateSize, inFeatures: h, bias: mlpBias),
            up: try linear("mlp.up_proj", out: config.intermediateSize, inFeatures: h, bias: mlpBias),
            down: try linear("mlp.down_proj", out: h, inFeatures: config.intermediateSize, bias: mlpBias))
    }
}

/// One decoder block: x + attn(norm(x)), then + mlp(norm(x)) with SwiGLU.
public struct LlamaBlock: Sendable {
    public let index: Int
    public var weights: LlamaBlockWeights
    public let attention: LlamaAttention
    public let rotary: RotaryEmbedding
    public let epsilon: Float

    public init(index: Int, weights: LlamaBlockWeights, config: ModelConfiguration, rotary: RotaryEmbedding) {
        self.index = index
        self.weights = weights
        self.attention = LlamaAttention(heads: config.numAttentionHeads, kvHeads: config.numKeyValueHeads, headDim: config.headDim)
        self.rotary = rotary
        self.epsilon = Float(config.rmsNormEps)
    }

    /// x (tokens, hidden) at positions `cache.length…` (or 0… without a cache) → (tokens, hidden).
    public func forward(_ x: Tensor, cache: inout KVCache?, observer: inout (any BlockInputObserver)?) -> Tensor {
        forward(x, cache: &cache, observer: &observer, stoppingAfter: nil)!
    }

    /// Runs the block only as far as the input of `group` and shows the observer every group
    /// input up to it: calibration of one group (`sequential: linear`) needs nothing after it.
    public func observeInputs(_ x: Tensor, through group: LinearGroup, observer: inout (any BlockInputObserver)?) {
        var cache: KVCache? = nil
        _ = forward(x, cache: &cache, observer: &observer, stoppingAfter: group)
    }

    /// The forward; with `stoppingAfter` it returns nil right after that group's input was observed.
    func forward(_ x: Tensor, cache: inout KVCache?, observer: inout (any BlockInputObserver)?,
                 stoppingAfter last: LinearGroup?) -> Tensor? {
        let h = attentionInput(x)
        observer?.observe(block: index, group: .qkv, input: h)
        if last == .qkv { return nil }
        let attended = attentionOutput(normalized: h, cache: &cache)
        observer?.observe(block: index, group: .o, input: attended)
        if last == .o { return nil }
        let out = residualAfterAttention(x, attended: attended)
        let h2 = mlpInput(out)
        observer?.observe(block: index, group: .gateUp, input: h2)
        if last == .gateUp { return nil }
        let activated = mlpActivation(normalized: h2)
        observer?.observe(block: index, group: .down, input: activated)
        if last == .down { return nil }
        return output(residual: out, activated: activated)
    }

    // The forward in stages, each ending at the input of a linear group. `sequential: linear`
    // calibration runs them one at a time with the stage's linears freshly quantized, keeping the
    // stage boundary per window; chained they are exactly `forward` (same operations, same order).

    /// The input of q/k/v: RMSNorm(x).
    public func attentionInput(_ x: Tensor) -> Tensor {
        x.rmsNormalized(weight: weights.inputNorm, epsilon: epsilon)
    }

    /// The input of o_proj: causal attention over q, k, v of the normalized input `h`.
    public func attentionOutput(normalized h: Tensor, cache: inout KVCache?) -> Tensor {
        let w = weights
        let offset = cache?.length ?? 0
        var q = w.q(h), k = w.k(h)
        let v = w.v(h)
        rotary.apply(to: &q, heads: attention.heads, positionOffset: offset)
        rotary.apply(to: &k, heads: attention.kvHeads, positionOffset: offset)
        if cache != nil {
            cache!.append(block: index, keys: k, values: v)
            return cache!.keys[index].withUnsafeBufferPointer { pk in
                cache!.values[index].withUnsafeBufferPointer { pv in
                    attention(queries: q, keys: pk, values: pv, positionOffset: offset)
                }
            }
        }
        return k.withUnsafeBufferPointer { pk in
            v.withUnsafeBufferPointer { pv in attention(queries: q, keys: pk, values: pv, positionOffset: 0) }
        }
    }

    /// x + o_proj(attended): the residual stream between attention and MLP.
    public func residualAfterAttention(_ x: Tensor, attended: Tensor) -> Tensor {
        var out = x
        out.addScaled(weights.o(attended))
        return out
    }

    /// The input of gate/up: RMSNorm of the residual stream.
    public func mlpInput(_ residual: Tensor) -> Tensor {
        residual.rmsNormalized(weight: weights.postAttentionNorm, epsilon: epsilon)
    }

    /// The input of down_proj: SwiGLU(gate(h2), up(h2)).
    public func mlpActivation(normalized h2: Tensor) -> Tensor {
        Tensor.swiGLU(gate: weights.gate(h2), up: weights.up(h2))
    }

    /// The block's output: residual + down_proj(activated).
    public func output(residual: Tensor, activated: Tensor) -> Tensor {
        var out = residual
        out.addScaled(weights.down(activated))
        return out
    }
}
