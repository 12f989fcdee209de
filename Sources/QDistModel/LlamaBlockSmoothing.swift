import QDistTensor

/// Where a per-channel smoothing scale of one Llama block goes (SmoothQuant, AWQ): `s` divides
/// the op that produces a linear group's input (the RMSNorm weight, or the rows of the linear
/// before it) and multiplies the group's input columns, so the block computes the same function
/// while the quantizers see flatter activations or weights.
///
/// The four mappings are those of llm-compressor's Llama defaults, one per linear group:
/// `input_layernorm → q/k/v`, `v_proj → o_proj` (only when v's outputs are o's inputs one to one,
/// i.e. without grouped-query attention), `post_attention_layernorm → gate/up`,
/// `up_proj → down_proj` (SwiGLU is linear in up).
public enum SmoothingMapping: String, Sendable, CaseIterable {
    case inputNormToQKV = "input_layernorm->q_proj,k_proj,v_proj"
    case valueToOutput = "v_proj->o_proj"
    case postAttentionNormToGateUp = "post_attention_layernorm->gate_proj,up_proj"
    case upToDown = "up_proj->down_proj"

    /// The linear group whose input the mapping scales.
    public var group: LinearGroup {
        switch self {
        case .inputNormToQKV: return .qkv
        case .valueToOutput: return .o
        case .postAttentionNormToGateUp: return .gateUp
        case .upToDown: return .down
        }
    }

    /// Whether the mapping exists in `weights`: v → o needs as many v outputs as o inputs
    /// (llm-compressor skips it under grouped-query attention, where v's heads are shared).
    public func applies(to weights: LlamaBlockWeights) -> Bool {
        self != .valueToOutput || weights.v.outFeatures == weights.o.inFeatures
    }

    /// The balance layers: the linears reading the scaled input.
    public func balance(_ weights: LlamaBlockWeights) -> [LinearLayer] {
        switch self {
        case .inputNormToQKV: return [weights.q, weights.k, weights.v]
        case .valueToOutput: return [weights.o]
        case .postAttentionNormToGateUp: return [weights.gate, weights.up]
        case .upToDown: return [weights.down]
        }
    }
}

extension LlamaBlockWeights {
    /// The same block with `scales` (one per input channel of `mapping`'s group, all positive
    /// and finite) folded in: the producer divided, the balance columns multiplied.
    public func smoothed(_ mapping: SmoothingMapping, scales s: [Float]) -> LlamaBlockWeights {
        var w = self
        switch mapping {
        case .inputNormToQKV:
            w.inputNorm = w.inputNorm.dividingEach(by: s)
            w.q = w.q.scalingColumns(by: s); w.k = w.k.scalingColumns(by: s); w.v = w.v.scalingColumns(by: s)
        case .valueToOutput:
            w.v = w.v.dividingRows(by: s)
            w.o = w.o.scalingColumns(by: s)
        case .postAttentionNormToGateUp:
            w.postAttentionNorm = w.postAttentionNorm.dividingEach(by: s)
            w.gate = w.gate.scalingColumns(by: s); w.up = w.up.scalingColumns(by: s)
        case .upToDown:
            w.up = w.up.dividingRows(by: s)
            w.down = w.down.scalingColumns(by: s)
        }
        return w
    }
}

extension LinearLayer {
    /// W·diag(s): input column j multiplied by s[j].
    public func scalingColumns(by s: [Float]) -> LinearLayer { updatingWeight { value, _, column in value * s[column] } }

    /// W·diag(1/s): input column j divided by s[j].
    public func dividingColumns(by s: [Float]) -> LinearLayer { updatingWeight { value, _, column in value / s[column] } }

    /// diag(1/s)·W (and the bias): output row i divided by s[i].
    public func dividingRows(by s: [Float]) -> LinearLayer {
        var copy = updatingWeight { value, row, _ in value / s[row] }
        copy.bias = bias?.dividingEach(by: s)
        return copy
    }

    /// The layer with weight element (row, column) replaced by `f(value, row, column)`.
    func updatingWeight(_ f: (Float, Int, Int) -> Float) -> LinearLayer {
        var copy = self
        let n = inFeatures
        copy.weight.withUnsafeMutableBufferPointer { p in
            for r in 0..<outFeatures {
                for j in 0..<n { p[r * n + j] = f(p[r * n + j], r, j) }
            }
        }
        return copy
    }
}

extension Tensor {
    /// Element i divided by s[i] (a vector).
    func dividingEach(by s: [Float]) -> Tensor {
        var copy = self
        copy.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] /= s[i] }
        }
        return copy
    }

    /// Column j divided by s[j] (x · diag(1/s)), for a (rows, columns) tensor.
    public func dividingColumns(by s: [Float]) -> Tensor {
        var copy = self
        let n = columns
        copy.withUnsafeMutableBufferPointer { p in
            for r in 0..<(p.count / max(n, 1)) {
                for j in 0..<n { p[r * n + j] /= s[j] }
            }
        }
        return copy
    }
}

extension LlamaBlock {
    /// The output of the module a smoothing search compares for `mapping` (llm-compressor's
    /// "parent": the lowest module holding every balance layer), from the balance layers' input
    /// `x`: self_attn (attention then o_proj) for q/k/v, o_proj for v → o, the MLP (gate/up,
    /// SwiGLU, down) for gate/up, down_proj for up → down.
    public func parentOutput(_ mapping: SmoothingMapping, input x: Tensor) -> Tensor {
        switch mapping {
        case .inputNormToQKV:
            var cache: KVCache? = nil
            return weights.o(attentionOutput(normalized: x, cache: &cache))
        case .valueToOutput: return weights.o(x)
        case .postAttentionNormToGateUp: return weights.down(mlpActivation(normalized: x))
        case .upToDown: return weights.down(x)
        }
    }
}

extension LlamaBlockWeights {
    /// Replaces `mapping`'s balance layers (in `SmoothingMapping.balance` order).
    public mutating func setBalance(_ mapping: SmoothingMapping, _ layers: [LinearLayer]) {
        switch mapping {
        case .inputNormToQKV: (q, k, v) = (layers[0], layers[1], layers[2])
        case .valueToOutput: o = layers[0]
        case .postAttentionNormToGateUp: (gate, up) = (layers[0], layers[1])
        case .upToDown: down = layers[0]
        }
    }
}
