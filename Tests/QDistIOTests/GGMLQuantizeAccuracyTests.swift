import Foundation
import QDistIO
import XCTest

/// What the ggml encoders promise about values rather than bytes: how far a decoded value may
/// land from the input (per type, on stated data), which types give back their own bytes when
/// their decoded output is encoded again, and how fast Q4_K encodes a SmolLM2-shaped matrix.
final class GGMLQuantizeAccuracyTests: XCTestCase {
    /// Deterministic standard-normal values (xorshift64* + Box–Muller), so bounds reproduce.
    static func gaussian(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func uniform() -> Double {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return (Double((state &* 0x2545_F491_4F6C_DD1D) >> 11) + 0.5) / 9_007_199_254_740_992
        }
        return (0..<count).map { _ in Float((-2 * log(uniform())).squareRoot() * cos(2 * Double.pi * uniform())) * scale }
    }

    /// Positive imatrix-like weights with a wide range (mean squared activations vary by 100×).
    static func importance(_ count: Int, seed: UInt64) -> [Float] {
        gaussian(count, seed: seed).map { Float(exp(Double($0) * 1.5)) }
    }

    static func decode(_ type: GGMLType, _ bytes: [UInt8]) -> [Float] { type.dequantize(bytes) }

    /// llama.cpp's test-quantize-fns: data `0.1 + 2·cos(i)` over 4096 values, error
    /// `√Σ(x − y)² / n`, and its limits — 0.002, 3-bit 0.004, 2-bit 0.0075, ternary 0.01.
    func testQuantizeDequantizeErrorIsWithinLlamaCppsOwnLimits() throws {
        let n = 4096
        let data = (0..<n).map { Float(0.1) + 2 * cos(Float($0)) }
        let limits: [GGMLType: Float] = [.q2_K: 0.0075, .q3_K: 0.0040, .tq1_0: 0.01, .tq2_0: 0.01]
        for type in GGMLType.quantizable {
            let y = Self.decode(type, try GGMLQuantize.quantize(type, data, rowLength: n))
            var sum = 0.0
            for i in 0..<n { sum += Double(data[i] - y[i]) * Double(data[i] - y[i]) }
            let error = Float(sum.squareRoot()) / Float(n)
            XCTAssertLessThan(error, limits[type] ?? 0.002, type.traits.name)
        }
    }

    /// Relative RMS error `‖x − y‖ / ‖x‖` on 32 Gaussian rows of 1536 (SmolLM2's MLP width),
    /// reference and imatrix paths. Limits are the measured values (printed) rounded up by about
    /// 10%; a change in an encoder that costs accuracy trips them. The imatrix paths trade plain
    /// error for importance-weighted error, so a few are looser than their reference path.
    func testRelativeErrorOnGaussianRowsStaysBelowEachTypesLimit() throws {
        let rows = 32, n = 1536
        let x = Self.gaussian(rows * n, seed: 11, scale: 0.02)
        let w = Self.importance(n, seed: 12)
        // (reference, weighted) limits
        let limits: [GGMLType: (Double, Double)] = [
            .f32: (0, 0), .f16: (2.5e-4, 2.5e-4), .bf16: (1.9e-3, 1.9e-3), .q8_0: (6e-3, 6e-3),
            .q5_0: (0.047, 0.047), .q5_1: (0.042, 0.041), .q4_0: (0.095, 0.095), .q4_1: (0.087, 0.084),
            .q6_K: (0.020, 0.021), .q5_K: (0.040, 0.042), .q4_K: (0.079, 0.084), .q3_K: (0.167, 0.172), .q2_K: (0.33, 0.33),
            .tq2_0: (0.89, 0.89), .tq1_0: (0.89, 0.89),
        ]
        var report: [String] = []
        for type in GGMLType.quantizable {
            let limit = try XCTUnwrap(limits[type], type.traits.name)
            for (weighted, bound) in [(false, limit.0), (true, limit.1)] {
                let y = Self.decode(type, try GGMLQuantize.quantize(type, x, rowLength: n, importance: weighted ? w : nil))
                var err = 0.0, norm = 0.0
                for i in 0..<x.count {
                    err += Double(x[i] - y[i]) * Double(x[i] - y[i])
                    norm += Double(x[i]) * Double(x[i])
                }
                let relative = (err / norm).squareRoot()
                report.append(String(format: "%@%@ %.5f", type.traits.name, weighted ? "+imatrix" : "", relative))
                XCTAssertLessThanOrEqual(relative, bound, "\(type.traits.name) weighted \(weighted)")
            }
        }
        print("GGMLQuantizeAccuracyTests relative RMSE: " + report.joined(separator: ", "))
    }

    /// The imatrix paths exist to lower the *importance-weighted* error. Over many rows they
    /// must, for every type that reads the vector.
    func testImportanceWeightedErrorIsLowerWithTheImatrixPath() throws {
        let rows = 32, n = 1536
        let x = Self.gaussian(rows * n, seed: 21, scale: 0.02)
        let w = Self.importance(n, seed: 22)
        func weightedError(_ y: [Float]) -> Double {
            var sum = 0.0
            for i in 0..<x.count { sum += Double(w[i % n]) * Double(x[i] - y[i]) * Double(x[i] - y[i]) }
            return sum
        }
        for type in GGMLType.quantizable where type.traits.quantize?.usesImportance == true {
            let plain = weightedError(Self.decode(type, try GGMLQuantize.quantize(type, x, rowLength: n)))
            let weighted = weightedError(Self.decode(type, try GGMLQuantize.quantize(type, x, rowLength: n, importance: w)))
            XCTAssertLessThan(weighted, plain, type.traits.name)
        }
    }

    /// Q8_0 per block: `|x − y| ≤ d/2` with `d = amax/127`, plus the fp16 rounding of `d`
    /// (≤ 2⁻¹¹·d per code step, 127 steps): `≤ d·(1/2 + 127/2048)`. Q4_0's one-sided clamp
    /// (the value opposite the block maximum maps to code 15, one step short) allows one step:
    /// `≤ d·(1 + 8/2048)`, `d = amax/8`.
    func testQ8_0AndQ4_0MaxErrorPerBlockIsHalfAStepAndOneStep() throws {
        let x = Self.gaussian(64 * 1024, seed: 31, scale: 0.05)
        for (type, steps, bound) in [(GGMLType.q8_0, Float(127), Float(0.5 + 127.0 / 2048)), (.q4_0, 8, 1 + 8.0 / 2048)] {
            let y = Self.decode(type, try GGMLQuantize.quantize(type, x, rowLength: 1024))
            var worst: Float = 0
            for b in 0..<x.count / 32 {
                let block = b * 32..<(b + 1) * 32
                let d = (block.map { abs(x[$0]) }.max() ?? 0) / steps
                for i in block { worst = max(worst, abs(x[i] - y[i]) / d) }
            }
            XCTAssertLessThanOrEqual(worst, bound, type.traits.name)
            print(String(format: "GGMLQuantizeAccuracyTests %@ worst |x − y| = %.4f·d", type.traits.name, worst))
        }
    }

    /// Encoding a decoded tensor again. Measured on six data sets (Gaussian at 0.02 and 1,
    /// offset, cubed, log-normal, heavy-tailed): the reference encoders of F32, F16, BF16, Q4_0,
    /// Q4_1, Q5_0, Q5_1, Q8_0, TQ1_0 and TQ2_0 give back exactly their own bytes — the decoded
    /// block's extreme value reproduces the fp16 scale and every code lands mid-step. That holds
    /// while the block's scale survives fp16; a block of ~1e-20 values (scale rounds to 0) does
    /// not come back. The k-quants do not round-trip in general (their scale search sees new
    /// data; 0–100% of super-blocks came back unchanged depending on the data), and neither do
    /// the imatrix paths; the log-normal rows below are a counterexample for each.
    func testReferenceEncodersOfTheFixedScaleTypesGiveBackTheirOwnBytes() throws {
        let n = 512, rows = 32
        let sets: [(String, [Float])] = [
            ("gaussian", Self.gaussian(rows * n, seed: 41, scale: 0.02)),
            ("unit", Self.gaussian(rows * n, seed: 42)),
            ("offset", Self.gaussian(rows * n, seed: 43, scale: 0.01).map { $0 + 0.3 }),
            ("cubed", Self.gaussian(rows * n, seed: 44).map { $0 * $0 * $0 * 0.01 }),
            ("log-normal", Self.gaussian(rows * n, seed: 45).enumerated().map { Float(exp(Double($0.1) * 3)) * ($0.0 % 3 == 0 ? -1e-3 : 1e-3) }),
            ("heavy", zip(Self.gaussian(rows * n, seed: 46), Self.gaussian(rows * n, seed: 49)).map { $0 / max(0.05, abs($1)) * 0.01 }),
        ]
        let roundTrips: Set<GGMLType> = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .tq1_0, .tq2_0]
        let w = Self.importance(n, seed: 47)
        for (name, x) in sets {
            for type in roundTrips {
                let bytes = try GGMLQuantize.quantize(type, x, rowLength: n)
                XCTAssertEqual(try GGMLQuantize.quantize(type, Self.decode(type, bytes), rowLength: n), bytes, "\(type.traits.name) \(name)")
            }
        }
        let logNormal = sets[4].1
        for type in GGMLType.quantizable {
            let plain = try GGMLQuantize.quantize(type, logNormal, rowLength: n)
            let again = try GGMLQuantize.quantize(type, Self.decode(type, plain), rowLength: n)
            XCTAssertEqual(again == plain, roundTrips.contains(type), "\(type.traits.name) reference")
            guard type.traits.quantize?.usesImportance == true else { continue }
            let weighted = try GGMLQuantize.quantize(type, logNormal, rowLength: n, importance: w)
            XCTAssertNotEqual(try GGMLQuantize.quantize(type, Self.decode(type, weighted), rowLength: n, importance: w), weighted,
                              "\(type.traits.name) imatrix")
        }
        let tiny = Self.gaussian(32, seed: 48, scale: 1e-20)
        let q8 = try GGMLQuantize.quantize(.q8_0, tiny, rowLength: 32)
        XCTAssertEqual(Self.decode(.q8_0, q8), [Float](repeating: 0, count: 32), "the fp16 scale underflows")
        XCTAssertNotEqual(try GGMLQuantize.quantize(.q8_0, Self.decode(.q8_0, q8), rowLength: 32), q8)
    }

    /// Q4_K encode throughput on SmolLM2's MLP shape (576 × 1536), reference and imatrix
    /// paths, in MB of Float32 input per second on one thread. Printed for the record; the
    /// assertion only catches a pathological slowdown (the machine is shared and noisy).
    func testQ4_KEncodeSpeedOnASmolLM2Matrix() throws {
        let rows = 576, n = 1536
        let x = Self.gaussian(rows * n, seed: 51, scale: 0.02)
        let w = Self.importance(n, seed: 52)
        let megabytes = Double(x.count * 4) / 1e6
        for weighted in [false, true] {
            var best = Double.infinity
            for _ in 0..<3 {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try GGMLQuantize.quantize(.q4_K, x, rowLength: n, importance: weighted ? w : nil)
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            print(String(format: "GGMLQuantizeAccuracyTests Q4_K%@ encode: %.1f MB/s (%.3f s for %.2f MB)",
                         weighted ? "+imatrix" : "", megabytes / best, best, megabytes))
            XCTAssertLessThan(best, 60, "Q4_K\(weighted ? " imatrix" : "") took \(best) s")
        }
    }
}
