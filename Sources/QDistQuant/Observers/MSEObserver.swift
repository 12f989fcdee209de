import Foundation
import QDistTensor

/// Clipping by grid search: shrink the min/max range by `p = 1 − i/grid` for
/// `i = 0 ..< Int(maxShrink·grid)` and keep the range whose fake-quantized values have the
/// lowest `Σ |x − q(x)|^norm` (gptq `Quantizer(mse=True)`; llm-compressor's `mse` observer).
///
/// Why: on heavy-tailed weights the exact min/max wastes most codes on a few outliers; giving
/// them up lowers the error of everything else. Failure mode: it costs `maxShrink·grid`
/// quantizations of the group (80 with the defaults), and on data without outliers it simply
/// returns the min/max range (p = 1 is the first candidate and wins ties).
public struct MSEObserver: WeightRangeObserver {
    public let parameters: QuantizationArgs.MSEParameters

    public init(_ parameters: QuantizationArgs.MSEParameters = .init()) {
        self.parameters = parameters
    }

    public func range(of values: UnsafeBufferPointer<Float>, grid: QuantizationGrid) -> ClipRange {
        let base = MinMaxObserver.exactRange(values)
        var best = base
        var bestError = Double.greatestFiniteMagnitude
        var sinceImprovement = 0
        let steps = Int(parameters.maxShrink * parameters.grid)
        for i in 0..<max(steps, 1) {
            let p = Float(1 - Double(i) / parameters.grid)
            let candidate = ClipRange(min: base.min * p, max: base.max * p)
            let error = Self.error(values, candidate, grid: grid, norm: parameters.norm)
            if error < bestError {
                bestError = error
                best = candidate
                sinceImprovement = 0
            } else {
                sinceImprovement += 1
                if let patience = parameters.patience, sinceImprovement >= patience { break }
            }
        }
        return best
    }

    /// `Σ |x − q(x)|^norm` of `values` on the grid built from `range`.
    public static func error(_ values: UnsafeBufferPointer<Float>, _ range: ClipRange, grid: QuantizationGrid,
                             norm: Double) -> Double {
        let (scale, zero) = grid.parameters(min: range.min, max: range.max)
        var sum = 0.0
        if norm == 2 {
            for x in values {
                let e = Double(grid.fakeQuantize(x, scale: scale, zeroPoint: zero) - x)
                sum += e * e
            }
        } else {
            let n = Float(norm)
            for x in values {
                let e = abs(grid.fakeQuantize(x, scale: scale, zeroPoint: zero) - x)
                if e > 0 { sum += Double(powf(e, n)) }
            }
        }
        return sum
    }
}
