import XCTest
import QDistTensor
@testable import QDistQuant

/// The running-mean Hessian of gptq's `add_batch`, summed on a fixed-point grid so that its bits
/// do not depend on how batches are split or ordered.
final class HessianAccumulatorTests: XCTestCase {
    /// 2/N·XᵀX in Double over `x`'s rows, N = `samples`.
    private func referenceHessian(_ x: Tensor, samples: Int) -> [Double] {
        let n = x.columns
        var h = [Double](repeating: 0, count: n * n)
        for t in 0..<x.rows {
            for i in 0..<n {
                let xi = Double(x[t, i])
                for j in 0..<n { h[i * n + j] += xi * Double(x[t, j]) }
            }
        }
        return h.map { $0 * 2 / Double(samples) }
    }

    private func assertClose(_ a: Tensor, _ b: [Double], relative: Double, _ message: String = "",
                             file: StaticString = #filePath, line: UInt = #line) {
        let scale = b.map(abs).max() ?? 1
        let worst = zip(a.scalars, b).map { abs(Double($0) - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, relative * scale, message, file: file, line: line)
    }

    private func scale(for x: Tensor) -> HessianFixedPointScale {
        var absMax = [Float](repeating: 0, count: x.columns)
        HessianFixedPointScale.foldAbsMax(x, into: &absMax)
        return HessianFixedPointScale(columnAbsMax: absMax, totalTokens: x.rows)
    }

    func testRunningMeanEqualsTwoOverNTimesXTransposeXInFloat64() {
        // 3 batches of (2 sequences × 16 tokens, 24 features) → N = 6 sequences.
        let x = QuantTestData.correlatedInputs(tokens: 96, columns: 24, seed: 1)
        var acc = HessianAccumulator(scale: scale(for: x))
        for b in 0..<3 {
            let batch = x.rows(b * 32..<(b + 1) * 32).reshaped([2, 16, 24])
            acc.add(batch)
        }
        XCTAssertEqual(acc.sampleCount, 6)
        assertClose(acc.hessian, referenceHessian(x, samples: 6), relative: 1e-5)
        // Symmetric, both triangles filled.
        for i in 0..<24 { for j in 0..<24 { XCTAssertEqual(acc.hessian[i, j], acc.hessian[j, i]) } }
    }

    func testRankTwoBatchesCountAsOneSampleEachAsGPTQDoes() {
        let x = QuantTestData.correlatedInputs(tokens: 40, columns: 8, seed: 2)
        var acc = HessianAccumulator(scale: scale(for: x))
        acc.add(x.rows(0..<10))
        acc.add(x.rows(10..<40))
        XCTAssertEqual(acc.sampleCount, 2)
        assertClose(acc.hessian, referenceHessian(x, samples: 2), relative: 1e-5)
    }

    func testQuietColumnsKeepTheirPrecisionNextToLoudOnes() {
        // Column scales spanning 2^-20…2^20: a per-matrix grid would round the quiet entries
        // away; per-column exponents keep each entry to Float32 precision of its own size.
        var rng = SeededGenerator(state: 9)
        let columns = 6, tokens = 64
        let scales: [Float] = [1e-6, 1e-3, 1, 1, 1e3, 1e6]
        let x = Tensor(shape: [tokens, columns], scalars: (0..<(tokens * columns)).map { scales[$0 % columns] * rng.nextGaussian() })
        let acc = HessianAccumulator.over([x])
        let ref = referenceHessian(x, samples: 1)
        for i in 0..<columns { for j in 0..<columns {
            let r = ref[i * columns + j], bound = 2 * Double(tokens) * Double(scales[i] * scales[j]) * 16
            XCTAssertEqual(Double(acc.hessian[i, j]), r, accuracy: 1e-5 * bound, "entry (\(i), \(j))")
        } }
    }

    func testAnySplitAndOrderOfTheBatchesGivesTheSameBits() {
        // Windows of 512 tokens at SmolLM2's width: what ranks hold in quantize.
        let windows = (0..<6).map { QuantTestData.correlatedInputs(tokens: 512, columns: 96, seed: UInt64(10 + $0)) }
        var absMax = [Float](repeating: 0, count: 96)
        for w in windows { HessianFixedPointScale.foldAbsMax(w, into: &absMax) }
        let grid = HessianFixedPointScale(columnAbsMax: absMax, totalTokens: 6 * 512)
        var whole = HessianAccumulator(scale: grid)
        for w in windows { whole.add(w) }
        // Round-robin over 1…4 "ranks" (as CalibrationSet.share deals windows), each rank in
        // reverse order, combined in reverse rank order; one rank may see nothing.
        for ranks in 1...4 {
            var parts = (0..<ranks).map { _ in HessianAccumulator(scale: grid) }
            for (i, w) in windows.enumerated().reversed() { parts[i % ranks].add(w) }
            let combined = HessianAccumulator.combine(parts.reversed())
            XCTAssertEqual(combined.sum, whole.sum, "\(ranks) ranks: integer sums")
            XCTAssertEqual(combined.hessian.scalars.map(\.bitPattern), whole.hessian.scalars.map(\.bitPattern), "\(ranks) ranks")
            XCTAssertEqual(combined.sampleCount, 6)
        }
        // And it is the Hessian: against a Float64 re-computation.
        var all = [Float]()
        for w in windows { all += w.scalars }
        assertClose(whole.hessian, referenceHessian(Tensor(shape: [6 * 512, 96], scalars: all), samples: 6), relative: 1e-5)
    }

    func testANonFiniteInputPoisonsTheHessianInsteadOfTrapping() {
        var x = QuantTestData.correlatedInputs(tokens: 16, columns: 4, seed: 4)
        x[3, 2] = .nan
        var absMax = [Float](repeating: 0, count: 4)
        HessianFixedPointScale.foldAbsMax(x, into: &absMax)
        XCTAssertEqual(absMax[2], .infinity)
        var acc = HessianAccumulator(scale: HessianFixedPointScale(columnAbsMax: absMax, totalTokens: 16))
        acc.add(x)
        XCTAssertTrue(acc.nonFinite)
        XCTAssertTrue(acc.hessian.scalars.allSatisfy(\.isNaN))
    }
}
