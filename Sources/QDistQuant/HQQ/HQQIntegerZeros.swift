import QDistTensor

/// HQQ with whole-number zero points, for formats that store integer zeros (compressed-tensors
/// pack-quantized, GPTQ): the solver's float zero points rounded to the nearest code (half to
/// even) and clamped to `0 ... 2^b − 1`, then every weight re-quantized on that grid with the
/// solver's scale, `W_q = clamp(round(W / scale + z), 0, 2^b − 1)`. Rounding the zeros gives
/// back part of what the proximal steps gained (README: on SmolLM2 it lands near RTN), which is
/// why the float-zero layout is the default; this is what a tool that only loads integer grids
/// can have.
extension HQQResult {
    /// This result with integer zero points and the codes `weight` (the tensor it was solved
    /// from, `(rows, columns)`) gets on them.
    public func withIntegerZeros(of weight: Tensor) -> HQQResult {
        precondition(weight.shape == [rows, columns], "weight \(weight.shape) is not the solved (\(rows), \(columns))")
        let qmax = Float((1 << nbits) - 1)
        let integerZeros = zeros.map { Swift.min(Swift.max($0.rounded(.toNearestOrEven), 0), qmax) }
        var codes = [UInt8](repeating: 0, count: rows * columns)
        weight.withUnsafeBufferPointer { w in
            for g in 0..<scales.count {
                let scale = scales[g], zero = integerZeros[g]
                for j in g * groupSize..<(g + 1) * groupSize {
                    codes[j] = UInt8(Swift.min(Swift.max((w[j] / scale + zero).rounded(.toNearestOrEven), 0), qmax))
                }
            }
        }
        return HQQResult(rows: rows, columns: columns, nbits: nbits, groupSize: groupSize, codes: codes, scales: scales,
                         zeros: integerZeros, errorHistory: errorHistory, stoppedEarly: stoppedEarly)
    }
}
