import QDistTensor

/// A linear weight in one of the compressed sparse forms, for products of a few input rows
/// (decode steps), where reading fewer weight bytes is what makes them faster.
///
/// Why an enum: a 2:4 weight is also ≥50% unstructured, but the 2:4 kernel is about twice as
/// fast and pays off up to more tokens, so `detect` prefers it; each form carries its own
/// token limit, beyond which `LinearLayer` uses the dense sgemm.
public enum CompressedLinearWeight: Sendable {
    /// Two zeros in every four consecutive inputs (`SemiStructuredSparseMatrix`).
    case semiStructured(SemiStructuredSparseMatrix)
    /// At least half the entries zero, anywhere (`UnstructuredSparseMatrix`).
    case unstructured(UnstructuredSparseMatrix)

    /// The faster compressed form of `weight` (out, in), or nil when it is neither 2:4 nor at
    /// least half zeros (then it stays dense).
    public static func detect(_ weight: Tensor) -> CompressedLinearWeight? {
        if let m = SemiStructuredSparseMatrix.detect(weight) { return .semiStructured(m) }
        if let m = UnstructuredSparseMatrix.detect(weight) { return .unstructured(m) }
        return nil
    }

    /// The most input rows for which this form beats the dense sgemm (measured; see each type).
    public var maxTokens: Int {
        switch self {
        case .semiStructured: return SemiStructuredSparseMatrix.maxTokens
        case .unstructured: return UnstructuredSparseMatrix.maxTokens
        }
    }

    /// The name reports use: "2:4" or "unstructured".
    public var kindName: String {
        switch self {
        case .semiStructured: return "2:4"
        case .unstructured: return "unstructured"
        }
    }

    /// x (tokens, in) · Wᵀ → (tokens, out).
    public func multiply(_ x: Tensor) -> Tensor {
        switch self {
        case .semiStructured(let m): return m.multiply(x)
        case .unstructured(let m): return m.multiply(x)
        }
    }
}
