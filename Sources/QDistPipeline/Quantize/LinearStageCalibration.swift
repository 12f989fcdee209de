import QDistModel
import QDistTensor

/// The calibration forward of one block, stage by stage — q/k/v, o, gate/up, down — with the
/// per-window state at each stage boundary kept, so no stage recomputes an earlier one and each
/// group's inputs can be read more than once (`forEachInput`: column maxima first, then the
/// Hessian products). Under `sequential: linear` each stage runs with every earlier linear
/// already quantized and the last stage's output *is* the next block's input; `block` and
/// `none` run every stage with the original weights.
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

    /// The group reached last (nil before the first `advance`).
    var current: LinearGroup? { reached }

    /// Runs every window up to the input of `group` with `block`'s current weights. Groups must
    /// come in order, each exactly once; the inputs are then read by `forEachInput`.
    mutating func advance(to group: LinearGroup, block: LlamaBlock) {
        let order = LinearGroup.allCases
        precondition(order.firstIndex(of: group)! == reached.map { order.firstIndex(of: $0)! + 1 } ?? 0,
                     "linear stages must run in order: \(reached.map(\.rawValue) ?? "start") → \(group.rawValue)")
        reached = group
        switch group {
        case .qkv:
            break  // the normalized residual, made on demand
        case .o:
            pending = residual.map { x in
                var cache: KVCache? = nil
                return block.attentionOutput(normalized: block.attentionInput(x), cache: &cache)
            }
        case .gateUp:
            for i in residual.indices {
                residual[i] = block.residualAfterAttention(residual[i], attended: pending[i])
                pending[i] = Tensor.zeros([0])
            }
        case .down:
            for i in residual.indices { pending[i] = block.mlpActivation(normalized: block.mlpInput(residual[i])) }
        }
    }

    /// Shows every window's input of the group reached last to `body`, in window order. It may
    /// be called several times (statistics that need a first pass: the column maxima that fix
    /// the Hessian's grid); the normalized inputs of q/k/v and gate/up are recomputed each time
    /// (an RMSNorm, cheap next to the products) rather than held.
    func forEachInput(block: LlamaBlock, _ body: (Tensor) throws -> Void) rethrows {
        switch reached {
        case .qkv?: for x in residual { try body(block.attentionInput(x)) }
        case .gateUp?: for x in residual { try body(block.mlpInput(x)) }
        case .o?, .down?: for p in pending { try body(p) }
        case nil: preconditionFailure("forEachInput before the first stage")
        }
    }

    /// Divides column j of every window's pending tensor (the o or down input) by `s[j]`: after
    /// a smoothing folded `s` into that group, this is the input the smoothed block produces,
    /// and later stages stay consistent with the block's new weights.
    mutating func dividePendingColumns(by s: [Float]) {
        for i in pending.indices { pending[i] = pending[i].dividingColumns(by: s) }
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
