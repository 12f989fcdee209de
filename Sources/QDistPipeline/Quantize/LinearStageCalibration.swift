import QDistModel
import QDistTensor

/// `sequential: linear` calibration of one block in a single forward: the block runs stage by
/// stage — q/k/v, o, gate/up, down — each stage with every earlier linear already quantized, and
/// the per-window state at the stage boundary is kept, so no stage recomputes an earlier one
/// and the last stage's output *is* the next block's input.
///
/// This is GPTQ's "true sequential" order (each linear's Hessian sees the quantization error of
/// the linears before it in the block) at the cost of one quantized forward plus the Hessian
/// products — less than `sequential: block`, which forwards once with the original weights to
/// observe and once more with the quantized ones to propagate. The price is memory: per window
/// the residual stream plus one stage's pending tensor (at most the MLP activation,
/// intermediate_size per token) instead of the residual stream alone.
struct LinearStageCalibration {
    /// Per window: the block input, then (from the gate/up stage on) x + o(attended).
    private var residual: [Tensor]
    /// Per window: the attention output (after the o stage) or the MLP activation (after down).
    private var pending: [Tensor] = []
    private var reached: LinearGroup? = nil

    init(activations: [Tensor]) {
        residual = activations
    }

    /// Runs every window up to the input of `group` with `block`'s current weights, showing
    /// each window's input of `group` to `observe` (Hessian accumulation). Groups must come in
    /// order, each exactly once.
    mutating func advance(to group: LinearGroup, block: LlamaBlock, observe: ((Tensor) -> Void)?) {
        let order = LinearGroup.allCases
        precondition(order.firstIndex(of: group)! == reached.map { order.firstIndex(of: $0)! + 1 } ?? 0,
                     "linear stages must run in order: \(reached.map(\.rawValue) ?? "start") → \(group.rawValue)")
        reached = group
        switch group {
        case .qkv:
            if let observe { for x in residual { observe(block.attentionInput(x)) } }
        case .o:
            pending = residual.map { x in
                var cache: KVCache? = nil
                let attended = block.attentionOutput(normalized: block.attentionInput(x), cache: &cache)
                observe?(attended)
                return attended
            }
        case .gateUp:
            for i in residual.indices {
                residual[i] = block.residualAfterAttention(residual[i], attended: pending[i])
                pending[i] = Tensor.zeros([0])
                observe?(block.mlpInput(residual[i]))
            }
        case .down:
            for i in residual.indices {
                pending[i] = block.mlpActivation(normalized: block.mlpInput(residual[i]))
                observe?(pending[i])
            }
        }
    }

    /// After the down stage: the block's outputs with every linear quantized, i.e. the next
    /// block's inputs.
    mutating func finish(block: LlamaBlock) -> [Tensor] {
        precondition(reached == .down, "finish needs all four stages")
        for i in residual.indices {
            residual[i] = block.output(residual: residual[i], activated: pending[i])
            pending[i] = Tensor.zeros([0])
        }
        return residual
    }
}
