import Foundation
import QDistTensor

/// Timing entry point for `GPTQSolver.quantizeWeight` on synthetic layers, for the bench binary
/// (`qdist-bench`) and for comparison with `Benchmarks/gptq_reference_torch.py`, which builds the
/// same kind of problem: W ~ N(0, 0.02²) with a few outliers, and H = 2/N·XᵀX from N = 128
/// sequences of 512 tokens whose features are AR(1)-correlated (ρ = 0.9) with per-feature scales
/// spanning 0.1…10 (LLM activations have a few large channels).
///
/// Why a library function: the lead wires it into the bench binary without this module knowing
/// about argument parsing. Failure mode: building H costs `tokens·columns²` flops (≈ 0.15 TFLOP
/// at 1536 columns, seconds on a laptop); it is excluded from the timing.
public enum GPTQBenchmark {
    /// Best-of-`repeats` seconds of one `quantizeWeight` call (int4 symmetric, minmax, block 128,
    /// dampening 0.01) on a (rows, columns) weight; act-order is `actorder: group` when on.
    public static func run(rows: Int, columns: Int, groupSize: Int = 64, actOrder: Bool,
                           repeats: Int = 3, tokens: Int = 128 * 512) -> Double {
        let (w, h) = syntheticLayer(rows: rows, columns: columns, tokens: tokens, seed: 1)
        let args = QuantizationArgs(numBits: 4, type: .int, symmetric: true, strategy: .group, groupSize: groupSize,
                                    actorder: actOrder ? .group : nil)
        var best = Double.infinity
        let clock = ContinuousClock()
        for _ in 0..<max(repeats, 1) {
            let start = clock.now
            _ = try? GPTQSolver.quantizeWeight(w, hessian: h, args: args)
            let elapsed = clock.now - start
            best = min(best, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        }
        return best
    }

    /// Floating-point operations of one `quantizeWeight` call (Cholesky + triangular inverse +
    /// lazy block updates + in-block updates), the numerator of a GFLOP/s figure.
    public static func flops(rows m: Int, columns n: Int, blockSize b: Int = 128) -> Double {
        let (md, nd) = (Double(m), Double(n))
        var lazy = 0.0
        for i2 in stride(from: b, to: n, by: b) { lazy += 2 * Double(n - i2) * md * Double(b) }
        return nd * nd * nd / 3 + nd * nd * nd / 3 + lazy + md * nd * Double(b)
    }

    /// A synthetic (weight, Hessian) pair as described above, deterministic in `seed`. `tokens`
    /// are split into sequences of 512 (each counted as one sample, as gptq does).
    public static func syntheticLayer(rows: Int, columns: Int, tokens: Int = 128 * 512,
                                      seed: UInt64) -> (weight: Tensor, hessian: Tensor) {
        var rng = SeededGenerator(state: seed)
        var w = [Float](repeating: 0, count: rows * columns)
        for i in w.indices {
            w[i] = 0.02 * rng.nextGaussian()
            if rng.nextUniform() < 0.001 { w[i] *= 8 }
        }
        let scales = (0..<columns).map { _ in Float(0.1 * pow(10, 2 * Double(rng.nextUniform()))) }
        var windows: [Tensor] = []
        let seq = 512
        var done = 0
        while done < tokens {
            let t = min(seq, tokens - done)
            var x = [Float](repeating: 0, count: t * columns)
            for r in 0..<t {
                var prev: Float = 0
                for c in 0..<columns {
                    prev = 0.9 * prev + 0.43589 * rng.nextGaussian()  // √(1 − 0.81)
                    x[r * columns + c] = prev * scales[c]
                }
            }
            windows.append(Tensor(shape: [t, columns], scalars: x))
            done += t
        }
        return (Tensor(shape: [rows, columns], scalars: w), HessianAccumulator.over(windows, samples: 1).hessian)
    }
}
