import QDistTensor

/// One LoRA adapter on a frozen linear: `y = x·Wᵀ + b + scaling · (dropout(x)·Aᵀ)·Bᵀ`
/// (PEFT's `lora.Linear.forward`). A is (r, in), B is (out, r), both trainable; W and b never
/// get a gradient, and no (out, in) gradient is ever formed — the adapter path costs
/// O(tokens·r·(in + out)) on top of the frozen product.
public struct LoRAAdapter: Sendable, Equatable {
    public var a: Tensor  // (r, in)
    public var b: Tensor  // (out, r)
    public var scaling: Float

    public init(a: Tensor, b: Tensor, scaling: Float) {
        precondition(a.rank == 2 && b.rank == 2 && a.shape[0] == b.shape[1],
                     "LoRA A \(a.shape) and B \(b.shape) disagree on the rank")
        self.a = a
        self.b = b
        self.scaling = scaling
    }

    /// PEFT's default init: A ~ kaiming_uniform_(a=√5) = U(−1/√in, 1/√in), B = 0.
    public static func initialized(rank: Int, inFeatures: Int, outFeatures: Int, scaling: Float, seed: UInt64) -> LoRAAdapter {
        LoRAAdapter(a: Tensor(shape: [rank, inFeatures], scalars: kaimingUniform(count: rank * inFeatures, inFeatures: inFeatures, seed: seed)),
                    b: .zeros([outFeatures, rank]), scaling: scaling)
    }

    /// `count` draws of U(−1/√in, 1/√in): torch's kaiming_uniform_(a=√5) on a (·, in) matrix
    /// (gain √(2/(1+5)) times √(3/in)).
    public static func kaimingUniform(count: Int, inFeatures: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        let bound = 1 / Double(inFeatures).squareRoot()
        return (0..<count).map { _ in Float((2 * rng.uniform() - 1) * bound) }
    }

    public var rank: Int { a.shape[0] }
    public var inFeatures: Int { a.shape[1] }
    public var outFeatures: Int { b.shape[0] }

    /// What the backward needs from the forward: the adapter's input after dropout and its
    /// projection onto the rank-r space.
    public struct Saved: Sendable {
        /// dropout(x): (tokens, in); x itself when there is no dropout.
        public var input: Tensor
        /// input·Aᵀ: (tokens, r).
        public var projected: Tensor
    }

    /// `y += scaling · (input·Aᵀ)·Bᵀ` in place, for `input` = dropout(x) (tokens, in); returns
    /// what `backward` needs.
    @discardableResult
    public func addAdapterPath(to y: inout Tensor, input: Tensor) -> Saved {
        precondition(input.columns == inFeatures && y.shape == [input.rows, outFeatures],
                     "LoRA (\(outFeatures)×\(rank)×\(inFeatures)) on input \(input.shape) into \(y.shape)")
        let projected = Tensor.matmul(input, a, transposeB: true)  // (tokens, r)
        Tensor.gemm(projected, b, into: &y, transposeB: true, alpha: scaling, beta: 1)
        return Saved(input: input, projected: projected)
    }

    /// The adapted linear without dropout (eval, generate): base(x) + scaling·x·Aᵀ·Bᵀ.
    public func callAsFunction(_ x: Tensor, base: LinearLayer) -> Tensor {
        var y = base(x)
        addAdapterPath(to: &y, input: x)
        return y
    }

    /// The base linear with this adapter folded in: `W + scaling · B·A` (PEFT's merge).
    public func merged(into base: LinearLayer) -> LinearLayer {
        precondition(base.weight.shape == [outFeatures, inFeatures], "merging a \(b.shape[0])×\(a.shape[1]) adapter into \(base.weight.shape)")
        var w = base.weight
        Tensor.gemm(b, a, into: &w, alpha: scaling, beta: 1)
        return LinearLayer(weight: w, bias: base.bias)
    }

    /// Gradients of the adapter path given dL/dy (tokens, out):
    /// dB = s·dyᵀ·u, dA = (s·dy·B)ᵀ·x̃, and d(x̃) = s·dy·B·A, returned for the caller to route
    /// back through dropout (the frozen path's dy·W is the caller's too).
    public func backward(_ saved: Saved, outputGradient dy: Tensor) -> (a: Tensor, b: Tensor, input: Tensor) {
        var gradB = Tensor.zeros(b.shape)
        Tensor.gemm(dy, saved.projected, into: &gradB, transposeA: true, alpha: scaling)  // (out, r)
        var du = Tensor.zeros([dy.rows, rank])
        Tensor.gemm(dy, b, into: &du, alpha: scaling)  // (tokens, r)
        let gradA = Tensor.matmul(du, saved.input, transposeA: true)  // (r, in)
        let gradInput = Tensor.matmul(du, a)  // (tokens, in)
        return (gradA, gradB, gradInput)
    }
}

/// PEFT's `lora_dropout` (an `nn.Dropout` on the adapter path only): each input element is
/// zeroed with probability p and the survivors scaled by 1/(1−p).
///
/// Masks come from a seed rather than a stateful generator, because the training graph
/// recomputes each block's forward during the backward (gradient checkpointing) and must draw
/// the very same mask twice; and a sequence's mask depends only on its own seed, so a batch split
/// over any number of ranks trains identically.
public enum LoRADropout {
    /// The seed of the mask for one sequence, block and target.
    public static func seed(sequence: UInt64, block: Int, target: LoRATarget) -> UInt64 {
        var g = SeededGenerator(seed: sequence ^ (UInt64(block) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(target.order + 1) << 56))
        return g.next()
    }

    /// A (rows, columns) mask of 0 and 1/(1−p), drawn from `seed`: element i is dropped when its
    /// 32-bit lane (two per 64-bit draw) is below p·2³², so p is honoured to 2⁻³².
    public static func mask(probability p: Double, rows: Int, columns: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        let keep = Float(1 / (1 - p))
        let threshold = UInt32(min((p * 0x1p32).rounded(), Double(UInt32.max)))
        var mask = [Float](repeating: 0, count: rows * columns)
        mask.withUnsafeMutableBufferPointer { m in
            var i = 0
            while i < m.count {
                let bits = rng.next()
                m[i] = UInt32(truncatingIfNeeded: bits) < threshold ? 0 : keep
                if i + 1 < m.count { m[i + 1] = UInt32(truncatingIfNeeded: bits >> 32) < threshold ? 0 : keep }
                i += 2
            }
        }
        return mask
    }
}
