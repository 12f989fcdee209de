import QDistTensor

/// One `nn.Linear`: weight (out, in) as PyTorch stores it, and an optional bias (out).
///
/// The forward is `x · Wᵀ + b` through one sgemm. Quantized formats dequantize into this type
/// (or replace it) so the decoder never needs to know how weights were stored. A W8A8 layer
/// also fake-quantizes its input first (`inputQuantizer`); nil — the default — leaves the
/// forward exactly as it was.
///
/// A sparse weight (2:4, or at least half zeros) can also carry a compressed copy
/// (`useSparseKernel`) that serves products of up to its `maxTokens` rows — decode steps — from
/// about half the weight bytes. The dense weight stays for longer inputs (prefill, evaluation
/// windows), where OpenBLAS's sgemm is faster; the cost is ~55% more memory for those linears
/// (SmolLM2 2:4: 425 MB dense + 239 MB compressed), which a 135M–1B model on a laptop affords.
public struct LinearLayer: Sendable {
    /// Changing the weight drops the compressed copy, which would no longer match it.
    public var weight: Tensor {  // (out, in)
        didSet { sparseWeight = nil }
    }
    public var bias: Tensor?  // (out)
    /// Quantize-dequantize of the input before the product (activation quantization).
    public var inputQuantizer: InputQuantizer?
    /// The weight in compressed sparse form, for small token counts; nil unless
    /// `useSparseKernel()` found the weight sparse enough.
    public private(set) var sparseWeight: CompressedLinearWeight?

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
        if let sparse = sparseWeight, x.rows <= sparse.maxTokens {
            y = sparse.multiply(input.reshaped([x.rows, inFeatures]))
        } else {
            y = Tensor.matmul(input.reshaped([x.rows, inFeatures]), weight, transposeB: true)
        }
        return bias.map { y.addingRowVector($0) } ?? y
    }

    /// Builds the compressed copy when the weight is 2:4 or at least half zeros (see
    /// `CompressedLinearWeight.detect`) and its kernel beats sgemm for inputs of `inputRows`
    /// rows, and returns it; nil leaves the layer dense only (no memory spent on a copy that
    /// would never run). A dense weight is rejected after one read of it, so calling this on
    /// every linear of a model that is not pruned costs ~0.1 s for SmolLM2.
    @discardableResult
    public mutating func useSparseKernel(forInputRows inputRows: Int = 1) -> CompressedLinearWeight? {
        sparseWeight = CompressedLinearWeight.detect(weight).flatMap { $0.maxTokens >= inputRows ? $0 : nil }
        return sparseWeight
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
