import QDistTensor

/// Where the training graph gets the frozen base weights, at the moment it needs them.
///
/// The graph asks for block i's weights once in the forward and once more in the backward
/// (where it recomputes the block), and holds them only while it works on that block. That is
/// the hook for QLoRA and ZeRO-3: an implementation may dequantize NF4 into a `LlamaBlockWeights`,
/// or all-gather the block's shards from the other ranks, and let it go when the graph moves on.
/// The embedding, final norm and head are asked for once per step.
public protocol FrozenWeightProvider {
    /// (vocab, hidden): asked for once per step, in the forward.
    func embeddingWeight() throws -> Tensor
    /// (hidden): asked for once per step.
    func finalNormWeight() throws -> Tensor
    /// (vocab, hidden), the embedding itself when tied: asked for once per step, and used for
    /// the logits and their gradient back to the hidden states.
    func outputHeadWeight() throws -> Tensor
    /// The weights of block `index` for one pass (forward 0…L−1, then backward L−1…0).
    func blockWeights(_ index: Int, pass: TrainingPass) throws -> LlamaBlockWeights
}

/// A provider from closures: the block closure runs on every request, so it can count,
/// dequantize or gather.
public struct FrozenWeightClosures: FrozenWeightProvider {
    /// Returns the (vocab, hidden) embedding.
    public var embedding: () throws -> Tensor
    /// Returns the (hidden) final norm weight.
    public var finalNorm: () throws -> Tensor
    /// Returns the (vocab, hidden) output head.
    public var outputHead: () throws -> Tensor
    /// Returns block i's weights for a pass.
    public var block: (Int, TrainingPass) throws -> LlamaBlockWeights

    public init(embedding: @escaping () throws -> Tensor, finalNorm: @escaping () throws -> Tensor,
                outputHead: @escaping () throws -> Tensor, block: @escaping (Int, TrainingPass) throws -> LlamaBlockWeights) {
        self.embedding = embedding
        self.finalNorm = finalNorm
        self.outputHead = outputHead
        self.block = block
    }

    public func embeddingWeight() throws -> Tensor { try embedding() }
    public func finalNormWeight() throws -> Tensor { try finalNorm() }
    public func outputHeadWeight() throws -> Tensor { try outputHead() }
    public func blockWeights(_ index: Int, pass: TrainingPass) throws -> LlamaBlockWeights { try block(index, pass) }
}

/// A model held whole in memory trains as its own provider.
extension LlamaModel: FrozenWeightProvider {
    public func embeddingWeight() throws -> Tensor { embedding }
    public func finalNormWeight() throws -> Tensor { finalNorm }
    public func outputHeadWeight() throws -> Tensor { outputHead }
    public func blockWeights(_ index: Int, pass: TrainingPass) throws -> LlamaBlockWeights { blocks[index].weights }
}
