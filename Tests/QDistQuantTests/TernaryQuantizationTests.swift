import QDistTensor
import XCTest
@testable import QDistQuant

/// BitNet b1.58 ternary PTQ (FORMATS.md §7.5) as the `absmean` observer on a 2-bit symmetric
/// grid: against the reference formula in Float64 — γ = max(mean|W|, 1e-5) over the tensor, row
/// or group; W_t = clamp(round(W/γ), −1, 1) (half to even); Ŵ = W_t·γ.
final class TernaryQuantizationTests: XCTestCase {
    func weight(rows: Int = 12, columns: Int = 128, seed: UInt64 = 5) -> Tensor {
        var rng = SeededGenerator(state: seed)
        var v = (0..<(rows * columns)).map { _ in Float.random(in: -0.05...0.05, using: &rng) }
        v[7] = 0.9  // an outlier: clamps to +1, as BitNet's formula does
        for r in 0..<rows { v[r * columns + 3] = 0 }
        return Tensor(shape: [rows, columns], scalars: v)
    }

    /// The formula in Float64 over consecutive slices of `size` values.
    func reference(_ w: [Float], size: Int) -> (codes: [Int], gammas: [Double]) {
        var codes: [Int] = [], gammas: [Double] = []
        for start in stride(from: 0, to: w.count, by: size) {
            let slice = w[start..<min(start + size, w.count)].map(Double.init)
            let gamma = max(slice.reduce(0) { $0 + abs($1) } / Double(slice.count), 1e-5)
            gammas.append(gamma)
            codes += slice.map { Int(min(max(($0 / gamma).rounded(.toNearestOrEven), -1), 1)) }
        }
        return (codes, gammas)
    }

    func testAbsmeanTernaryMatchesTheBitNetFormulaPerTensorChannelAndGroup() throws {
        let w = weight()
        for (strategy, groupSize, size) in [(QuantizationArgs.Strategy.tensor, nil, w.count), (.channel, nil, w.columns), (.group, 32, 32)] {
            var args = QuantizationArgs(numBits: 2, type: .int, symmetric: true, strategy: strategy, groupSize: groupSize)
            args.observer = .absmean
            let q = try QuantizationGrid(args).quantize(w)
            let ref = reference(w.scalars, size: size)
            XCTAssertEqual(q.codes.map(Int.init), ref.codes, "\(strategy)")
            XCTAssertEqual(Set(q.codes), [-1, 0, 1], "ternary codes only")
            for (s, g) in zip(q.parameters.scales, ref.gammas) { XCTAssertEqual(Double(s), g, accuracy: 1e-7 * g, "\(strategy)") }
            let back = q.dequantized().scalars
            for i in [0, 3, 7, 100] {
                let gamma = ref.gammas[i / size]
                XCTAssertEqual(Double(back[i]), Double(ref.codes[i]) * gamma, accuracy: 1e-7, "Ŵ = W_t·γ")
            }
        }
    }

    func testAnAllZeroWeightGetsTheFloorScaleAndZeroCodes() throws {
        var args = QuantizationArgs(numBits: 2, type: .int, symmetric: true, strategy: .tensor)
        args.observer = .absmean
        let q = try QuantizationGrid(args).quantize(Tensor(repeating: 0, shape: [4, 8]))
        XCTAssertEqual(q.parameters.scales, [1e-5])
        XCTAssertEqual(Set(q.codes), [0])
    }

    func testAbsmeanNeedsTwoBitSymmetricIntWeights() {
        for (bits, symmetric) in [(4, true), (2, false)] {
            var args = QuantizationArgs(numBits: bits, type: .int, symmetric: symmetric, strategy: .channel)
            args.observer = .absmean
            XCTAssertThrowsError(try QuantizationGrid(args)) { XCTAssertTrue("\($0)".contains("absmean"), "\($0)") }
        }
    }
}
