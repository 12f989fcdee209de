import QDistIO
import QDistTensor
import XCTest

/// llama.cpp's activation rounding (the `vec_dot_type` conversion of its CPU kernels) against a
/// Float64 restatement of ggml's formulas, plus the cases the restatement cannot decide alone:
/// ties, zero blocks, the scale's precision.
final class GGMLActivationRoundingTests: XCTestCase {
    /// Rows of `blocks` blocks with a spread of magnitudes and one outlier per block, as
    /// transformer activations have.
    private func sample(blocks: Int, size: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(state: seed)
        var v = (0..<(blocks * size)).map { _ in Float.random(in: -3...3, using: &rng) }
        for b in 0..<blocks { v[b * size + (b * 7) % size] = Float.random(in: -60 ... -20, using: &rng) * (b % 2 == 0 ? 1 : -1) }
        return v
    }

    private func rounded(_ x: [Float], _ r: GGMLActivationRounding) -> [Float] {
        var y = x
        y.withUnsafeMutableBufferPointer { r.round($0) }
        return y
    }

    /// ggml in Float64: amax per block, codes round-half-even(x·127/amax), values code·d with
    /// d = fp16(amax/127) (Q8_0, Q8_1) or amax/127 (Q8_K, a Float32 scale). Codes whose Float64
    /// product sits within 1e-3 of a midpoint may legitimately differ by one in Float32 and are
    /// skipped; everything else must match to the scale's precision.
    private func assertMatchesFloat64(_ r: GGMLActivationRounding, file: StaticString = #filePath, line: UInt = #line) {
        let n = r.blockSize, x = sample(blocks: 24, size: n, seed: 11)
        let y = rounded(x, r)
        var checked = 0
        for b in 0..<24 {
            let block = x[(b * n)..<((b + 1) * n)]
            let amax = block.map { Double($0.magnitude) }.max() ?? 0
            let d = r == .q8_K ? amax / 127 : Double(FloatBits.float(fromFP16: FloatBits.fp16(fromFloat: Float(amax / 127))))
            for i in block.indices {
                let product = Double(x[i]) * 127 / amax
                if abs(product - product.rounded(.down) - 0.5) < 1e-3 { continue }
                let code = product.rounded(.toNearestOrEven)
                XCTAssertLessThanOrEqual(abs(code), 127, file: file, line: line)
                XCTAssertEqual(Double(y[i]), code * d, accuracy: abs(code * d) * 1e-6 + 1e-12, "\(r) element \(i)", file: file, line: line)
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 24 * n * 9 / 10, "most values must be checked, not skipped", file: file, line: line)
    }

    func testQ8BlocksMatchAFloat64RestatementOfGGML() {
        assertMatchesFloat64(.q8_0)
        assertMatchesFloat64(.q8_1)
        assertMatchesFloat64(.q8_K)
    }

    /// The largest magnitude becomes ±127 exactly, and halves go to the even code as
    /// `_mm256_round_ps(…, _MM_ROUND_NEAREST)` and `nearest_int` do (not away from zero, as
    /// `roundf` in the `_ref` Q8_0 encoder would).
    func testTiesRoundToEvenAndTheLargestValueIsCode127() {
        for r in [GGMLActivationRounding.q8_0, .q8_K] {
            var x = [Float](repeating: 0.25, count: r.blockSize)
            x[0] = 127; x[1] = 2.5; x[2] = 3.5; x[3] = -2.5; x[4] = -127; x[5] = 0.5
            let y = rounded(x, r)
            XCTAssertEqual(Array(y[0..<6]), [127, 2, 4, -2, -127, 0], "\(r)")
            XCTAssertEqual(y[6], 0, "\(r): 0.25 rounds to code 0")
        }
    }

    /// Q8_0 keeps its scale in fp16, Q8_K in Float32: with amax = 100 the step is
    /// fp16(100/127) = 0.78759765625 for Q8_0 and 1/(127/100) for Q8_K.
    func testQ8_0ScaleIsHalfPrecisionAndQ8_KScaleIsSinglePrecision() {
        for r in [GGMLActivationRounding.q8_0, .q8_K] {
            var x = [Float](repeating: 0, count: r.blockSize)
            x[0] = 100
            let step: Float = r == .q8_0 ? 0.78759765625 : 1 / (127 / 100)
            XCTAssertEqual(rounded(x, r)[0], 127 * step, "\(r)")
        }
        XCTAssertNotEqual(Float(0.78759765625), 1 / (Float(127) / 100), "the two scales must differ for the test to mean anything")
    }

    func testZeroBlocksStayZeroAndAPartialTailIsLeftAlone() {
        var x = [Float](repeating: 0, count: 32) + [Float](repeating: 1.3, count: 32) + [0.123, -4.56]
        x[40] = -2.6
        let y = rounded(x, .q8_0)
        XCTAssertEqual(Array(y[0..<32]), [Float](repeating: 0, count: 32))
        XCTAssertNotEqual(y[33], 1.3, "the second block is rounded")
        XCTAssertEqual(Array(y[64...]), [0.123, -4.56], "values past the last whole block are not touched")
    }

    func testHalfPrecisionWeightsRoundTheInputToTheirOwnType() {
        let x = sample(blocks: 2, size: 64, seed: 5)
        XCTAssertEqual(rounded(x, .f16), x.map { FloatBits.float(fromFP16: FloatBits.fp16(fromFloat: $0)) })
        XCTAssertEqual(rounded(x, .bf16), x.map { FloatBits.float(fromBF16: FloatBits.bf16(fromFloat: $0)) })
        XCTAssertEqual(rounded(x, .none), x)
        XCTAssertNotEqual(rounded(x, .f16), x)
    }

    /// ggml-cpu's `type_traits_cpu[…].vec_dot_type` for the types qdist writes.
    func testEachWeightTypeGetsLlamaCppsVecDotType() {
        let expected: [GGMLType: GGMLActivationRounding] = [
            .f32: .none, .f16: .f16, .bf16: .bf16, .q4_0: .q8_0, .q5_0: .q8_0, .q8_0: .q8_0, .q4_1: .q8_1, .q5_1: .q8_1,
            .q2_K: .q8_K, .q3_K: .q8_K, .q4_K: .q8_K, .q5_K: .q8_K, .q6_K: .q8_K, .tq1_0: .q8_K, .tq2_0: .q8_K, .iq4_NL: .q8_0,
        ]
        for (type, rounding) in expected {
            XCTAssertEqual(GGMLActivationRounding(weightType: type), rounding, type.traits.name)
            if rounding.blockSize > 1 { XCTAssertEqual(rounding.blockSize, type.traits.blockSize, "\(type.traits.name): activation blocks align with weight blocks") }
        }
    }
}
