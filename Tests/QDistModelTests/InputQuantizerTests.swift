import QDistModel
import QDistTensor
import XCTest

/// Activation fake quantization against a Float64 statement of FORMATS.md §5.2, and the linear
/// layer's forward with and without it.
final class InputQuantizerTests: XCTestCase {
    /// (tokens, features) values with a spread of magnitudes, negatives, exact zeros and one
    /// outlier per row.
    func sample(rows: Int = 5, columns: Int = 40, seed: UInt64 = 3) -> Tensor {
        var rng = SeededGenerator(state: seed)
        var v = (0..<(rows * columns)).map { _ in Float.random(in: -2...3, using: &rng) }
        for r in 0..<rows {
            v[r * columns] = 0
            v[r * columns + 1 + r] = Float(10 + r)
        }
        return Tensor(shape: [rows, columns], scalars: v)
    }

    /// The §5.2 formulas in Float64 for range [lo, hi]: returns x̂ for every value.
    func reference(_ xs: ArraySlice<Float>, lo: Double, hi: Double, symmetric: Bool, bits: Int = 8) -> [Double] {
        let qmin = -Double(1 << (bits - 1)), qmax = Double(1 << (bits - 1)) - 1
        let lo = min(lo, 0), hi = max(hi, 0)
        let scale: Double, zero: Double
        if symmetric {
            scale = max(max(-lo, hi) / ((qmax - qmin) / 2), Double(Float.ulpOfOne))
            zero = 0
        } else {
            scale = max((hi - lo) / (qmax - qmin), Double(Float.ulpOfOne))
            zero = min(max(qmin - lo / scale, qmin), qmax).rounded(.toNearestOrEven)
        }
        return xs.map { x in (min(max(Double(x) / scale + zero, qmin), qmax).rounded(.toNearestOrEven) - zero) * scale }
    }

    func assertClose(_ got: [Float], _ want: [Double], scale: Double, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, file: file, line: line)
        var codeFlips = 0
        for (g, w) in zip(got, want) {
            let d = abs(Double(g) - w)
            // Float32 vs Float64 division may move a value sitting on a rounding midpoint by one
            // step; anything else must agree to Float32 precision.
            if d > 1e-5 * max(1, abs(w)) { codeFlips += 1; XCTAssertEqual(d, scale, accuracy: scale * 1e-3, message, file: file, line: line) }
        }
        XCTAssertLessThanOrEqual(codeFlips, 1, message, file: file, line: line)
    }

    func testStaticSymmetricAndAsymmetricMatchTheFloat64Reference() {
        let x = sample()
        for symmetric in [true, false] {
            let (lo, hi) = (-1.7, 6.2)  // clips the outliers, keeps most values
            let q = InputQuantizer(symmetric: symmetric, mode: .staticTensor(scale: 0, zeroPoint: 0))
            let p = q.parameters(min: Float(lo), max: Float(hi))
            let quantizer = InputQuantizer(symmetric: symmetric, mode: .staticTensor(scale: p.scale, zeroPoint: p.zeroPoint))
            let want = reference(x.scalars[...], lo: lo, hi: hi, symmetric: symmetric)
            assertClose(quantizer(x).scalars, want, scale: Double(p.scale), "static \(symmetric ? "sym" : "asym")")
            XCTAssertEqual(p.scale, symmetric ? Float(6.2 / 127.5) : Float((6.2 + 1.7) / 255), accuracy: 1e-7)
            if !symmetric { XCTAssertEqual(p.zeroPoint, (-128 + 1.7 / Double(p.scale)).rounded(.toNearestOrEven).float, accuracy: 1) }
            XCTAssertEqual(quantizer(x).scalars.max()!, symmetric ? 127 * p.scale : (127 - p.zeroPoint) * p.scale, accuracy: 1e-6,
                           "values above the range clamp to the last code")
        }
    }

    func testDynamicPerTokenUsesEachRowsOwnRange() {
        let x = sample()
        for symmetric in [true, false] {
            let got = InputQuantizer(symmetric: symmetric, mode: .dynamicToken)(x).scalars
            for r in 0..<x.rows {
                let row = x.scalars[(r * x.columns)..<((r + 1) * x.columns)]
                let want = reference(row, lo: Double(row.min()!), hi: Double(row.max()!), symmetric: symmetric)
                let scale = symmetric ? Double(row.max()!) / 127.5 : Double(row.max()! - row.min()!) / 255
                assertClose(Array(got[(r * x.columns)..<((r + 1) * x.columns)]), want, scale: scale, "token \(r)")
                // The row's largest value is representable (within half a step) under its own scale.
                XCTAssertEqual(Double(got[r * x.columns + 1 + r]), Double(10 + r), accuracy: scale / 2 + 1e-6)
            }
        }
        let perTensor = InputQuantizer(symmetric: true, mode: .dynamicTensor)(x).scalars
        assertClose(perTensor, reference(x.scalars[...], lo: Double(x.scalars.min()!), hi: Double(x.scalars.max()!), symmetric: true),
                    scale: Double(x.scalars.max()!) / 127.5, "dynamic per tensor")
    }

    /// FP8 inputs as compressed-tensors quantizes them: scale = absmax/448 (per token, or the
    /// static one), x/scale clamped to ±448 and cast to E4M3 (the bit-exact encoder, a separate
    /// code path from the quantizer's rounding), times the scale.
    func testFP8DynamicPerTokenAndStaticMatchTheE4M3EncoderWithAbsmaxOver448() {
        let x = sample(rows: 6, columns: 300)
        func reference(_ v: Float, _ scale: Float) -> Float {
            FloatBits.float(fromFP8E4M3: FloatBits.fp8E4M3(fromFloat: min(max(v / scale, -448), 448))) * scale
        }
        let dynamic = InputQuantizer(symmetric: true, mode: .dynamicToken, float8: true)(x).scalars
        for r in 0..<x.rows {
            let row = Array(x.scalars[(r * x.columns)..<((r + 1) * x.columns)])
            let scale = row.map(\.magnitude).max()! / 448
            XCTAssertEqual(Array(dynamic[(r * x.columns)..<((r + 1) * x.columns)]), row.map { reference($0, scale) }, "token \(r)")
        }
        let scale: Float = 3.0 / 448  // clips the outliers
        let fixed = InputQuantizer(symmetric: true, mode: .staticTensor(scale: scale, zeroPoint: 0), float8: true)(x).scalars
        XCTAssertEqual(fixed, x.scalars.map { reference($0, scale) })
        XCTAssertEqual(fixed.max()!, 448 * scale, "values beyond the range clamp to ±448·scale")
        XCTAssertEqual(Set(fixed.map { ($0 / scale).magnitude }).count <= 127, true, "at most 127 magnitudes on the E4M3 grid")
    }

    /// LLM.int8's decomposition against a Float64 statement of bitsandbytes 0.50's kernels: the
    /// input cast to fp16; columns with any |x₁₆| ≥ 6 are outliers, multiplied exactly by the
    /// dequantized weight columns (`CB·SCB/127`); the rest int8 per token with the row's largest
    /// |x₁₆| below the threshold, `i32 · s · SCB · 6.200124e-05`. Rows cover: outliers in two
    /// columns, a below-threshold value inside an outlier column, all zeros, and a threshold of 0
    /// (no decomposition).
    func testLLMInt8DecompositionMatchesBitsandbytesInt8AndOutlierPaths() {
        var rng = SeededGenerator(state: 17)
        let (rows, columns, out) = (5, 48, 7)
        var x = (0..<(rows * columns)).map { _ in Float.random(in: -3...3, using: &rng) }
        x[0 * columns + 5] = 7.5; x[3 * columns + 5] = -0.25; x[2 * columns + 40] = -6.0
        for c in 0..<columns { x[4 * columns + c] = 0 }
        let cb = (0..<(out * columns)).map { _ in Int.random(in: -127...127, using: &rng) }
        let scb = (0..<out).map { _ in Float.random(in: 0.01...0.2, using: &rng) }
        let w = Tensor(shape: [out, columns], scalars: (0..<(out * columns)).map { Float(cb[$0]) * (scb[$0 / columns] / 127) })
        for threshold: Float in [6, 0] {
            let layer = LinearLayer(weight: w, inputQuantizer: InputQuantizer(symmetric: true, mode: .llmInt8(threshold: threshold)))
            let y = layer(Tensor(shape: [rows, columns], scalars: x)).scalars
            let h = x.map { Double(FloatBits.float(fromFP16: FloatBits.fp16(fromFloat: $0))) }
            let limit = threshold > 0 ? Double(threshold) : .infinity
            let outliers = Set((0..<(rows * columns)).filter { abs(h[$0]) >= limit }.map { $0 % columns })
            if threshold > 0 { XCTAssertEqual(outliers, [5, 40]) }
            for r in 0..<rows {
                let s = (0..<columns).map { abs(h[r * columns + $0]) }.filter { $0 < limit }.max() ?? 0
                for o in 0..<out {
                    var i32 = 0, exact = 0.0
                    for c in 0..<columns {
                        if outliers.contains(c) {
                            exact += Double(x[r * columns + c]) * Double(cb[o * columns + c]) * Double(scb[o]) / 127
                        } else if s > 0 {
                            i32 += Int((h[r * columns + c] * Double(Float(127 / Float(s)))).rounded(.toNearestOrEven)) * cb[o * columns + c]
                        }
                    }
                    let want = Double(i32) * s * Double(scb[o]) * 6.200124e-05 + exact
                    XCTAssertEqual(Double(y[r * out + o]), want, accuracy: 1e-5 * max(1, abs(want)), "threshold \(threshold), row \(r), out \(o)")
                }
            }
        }
    }

    /// The outlier tally counts the columns that held some |x₁₆| ≥ threshold once per call,
    /// however many rows hit them: 6.0 exactly is an outlier, and so is 5.999, which the cast to
    /// fp16 rounds to 6.0, while 5.997 (fp16 5.99609375) is not. Attaching a tally does not
    /// change what the quantizer is or computes.
    func testOutlierTallyCountsEachColumnHoldingAValueAtOrAboveTheThresholdOncePerCall() {
        let (rows, columns) = (4, 16)
        var x = [Float](repeating: 0.5, count: rows * columns)
        x[0 * columns + 3] = 6; x[2 * columns + 3] = -9; x[1 * columns + 7] = -6.25; x[3 * columns + 11] = 5.999; x[2 * columns + 13] = -5.997
        var q = InputQuantizer(symmetric: true, mode: .llmInt8(threshold: 6))
        let plain = q
        let tally = OutlierColumnTally()
        q.outlierTally = tally
        XCTAssertEqual(q, plain)
        let input = Tensor(shape: [rows, columns], scalars: x)
        XCTAssertEqual(q(input).scalars, plain(input).scalars)
        _ = q(Tensor(shape: [1, columns], scalars: [Float](repeating: 1, count: columns)))
        XCTAssertEqual(tally.snapshot, OutlierColumnTally.Counts(calls: 2, outlierColumns: 3, columns: 2 * columns, maxOutlierColumns: 3))
        XCTAssertEqual(tally.snapshot.share, 3.0 / 32.0)
    }

    func testLinearLayerWithoutQuantizerIsUnchangedAndWithOneMultipliesTheFakeQuantizedInput() {
        let x = sample(rows: 3, columns: 16)
        var rng = SeededGenerator(state: 9)
        let w = Tensor(shape: [8, 16], scalars: (0..<128).map { _ in Float.random(in: -1...1, using: &rng) })
        let bias = Tensor(shape: [8], scalars: (0..<8).map(Float.init))
        let plain = LinearLayer(weight: w, bias: bias)
        XCTAssertNil(plain.inputQuantizer)
        XCTAssertEqual(plain(x), Tensor.matmul(x, w, transposeB: true).addingRowVector(bias))
        let quantizer = InputQuantizer(symmetric: true, mode: .dynamicToken)
        let quantized = LinearLayer(weight: w, bias: bias, inputQuantizer: quantizer)
        XCTAssertEqual(quantized(x), Tensor.matmul(quantizer(x), w, transposeB: true).addingRowVector(bias))
        XCTAssertNotEqual(quantized(x), plain(x))
    }

    /// Codes that land exactly on .5 round half to even (2.5 → 2, −2.5 → −2, 3.5 → 4), as
    /// torch.round does, for every code of 8- and 16-bit grids, and at the clamp ends.
    func testExactHalfCodesRoundToEvenAcrossTheWholeCodeRange() {
        for bits in [8, 16] {
            let half = Float(1 << (bits - 1))
            let codes = stride(from: -half - 3, through: half + 2, by: bits == 8 ? 0.25 : 0.5).map { Float($0) }
            let q = InputQuantizer(numBits: bits, symmetric: true, mode: .staticTensor(scale: 1, zeroPoint: 0))
            let got = q(Tensor(shape: [1, codes.count], scalars: codes)).scalars
            for (c, g) in zip(codes, got) {
                XCTAssertEqual(g, min(max(c, -half), half - 1).rounded(.toNearestOrEven), "\(bits) bits, code \(c)")
            }
        }
    }
}

private extension Double {
    var float: Float { Float(self) }
}
