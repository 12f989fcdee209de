import QDistTensor

/// What the backward of one decoder block needs, produced by `TrainingBlock.forward`. With
/// gradient checkpointing it exists for one block at a time: recomputed from the block's input
/// just before that block's backward, and dropped after.
struct BlockActivations {
    var input: Tensor  // x (rows, hidden)
    var inputInverseRMS: [Float]
    var queries: Tensor  // rotated (rows, heads·d)
    var keys: Tensor  // rotated (rows, kvHeads·d)
    var values: Tensor  // (rows, kvHeads·d)
    var residual: Tensor  // x + attention (rows, hidden)
    var residualInverseRMS: [Float]
    var gate: Tensor  // (rows, intermediate)
    var up: Tensor  // (rows, intermediate)
    var adapters: AdapterTape
}

/// What each adapter of a block saw in the forward: its (dropped-out) input and projection,
/// and the dropout mask when there is one.
struct AdapterTape {
    var saved: [LoRATarget: LoRAAdapter.Saved] = [:]
    var dropoutMasks: [LoRATarget: Tensor] = [:]
}

/// One decoder block as training runs it: the frozen weights of `LlamaBlock` (handed in for
/// this pass only) plus LoRA adapters on some linears, over several sequences packed row-wise.
///
/// `forward` is `LlamaBlock.forward` op for op (so, with B = 0, training and eval agree to the
/// bit) and keeps what the backward needs; `backward` maps dL/d(output) to dL/d(input) and the
/// adapters' gradients. The frozen weights get no gradient.
struct TrainingBlock {
    let index: Int
    let weights: LlamaBlockWeights
    let adapters: [LoRATarget: LoRAAdapter]
    let attention: LlamaAttention
    let rotary: RotaryEmbedding
    /// cos/sin for every position of the longest segment, shared by all blocks of a step.
    let rotaryTable: RotaryTable
    let epsilon: Float
    /// Rows of each sequence in the packed matrices.
    let segments: [Range<Int>]
    /// LoRA dropout probability; 0 disables it (eval, or lora_dropout = 0).
    let dropout: Double
    /// One seed per segment, for `LoRADropout`.
    let dropoutSeeds: [UInt64]

    /// The (rows, in) dropout mask of `target`'s adapter, segment by segment.
    func dropoutMask(_ target: LoRATarget, columns: Int) -> Tensor {
        var scalars: [Float] = []
        scalars.reserveCapacity((segments.last?.upperBound ?? 0) * columns)
        for (segment, seed) in zip(segments, dropoutSeeds) {
            scalars += LoRADropout.mask(probability: dropout, rows: segment.count, columns: columns,
                                        seed: LoRADropout.seed(sequence: seed, block: index, target: target))
        }
        return Tensor(shape: [scalars.count / max(columns, 1), columns], scalars: scalars)
    }

    /// base(x) plus the adapter path when `target` has one.
    func linear(_ target: LoRATarget, _ x: Tensor, tape: inout AdapterTape) -> Tensor {
        var y = target.linear(in: weights)(x)
        guard let adapter = adapters[target] else { return y }
        var input = x
        if dropout > 0 {
            let mask = dropoutMask(target, columns: x.columns)
            input = x * mask
            tape.dropoutMasks[target] = mask
        }
        tape.saved[target] = adapter.addAdapterPath(to: &y, input: input)
        return y
    }

    /// dx += dy·W, plus the adapter path's input gradient (through the dropout mask); returns
    /// the adapter's (dA, dB) when `target` has one.
    func linearBackward(_ target: LoRATarget, _ dy: Tensor, tape: AdapterTape, inputGradient dx: inout Tensor)
        -> (a: Tensor, b: Tensor)?
    {
        Tensor.gemm(dy, target.linear(in: weights).weight, into: &dx, alpha: 1, beta: 1)  // (rows, in)
        guard let adapter = adapters[target], let saved = tape.saved[target] else { return nil }
        let g = adapter.backward(saved, outputGradient: dy)
        if let mask = tape.dropoutMasks[target] {
            dx.addScaled(g.input * mask)
        } else {
            dx.addScaled(g.input)
        }
        return (g.a, g.b)
    }

    /// x (rows, hidden) → (rows, hidden), and the activations for `backward` (the caller may
    /// drop them: that is gradient checkpointing).
    func forward(_ x: Tensor) -> (output: Tensor, activations: BlockActivations) {
        let w = weights
        var tape = AdapterTape()
        let (h, inverse1) = RMSNorm.forward(x, weight: w.inputNorm, epsilon: epsilon)
        var q = linear(.q, h, tape: &tape), k = linear(.k, h, tape: &tape)
        let v = linear(.v, h, tape: &tape)
        rotary.apply(to: &q, heads: attention.heads, segments: segments, inverse: false, table: rotaryTable)
        rotary.apply(to: &k, heads: attention.kvHeads, segments: segments, inverse: false, table: rotaryTable)
        let attended = attention.forward(queries: q, keys: k, values: v, segments: segments)
        var out = x
        out.addScaled(linear(.o, attended, tape: &tape))
        let residual = out
        let (h2, inverse2) = RMSNorm.forward(residual, weight: w.postAttentionNorm, epsilon: epsilon)
        let gate = linear(.gate, h2, tape: &tape), up = linear(.up, h2, tape: &tape)
        out.addScaled(linear(.down, Tensor.swiGLU(gate: gate, up: up), tape: &tape))
        return (out, BlockActivations(input: x, inputInverseRMS: inverse1, queries: q, keys: k, values: v, residual: residual,
                                      residualInverseRMS: inverse2, gate: gate, up: up, adapters: tape))
    }

    /// dL/dx from dL/d(output), and (dA, dB) for every adapter of the block. `linearOutput`, when
    /// given, sees each linear's output gradient dL/dy (rows, out) as the backward reaches it.
    func backward(_ a: BlockActivations, outputGradient dy: Tensor, linearOutput: ((LoRATarget, Tensor) -> Void)? = nil)
        -> (input: Tensor, adapters: [LoRATarget: (a: Tensor, b: Tensor)])
    {
        let w = weights
        var grads: [LoRATarget: (a: Tensor, b: Tensor)] = [:]
        func through(_ target: LoRATarget, _ g: Tensor, _ dx: inout Tensor) {
            linearOutput?(target, g)
            if let ab = linearBackward(target, g, tape: a.adapters, inputGradient: &dx) { grads[target] = ab }
        }
        // MLP: out = residual + down(silu(gate(h2)) ⊙ up(h2)), h2 = norm(residual).
        var dActivated = Tensor.zeros(a.gate.shape)
        through(.down, dy, &dActivated)
        let (dGate, dUp) = Tensor.swiGLUBackward(gate: a.gate, up: a.up, outputGradient: dActivated)
        var dh2 = Tensor.zeros(a.residual.shape)
        through(.gate, dGate, &dh2)
        through(.up, dUp, &dh2)
        var dResidual = dy
        dResidual.addScaled(RMSNorm.backward(a.residual, weight: w.postAttentionNorm, inverseRMS: a.residualInverseRMS, outputGradient: dh2))
        // Attention: residual = x + o(attn(rope(q(h)), rope(k(h)), v(h))), h = norm(x).
        var dAttended = Tensor.zeros(a.queries.shape)
        through(.o, dResidual, &dAttended)
        var (dq, dk, dv) = attention.backward(queries: a.queries, keys: a.keys, values: a.values, segments: segments,
                                              outputGradient: dAttended)
        rotary.apply(to: &dq, heads: attention.heads, segments: segments, inverse: true, table: rotaryTable)
        rotary.apply(to: &dk, heads: attention.kvHeads, segments: segments, inverse: true, table: rotaryTable)
        var dh = Tensor.zeros(a.input.shape)
        through(.q, dq, &dh)
        through(.k, dk, &dh)
        through(.v, dv, &dh)
        var dx = dResidual
        dx.addScaled(RMSNorm.backward(a.input, weight: w.inputNorm, inverseRMS: a.inputInverseRMS, outputGradient: dh))
        return (dx, grads)
    }
}
