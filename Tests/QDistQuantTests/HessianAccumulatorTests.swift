import XCTest
import QDistTensor
@testable import QDistQuant

/// The running-mean Hessian of gptq's `add_batch`, and its combination across ranks.
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

    func testRunningMeanEqualsTwoOverNTimesXTransposeXInFloat64() {
        // 3 batches of (2 sequences × 16 tokens, 24 features) → N = 6 sequences.
        let x = QuantTestData.correlatedInputs(tokens: 96, columns: 24, seed: 1)
        var acc = HessianAccumulator(columns: 24)
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
        var acc = HessianAccumulator(columns: 8)
        acc.add(x.rows(0..<10))
        acc.add(x.rows(10..<40))
        XCTAssertEqual(acc.sampleCount, 2)
        assertClose(acc.hessian, referenceHessian(x, samples: 2), relative: 1e-5)
    }

    func testCombineOfPartsEqualsOneAccumulatorOverAllBatches() {
        let x = QuantTestData.correlatedInputs(tokens: 7 * 20, columns: 32, seed: 3)
        let batches = (0..<7).map { x.rows($0 * 20..<($0 + 1) * 20).reshaped([$0 % 2 + 1, 20 / ($0 % 2 + 1), 32]) }
        var whole = HessianAccumulator(columns: 32)
        for b in batches { whole.add(b) }
        // Uneven split over three "ranks", one of which saw nothing.
        var parts = [HessianAccumulator(columns: 32), HessianAccumulator(columns: 32), HessianAccumulator(columns: 32),
                     HessianAccumulator(columns: 32)]
        for (i, b) in batches.enumerated() { parts[i < 2 ? 0 : (i < 6 ? 1 : 3)].add(b) }
        let combined = HessianAccumulator.combine(parts)
        XCTAssertEqual(combined.sampleCount, whole.sampleCount)
        assertClose(combined.hessian, whole.hessian.scalars.map(Double.init), relative: 1e-5)

        // The Reduce form: SUM of the Float64 sums and of sampleCount. Float64 makes the split
        // invisible after rounding: the same Float32 H, bit for bit, whatever the parts.
        var sum = [Double](repeating: 0, count: 32 * 33 / 2)
        for p in parts.reversed() { for i in sum.indices { sum[i] += p.sum[i] } }
        let rebuilt = HessianAccumulator(sum: sum, sampleCount: parts.reduce(0) { $0 + $1.sampleCount }, columns: 32)
        XCTAssertEqual(rebuilt.hessian.scalars, whole.hessian.scalars, "identical H for any split of the batches")
        XCTAssertEqual(combined.hessian.scalars, whole.hessian.scalars)
    }
}
