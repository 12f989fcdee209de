import QDistTensor

/// One `nn.Linear`: weight (out, in) as PyTorch stores it, and an optional bias (out).
///
/// The forward is `x · Wᵀ + b` through one sgemm. Quantized formats dequantize into this type
/// (or replace it) so the decoder never needs to know how weights were stored. A W8A8 layer
/// also fake-quantizes its input first (`inputQuantizer`); nil — the default — leaves the
/// forward exactly as it was.
public struct LinearLayer: Sendable {
    public var weight: Tensor  // (out, in)
    public var bias: Tensor?  // (out)
    /// Quantize-dequantize of the input before the product (activation quantization).
    public var inputQuantizer: InputQuantizer?

    public init(weight: Tensor, bias: Tensor? = nil, inputQuantizer: InputQuantizer? = nil) {
        precondition(weight.rank == 2, "linear weight must be a matrix, got \(weight.shape)")
        precondition(bias == nil || bias!.count == weight.shape[0], "bias \(bias!.shape) for weight \(weight.shape)")
        self.weight = weight
        self.bias = bias
        self.inputQuantizer = inputQuantizer
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    /// x (tokens, in) → (tokens, out).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.columns == inFeatures, "linear expects \(inFeatures) features, got \(x.shape)")
        let input = inputQuantizer.map { $0(x) } ?? x
        let y = Tensor.matmul(input.reshaped([x.rows, inFeatures]), weight, transposeB: true)
        return bias.map { y.addingRowVector($0) } ?? y
    }
}

/// The linear layers of a decoder block grouped by the input they read: q/k/v share the
/// normalized hidden state, gate/up share the second normalized state. Calibration collects
/// one Hessian per group (GPTQ) and quantization order follows these groups.
public enum LinearGroup: String, Sendable, CaseIterable {
    case qkv, o, gateUp = "gate_up", down

    /// The linear names (HF suffixes) that read this group's input.
    public var members: [String] {
        switch self {
        case .qkv: return ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]
        case .o: return ["self_attn.o_proj"]
        case .gateUp: return ["mlp.gate_proj", "mlp.up_proj"]
        case .down: return ["mlp.down_proj"]
        }
    }
}

/// Sees the input of every linear group as a block runs: how calibration observes activations
/// without the decoder knowing about Hessians or ranges.
public protocol BlockInputObserver {
    /// `input` is (tokens, inFeatures) for the linears of `group` in block `block`.
    mutating func observe(block: Int, group: LinearGroup, input: Tensor)
}
