import Foundation

/// Element-wise and row-wise operations of a transformer forward pass.
///
/// Loops run over raw buffers so the optimizer vectorizes them; matrix products belong in
/// `LinearAlgebra.swift` (BLAS), never here.
extension Tensor {
    /// Applies `f` to every element.
    @inlinable
    public func map(_ f: (Float) -> Float) -> Tensor {
        Tensor(shape: shape, scalars: scalars.map(f))
    }

    /// Element-wise combination of two tensors of equal shape.
    @inlinable
    public static func zip(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        precondition(a.shape == b.shape, "element-wise op on shapes \(a.shape) and \(b.shape)")
        var out = [Float](repeating: 0, count: a.count)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { po in
                    for i in 0..<po.count { po[i] = f(pa[i], pb[i]) }
                }
            }
        }
        return Tensor(shape: a.shape, scalars: out)
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor { zip(a, b, +) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { zip(a, b, -) }
    /// Element-wise (Hadamard) product; use `matmul` for the matrix product.
    public static func * (a: Tensor, b: Tensor) -> Tensor { zip(a, b, *) }
    public static func * (a: Tensor, s: Float) -> Tensor { a.map { $0 * s } }

    /// `self += alpha · other`, in place (saxpy).
    public mutating func addScaled(_ other: Tensor, alpha: Float = 1) {
        precondition(shape == other.shape, "addScaled on shapes \(shape) and \(other.shape)")
        other.withUnsafeBufferPointer { po in
            withUnsafeMutableBufferPointer { p in
                for i in 0..<p.count { p[i] += alpha * po[i] }
            }
        }
    }

    /// Adds a vector of length `columns` to every row (a bias).
    public func addingRowVector(_ v: Tensor) -> Tensor {
        precondition(v.count == columns, "row vector of \(v.count) for \(columns) columns")
        var out = self
        let c = columns
        v.withUnsafeBufferPointer { pv in
            out.withUnsafeMutableBufferPointer { p in
                for r in 0..<(c == 0 ? 0 : p.count / c) { for j in 0..<c { p[r * c + j] += pv[j] } }
            }
        }
        return out
    }

    /// Sum of all elements, accumulated in Double so long tensors do not drift.
    public func sum() -> Double {
        withUnsafeBufferPointer { p in p.reduce(0.0) { $0 + Double($1) } }
    }

    /// Largest absolute value (0 for an empty tensor); NaN propagates.
    public func absMax() -> Float {
        withUnsafeBufferPointer { p in
            var m: Float = 0
            for x in p {
                if x.isNaN { return .nan }
                m = Swift.max(m, x.magnitude)
            }
            return m
        }
    }

    /// Smallest and largest element.
    public func minMax() -> (min: Float, max: Float) {
        withUnsafeBufferPointer { p in
            var lo = Float.infinity, hi = -Float.infinity
            for x in p { lo = Swift.min(lo, x); hi = Swift.max(hi, x) }
            return (lo, hi)
        }
    }

    /// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) · weight`, as Llama does it
    /// (the mean is taken in Float32 like the reference, but accumulated in Double here).
    public func rmsNormalized(weight: Tensor, epsilon: Float) -> Tensor {
        let c = columns
        precondition(weight.count == c, "rmsNorm weight of \(weight.count) for \(c) columns")
        var out = self
        weight.withUnsafeBufferPointer { pw in
            out.withUnsafeMutableBufferPointer { p in
                for r in 0..<(c == 0 ? 0 : p.count / c) {
                    var ss = 0.0
                    for j in 0..<c { let x = Double(p[r * c + j]); ss += x * x }
                    let inv = Float(1 / (ss / Double(c) + Double(epsilon)).squareRoot())
                    for j in 0..<c { p[r * c + j] = p[r * c + j] * inv * pw[j] }
                }
            }
        }
        return out
    }

    /// Softmax over the last dimension, stable (max subtracted first).
    public func softmaxRows() -> Tensor {
        var out = self
        out.softmaxRowsInPlace()
        return out
    }

    /// Softmax over the last dimension, in place.
    public mutating func softmaxRowsInPlace() {
        let c = columns
        withUnsafeMutableBufferPointer { p in
            for r in 0..<(c == 0 ? 0 : p.count / c) {
                var m = -Float.infinity
                for j in 0..<c { m = Swift.max(m, p[r * c + j]) }
                var s: Float = 0
                for j in 0..<c { let e = Foundation.exp(p[r * c + j] - m); p[r * c + j] = e; s += e }
                let inv = 1 / s
                for j in 0..<c { p[r * c + j] *= inv }
            }
        }
    }

    /// Log-softmax over the last dimension (for cross-entropy and perplexity).
    public func logSoftmaxRows() -> Tensor {
        var out = self
        let c = columns
        out.withUnsafeMutableBufferPointer { p in
            for r in 0..<(c == 0 ? 0 : p.count / c) {
                var m = -Float.infinity
                for j in 0..<c { m = Swift.max(m, p[r * c + j]) }
                var s = 0.0
                for j in 0..<c { s += Double(Foundation.exp(p[r * c + j] - m)) }
                let logZ = m + Float(Foundation.log(s))
                for j in 0..<c { p[r * c + j] -= logZ }
            }
        }
        return out
    }

    /// SiLU (swish): x · sigmoid(x).
    public func silu() -> Tensor { map { $0 / (1 + Foundation.exp(-$0)) } }

    /// SwiGLU gate: silu(gate) ⊙ up, the Llama MLP's inner activation.
    public static func swiGLU(gate: Tensor, up: Tensor) -> Tensor {
        zip(gate, up) { g, u in g / (1 + Foundation.exp(-g)) * u }
    }
}

extension Tensor {
    /// The index of the first NaN or infinity, if any. One vectorizable pass first: a value is
    /// not finite exactly when its exponent bits are all ones, and an integer max over the
    /// exponent fields (unlike a float sum) has no order for the compiler to keep.
    public var firstNonFiniteIndex: Int? {
        withUnsafeBufferPointer { p in
            var largest: UInt32 = 0
            for x in p { largest = Swift.max(largest, x.bitPattern & 0x7F80_0000) }
            return largest == 0x7F80_0000 ? p.firstIndex { !$0.isFinite } : nil
        }
    }
}
