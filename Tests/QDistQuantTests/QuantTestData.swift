import QDistTensor
@testable import QDistQuant

/// Deterministic inputs for the quantization tests: Gaussian weights, correlated activations,
/// and Hessians built from them, all from a fixed seed so failures reproduce.
enum QuantTestData {
    /// (rows, columns) with N(0, std²) entries; `outliers` of them multiplied by `outlierScale`.
    static func gaussian(_ rows: Int, _ columns: Int, std: Float = 1, seed: UInt64,
                         outlierFraction: Float = 0, outlierScale: Float = 10) -> Tensor {
        var rng = SeededGenerator(state: seed)
        var v = [Float](repeating: 0, count: rows * columns)
        for i in v.indices {
            v[i] = std * rng.nextGaussian()
            if outlierFraction > 0 && rng.nextUniform() < outlierFraction { v[i] *= outlierScale }
        }
        return Tensor(shape: [rows, columns], scalars: v)
    }

    /// (tokens, columns) activations whose features are AR(1)-correlated (ρ) and scaled per
    /// feature between 0.2 and 5, so that XᵀX is far from diagonal and from isotropic.
    static func correlatedInputs(tokens: Int, columns: Int, rho: Float = 0.8, seed: UInt64) -> Tensor {
        var rng = SeededGenerator(state: seed)
        let scales = (0..<columns).map { _ in 0.2 + 4.8 * rng.nextUniform() * rng.nextUniform() }
        var x = [Float](repeating: 0, count: tokens * columns)
        let innovation = (1 - rho * rho).squareRoot()
        for t in 0..<tokens {
            var prev: Float = 0
            for c in 0..<columns {
                prev = rho * prev + innovation * rng.nextGaussian()
                x[t * columns + c] = prev * scales[c]
            }
        }
        return Tensor(shape: [tokens, columns], scalars: x)
    }

    /// 2/N·XᵀX from `x` fed as `batches` sequences, through the accumulator under test.
    static func hessian(_ x: Tensor, batches: Int = 4) -> Tensor {
        let per = (x.rows + batches - 1) / batches
        let parts = (0..<batches).filter { $0 * per < x.rows }.map { x.rows($0 * per..<min(($0 + 1) * per, x.rows)) }
        return HessianAccumulator.over(parts).hessian
    }

    /// ‖(W − Q)·Xᵀ‖_F: the layer's output error on inputs X (tokens, columns).
    static func outputError(_ w: Tensor, _ q: Tensor, _ x: Tensor) -> Double {
        let diff = Tensor.matmul(x, (w - q), transposeB: true)
        return diff.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    }

    /// Fraction of equal entries.
    static func agreement(_ a: [Int8], _ b: [Int8]) -> Double {
        precondition(a.count == b.count)
        return Double(zip(a, b).filter { $0 == $1 }.count) / Double(max(a.count, 1))
    }
}
