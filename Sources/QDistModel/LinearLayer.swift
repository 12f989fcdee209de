import QDistTensor

/// One `nn.Linear`: weight (out, in) as PyTorch stores it, and an optional bias (out).
///
/// The forward is `x · Wᵀ + b` through one sgemm. Quantized formats dequantize into this type
/// (or replace it) so the decoder never needs to know how weights were stored. A W8A8 layer
/// also fake-quantizes its input first (`inputQuantizer`); nil — the default — leaves the
/// forward exactly as it was.
///
/// A 2:4-sparse weight can also carry a compressed copy (`useSemiStructuredSparseKernel`) that
/// serves products of up to `SemiStructuredSparseMatrix.maxTokens` rows — decode steps — at about
/// half the weight bytes. The dense weight stays for longer inputs (prefill, evaluation windows),
/// where OpenBLAS's sgemm is faster; the cost is ~56% more memory for those linears (SmolLM2:
/// 425 MB dense + 239 MB compressed), which a 135M–1B model on a laptop affords.
public struct LinearLayer: Sendable {
    /// Changing the weight drops the compressed copy, which would no longer match it.
    public var weight: Tensor {  // (out, in)
        didSet { sparseWeight = nil }
    }
    public var bias: Tensor?  // (out)
    /// Quantize-dequantize of the input before the product (activation quantization).
    public var inputQuantizer: InputQuantizer?
    /// The weight in 2:4 compressed form, for small token counts; nil unless
    /// `useSemiStructuredSparseKernel()` found the weight 2:4.
    public private(set) var sparseWeight: SemiStructuredSparseMatrix?

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
        let y: Tensor
        if let sparse = sparseWeight, x.rows <= SemiStructuredSparseMatrix.maxTokens {
            y = sparse.multiply(input.reshaped([x.rows, inFeatures]))
        } else {
            y = Tensor.matmul(input.reshaped([x.rows, inFeatures]), weight, transposeB: true)
        }
        return bias.map { y.addingRowVector($0) } ?? y
    }

    /// Builds the compressed copy when the weight is exactly 2:4 (see `SemiStructuredSparseMatrix`)
    /// and returns whether it did. A dense weight is rejected at its first group, so calling this
    /// on every linear of a model that is not pruned costs next to nothing.
    @discardableResult
    public mutating func useSemiStructuredSparseKernel() -> Bool {
        sparseWeight = SemiStructuredSparseMatrix.detect(weight)
        return sparseWeight != nil
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
