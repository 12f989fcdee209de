import XCTest
@testable import QDistTensor

/// Every narrow-float conversion checked against an independent float64 reference: decoding by
/// the format's defining formula, encoding by nearest-even search over the decoded value table.
final class FloatBitsTests: XCTestCase {
    // MARK: float64 references

    /// The value a bit pattern denotes, from the IEEE-style formula (exponent bias, implicit 1).
    static func referenceValue(bits: Int, exponentBits: Int, mantissaBits: Int, hasInfinity: Bool) -> Double {
        let sign: Double = (bits >> (exponentBits + mantissaBits)) & 1 == 1 ? -1 : 1
        let e = (bits >> mantissaBits) & ((1 << exponentBits) - 1)
        let m = bits & ((1 << mantissaBits) - 1)
        let bias = (1 << (exponentBits - 1)) - 1
        let maxE = (1 << exponentBits) - 1
        if hasInfinity && e == maxE { return m == 0 ? sign * .infinity : .nan }
        if !hasInfinity && e == maxE && m == (1 << mantissaBits) - 1 { return .nan }  // e4m3fn
        if e == 0 { return sign * Double(m) * pow(2, Double(1 - bias - mantissaBits)) }
        return sign * (1 + Double(m) / Double(1 << mantissaBits)) * pow(2, Double(e - bias))
    }

    /// Positive finite values of a format with their codes, ascending.
    static func positiveGrid(count: Int, decode: (Int) -> Double) -> [(value: Double, code: Int)] {
        (0..<count).compactMap { c in
            let v = decode(c)
            return v.isFinite && v >= 0 && !(v == 0 && c != 0) ? (v, c) : nil
        }.sorted { $0.value < $1.value }
    }

    /// Nearest grid code to |x|, ties to the even code; beyond the top: `overflow` decides.
    static func nearestEven(_ x: Double, grid: [(value: Double, code: Int)], overflow: (Double) -> Int?) -> Int {
        let top = grid[grid.count - 1]
        if x > top.value, let code = overflow(x) { return code }
        if x >= top.value { return top.code }
        var lo = 0, hi = grid.count - 1
        while hi - lo > 1 { let mid = (lo + hi) / 2; if grid[mid].value <= x { lo = mid } else { hi = mid } }
        let dLo = x - grid[lo].value, dHi = grid[hi].value - x
        if dLo < dHi { return grid[lo].code }
        if dHi < dLo { return grid[hi].code }
        return grid[lo].code & 1 == 0 ? grid[lo].code : grid[hi].code
    }

    /// Test inputs around every grid point: the point, the midpoints to its neighbours and one
    /// Float ulp either side of them, plus a deterministic spray of random magnitudes.
    static func probes(grid: [(value: Double, code: Int)], randomCount: Int) -> [Float] {
        var xs: [Float] = []
        for i in 0..<grid.count {
            let v = Float(grid[i].value)
            xs.append(v)
            if i + 1 < grid.count {
                let mid = Float((grid[i].value + grid[i + 1].value) / 2)
                xs += [mid, mid.nextUp, mid.nextDown]
            }
        }
        var rng = SeededGenerator(state: 7)
        let top = grid[grid.count - 1].value
        for _ in 0..<randomCount {
            let exponent = Double(rng.next() % 80) - 60
            xs.append(Float(Double(rng.next() % 1_000_000) / 1_000_000 * pow(2, exponent) * top / 65504 * 4))
        }
        xs += [0, .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude, .infinity]
        return xs
    }

    // MARK: fp16

    func testFP16DecodeMatchesFloat64ReferenceForAllPatterns() {
        for bits in 0..<65536 {
            let ref = Self.referenceValue(bits: bits, exponentBits: 5, mantissaBits: 10, hasInfinity: true)
            let got = FloatBits.float(fromFP16: UInt16(bits))
            if ref.isNaN { XCTAssertTrue(got.isNaN, "fp16 \(bits)"); continue }
            XCTAssertEqual(Double(got), ref, "fp16 pattern \(String(bits, radix: 16))")
            XCTAssertEqual(got.sign, ref.sign, "sign of fp16 \(bits)")
        }
    }

    func testFP16EncodeRoundsToNearestEvenLikeFloat64Reference() {
        let grid = Self.positiveGrid(count: 0x7C00) { Self.referenceValue(bits: $0, exponentBits: 5, mantissaBits: 10, hasInfinity: true) }
        // Past 65504 the next grid step would be 65536 (= Inf); ties there go to Inf (even).
        let overflow: (Double) -> Int? = { $0 >= 65520 ? 0x7C00 : 0x7BFF }
        var failures = 0
        for x in Self.probes(grid: grid, randomCount: 200_000) {
            for s in [x, -x] {
                let expected = UInt16(Self.nearestEven(Double(s.magnitude), grid: grid, overflow: overflow)) | (s.sign == .minus ? 0x8000 : 0)
                let got = FloatBits.fp16(fromFloat: s)
                if got != expected, failures < 10 { failures += 1; XCTFail("fp16(\(s)) = \(String(got, radix: 16)), expected \(String(expected, radix: 16))") }
                // Swift's own Float16 (compiler-rt / F16C) is a second, independent oracle.
                XCTAssertEqual(got, Float16(s).bitPattern, "Float16(\(s))")
            }
        }
        XCTAssertEqual(FloatBits.fp16(fromFloat: .infinity), 0x7C00)
        XCTAssertEqual(FloatBits.fp16(fromFloat: -.infinity), 0xFC00)
        XCTAssertTrue(FloatBits.float(fromFP16: FloatBits.fp16(fromFloat: .nan)).isNaN)
    }

    func testFP16RoundTripIsIdentityForEveryFinitePattern() {
        for bits in 0..<65536 where (bits & 0x7C00) != 0x7C00 {
            XCTAssertEqual(FloatBits.fp16(fromFloat: FloatBits.float(fromFP16: UInt16(bits))), UInt16(bits))
        }
    }

    // MARK: bf16

    func testBF16DecodeMatchesFloat64ReferenceForAllPatterns() {
        for bits in 0..<65536 {
            let ref = Self.referenceValue(bits: bits, exponentBits: 8, mantissaBits: 7, hasInfinity: true)
            let got = FloatBits.float(fromBF16: UInt16(bits))
            if ref.isNaN { XCTAssertTrue(got.isNaN, "bf16 \(bits)"); continue }
            XCTAssertEqual(Double(got), ref, "bf16 pattern \(String(bits, radix: 16))")
        }
    }

    func testBF16EncodeRoundsToNearestEvenLikeFloat64Reference() {
        let grid = Self.positiveGrid(count: 0x7F80) { Self.referenceValue(bits: $0, exponentBits: 8, mantissaBits: 7, hasInfinity: true) }
        let maxBF16 = grid[grid.count - 1].value
        let overflow: (Double) -> Int? = { $0 >= maxBF16 + pow(2, 127 - 8) ? 0x7F80 : 0x7F7F }
        var failures = 0
        for x in Self.probes(grid: grid, randomCount: 100_000) + [Float.greatestFiniteMagnitude] {
            for s in [x, -x] {
                let expected = UInt16(Self.nearestEven(Double(s.magnitude), grid: grid, overflow: overflow)) | (s.sign == .minus ? 0x8000 : 0)
                let got = FloatBits.bf16(fromFloat: s)
                if got != expected, failures < 10 { failures += 1; XCTFail("bf16(\(s)) = \(String(got, radix: 16)), expected \(String(expected, radix: 16))") }
            }
        }
        let nan = FloatBits.bf16(fromFloat: Float(bitPattern: 0x7F80_0001))
        XCTAssertTrue(FloatBits.float(fromBF16: nan).isNaN, "a signalling NaN with low payload must stay NaN")
    }

    // MARK: fp8

    func testFP8E4M3DecodeMatchesFloat64ReferenceForAllPatterns() {
        for bits in 0..<256 {
            let ref = Self.referenceValue(bits: bits, exponentBits: 4, mantissaBits: 3, hasInfinity: false)
            let got = FloatBits.float(fromFP8E4M3: UInt8(bits))
            if ref.isNaN { XCTAssertTrue(got.isNaN, "e4m3 \(bits)"); continue }
            XCTAssertEqual(Double(got), ref, "e4m3 pattern \(bits)")
        }
        XCTAssertEqual(FloatBits.float(fromFP8E4M3: 0x7E), 448)
        XCTAssertEqual(FloatBits.float(fromFP8E4M3: 0x01), 0x1p-9)
    }

    func testFP8E5M2DecodeMatchesFloat64ReferenceForAllPatterns() {
        for bits in 0..<256 {
            let ref = Self.referenceValue(bits: bits, exponentBits: 5, mantissaBits: 2, hasInfinity: true)
            let got = FloatBits.float(fromFP8E5M2: UInt8(bits))
            if ref.isNaN { XCTAssertTrue(got.isNaN, "e5m2 \(bits)"); continue }
            XCTAssertEqual(Double(got), ref, "e5m2 pattern \(bits)")
        }
        XCTAssertEqual(FloatBits.float(fromFP8E5M2: 0x7B), 57344)
    }

    func testFP8EncodersRoundToNearestEvenAndSaturate() {
        let formats: [(name: String, e: Int, m: Int, inf: Bool, maxCode: Int, encode: (Float) -> UInt8)] = [
            ("e4m3", 4, 3, false, 0x7E, FloatBits.fp8E4M3(fromFloat:)),
            ("e5m2", 5, 2, true, 0x7B, FloatBits.fp8E5M2(fromFloat:)),
        ]
        for f in formats {
            let grid = Self.positiveGrid(count: f.maxCode + 1) {
                Self.referenceValue(bits: $0, exponentBits: f.e, mantissaBits: f.m, hasInfinity: f.inf)
            }
            XCTAssertEqual(grid.count, f.maxCode + 1, "\(f.name) grid")
            var failures = 0
            for x in Self.probes(grid: grid, randomCount: 50_000) {
                for s in [x, -x] {
                    // Saturating: everything above the top finite value, Inf included, is ±max.
                    let expected = UInt8(Self.nearestEven(Double(s.magnitude), grid: grid, overflow: { _ in nil })) | (s.sign == .minus ? 0x80 : 0)
                    let got = f.encode(s)
                    if got != expected, failures < 10 { failures += 1; XCTFail("\(f.name)(\(s)) = \(got), expected \(expected)") }
                }
            }
            XCTAssertTrue(FloatBits.float(fromFP8E4M3: FloatBits.fp8E4M3(fromFloat: .nan)).isNaN)
            XCTAssertTrue(FloatBits.float(fromFP8E5M2: FloatBits.fp8E5M2(fromFloat: .nan)).isNaN)
        }
    }

    /// The conversion compressed-tensors applies (`clamp(±max)` then torch's cast), on torch's own
    /// answers for every input class (`FP8TorchTable`, generated by Benchmarks/fp8_torch_table.py).
    func testFP8EncodersMatchTorchsCastAfterTheClampOnEveryInputClass() {
        for (name, table, max, encode) in [("e4m3", FP8TorchTable.e4m3, Float(448), FloatBits.fp8E4M3(fromFloat:)),
                                           ("e5m2", FP8TorchTable.e5m2, Float(57344), FloatBits.fp8E5M2(fromFloat:))] {
            XCTAssertGreaterThan(table.count, 2000, name)
            var failures = 0
            for entry in table {
                let x = Float(bitPattern: UInt32(entry >> 8)), torchBits = UInt8(entry & 0xFF)
                let got = encode(x.isNaN ? x : Swift.min(Swift.max(x, -max), max))
                if got != torchBits, failures < 10 { failures += 1; XCTFail("\(name)(\(x) = 0x\(String(entry >> 8, radix: 16))): 0x\(String(got, radix: 16)), torch 0x\(String(torchBits, radix: 16))") }
            }
        }
    }

    /// The fast activation rounding equals decode(encode(x)) for |x| ≤ 448: every ulp-neighbour of
    /// each tie and grid value, and a stride through every float bit pattern in range.
    func testFP8E4M3RoundingShortcutEqualsEncodeThenDecode() {
        var probes: [Float] = []
        for bits in 0..<0x7F {
            let v = FloatBits.float(fromFP8E4M3: UInt8(bits)), next = FloatBits.float(fromFP8E4M3: UInt8(bits + 1))
            let mid = (v + next) / 2
            probes += [v, mid, mid.nextUp, mid.nextDown, v.nextUp, v.nextDown]
        }
        var pattern: UInt32 = 0
        while Float(bitPattern: pattern) <= 448 { probes.append(Float(bitPattern: pattern)); pattern += 4099 }
        var failures = 0
        for p in probes where p.magnitude <= 448 {
            for x in [p, -p] {
                let expected = FloatBits.float(fromFP8E4M3: FloatBits.fp8E4M3(fromFloat: x)), got = FloatBits.roundedToFP8E4M3(x)
                if expected.bitPattern != got.bitPattern && !(expected == 0 && got == 0), failures < 10 {
                    failures += 1
                    XCTFail("\(x): shortcut \(got), encode/decode \(expected)")
                }
            }
        }
        XCTAssertGreaterThan(probes.count, 100_000)
    }

    func testFP8RoundTripIsIdentityForEveryFinitePattern() {
        for bits in 0..<256 {
            let a = FloatBits.float(fromFP8E4M3: UInt8(bits))
            if !a.isNaN { XCTAssertEqual(FloatBits.fp8E4M3(fromFloat: a), UInt8(bits), "e4m3 \(bits)") }
            let b = FloatBits.float(fromFP8E5M2: UInt8(bits))
            if b.isFinite { XCTAssertEqual(FloatBits.fp8E5M2(fromFloat: b), UInt8(bits), "e5m2 \(bits)") }
        }
    }
}

extension SeededGenerator {
    /// Uniform in `range`, for test inputs.
    mutating func nextFloat(in range: ClosedRange<Float>) -> Float {
        range.lowerBound + Float(Double(next() >> 11) / Double(1 << 53)) * (range.upperBound - range.lowerBound)
    }
}
