import Foundation
import QDistComm
import QDistModel
import QDistQuant
import QDistTensor
import XCTest
@testable import QDistPipeline

/// Static input scales from known activations: minmax takes the exact range, percentile clips
/// a rare outlier, KL clips a heavy tail, the compressed-tensors formulas turn ranges
/// into scales and zero points, and statistics split over batches equal one pass.
final class ActivationCalibrationTests: XCTestCase {
    /// Entries for q/k/v (one shared input) with static activations calibrated by `observer`.
    func entries(observer: String, symmetric: Bool) -> [QuantizationPlan.Entry] {
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"].map {
            QuantizationPlan.Entry(block: 0, suffix: $0, inFeatures: 4, outFeatures: 4, args: QuantizationArgs(numBits: 8, strategy: .channel),
                                   inputActivations: InputActivationScheme(symmetric: symmetric, strategy: .tensor, dynamic: false, observer: observer))
        }
    }

    /// 10 000 values uniform in [−1, 2] plus one outlier at 50, in batches of (100, 4)-ish rows.
    func batches() -> [Tensor] {
        var rng = SeededGenerator(state: 5)
        var values = (0..<10_000).map { _ in Float.random(in: -1...2, using: &rng) }
        values[1234] = 50
        values[0] = -1
        values[1] = 2
        return stride(from: 0, to: values.count, by: 400).map { Tensor(shape: [100, 4], scalars: Array(values[$0..<($0 + 400)])) }
    }

    func calibrate(observer: String, symmetric: Bool, batches: [Tensor]) throws -> InputActivationParameters {
        let e = entries(observer: observer, symmetric: symmetric)
        var collector = ActivationRangeCollector(entries: e)
        for x in batches { collector.observe(block: 0, group: .qkv, input: x) }
        collector.observe(block: 0, group: .down, input: Tensor(shape: [1, 4], scalars: [1000, 0, 0, 0]))  // not collected
        try collector.combine(communicator: SingleProcessCommunicator())
        let params = try ActivationCalibration.parameters(for: e, ranges: collector)
        XCTAssertEqual(params.count, 3)
        XCTAssertEqual(params[e[0].name], params[e[2].name], "q/k/v share their input's scale")
        return try XCTUnwrap(params[e[0].name])
    }

    func testStaticMinMaxGivesTheCompressedTensorsScaleOfTheExactRange() throws {
        let sym = try calibrate(observer: "static_minmax", symmetric: true, batches: batches())
        XCTAssertEqual(sym.scale!, 50 / 127.5, accuracy: 1e-6)
        XCTAssertNil(sym.zeroPoint)
        let asym = try calibrate(observer: "static_minmax", symmetric: false, batches: batches())
        XCTAssertEqual(asym.scale!, 51 / 255, accuracy: 1e-6)
        XCTAssertEqual(asym.zeroPoint, Int32((-128 + 1 / (51.0 / 255)).rounded(.toNearestOrEven)))
    }

    func testPercentileClipsTheOutlier() throws {
        let p = try calibrate(observer: "percentile", symmetric: true, batches: batches())
        // 99.99 % of 10 001 values lie below ≈ 2: the 50 is clipped; the power-of-two histogram
        // range [0, 64) with 2048 bins resolves 1/32.
        XCTAssertEqual(p.scale!, 2 / 127.5, accuracy: (1.0 / 32) / 127.5 + 1e-6)
    }

    /// KL keeps a lone far outlier (its folded tail has no quantized level to land in, as in the
    /// TensorRT reference) but clips a heavy tail: Laplace(1) samples, absmax ≈ 10.
    func testKLClipsAHeavyTailButNotALoneOutlier() throws {
        var rng = SeededGenerator(state: 8)
        let laplace = (0..<40_000).map { _ -> Float in
            let u = Float.random(in: Float.ulpOfOne..<1, using: &rng)
            return (Bool.random(using: &rng) ? 1 : -1) * -log(u)
        }
        let heavy = [Tensor(shape: [10_000, 4], scalars: laplace)]
        let absmax = laplace.map(\.magnitude).max()!
        let kl = try calibrate(observer: "kl", symmetric: true, batches: heavy)
        let minmax = try calibrate(observer: "static_minmax", symmetric: true, batches: heavy)
        XCTAssertEqual(minmax.scale!, absmax / 127.5, accuracy: 1e-6)
        XCTAssertLessThan(kl.scale!, 0.9 * minmax.scale!, "KL's threshold lies inside the tail")
        XCTAssertGreaterThan(kl.scale!, 3 / 127.5, "but keeps the bulk of the distribution")
        let lone = try calibrate(observer: "kl", symmetric: true, batches: batches())
        XCTAssertEqual(lone.scale!, 50 / 127.5, accuracy: 1e-6)
    }

    func testBatchSplitDoesNotChangeTheScale() throws {
        let all = batches()
        let joined = Tensor(shape: [all.count * 100, 4], scalars: all.flatMap(\.scalars))
        for observer in ["static_minmax", "percentile", "kl"] {
            XCTAssertEqual(try calibrate(observer: observer, symmetric: false, batches: all),
                           try calibrate(observer: observer, symmetric: false, batches: [joined]), observer)
        }
    }

    /// llm-compressor's `minmax` for activations: the first window's range, then
    /// lerp(old, new, 0.01) per window in window order; `memoryless_minmax`: the last window's.
    func testMinMaxIsTheMovingAverageOfWindowRangesAndMemorylessTheLastWindow() throws {
        let all = batches()
        var lo = 0.0, hi = 0.0
        for (i, x) in all.enumerated() {
            let (a, b) = (Double(x.scalars.min()!), Double(x.scalars.max()!))
            (lo, hi) = i == 0 ? (a, b) : (lo + 0.01 * (a - lo), hi + 0.01 * (b - hi))
        }
        let ema = try calibrate(observer: "minmax", symmetric: false, batches: all)
        // compressed-tensors' asymmetric scale from the averaged range (which includes 0).
        XCTAssertEqual(Double(ema.scale!), (max(hi, 0) - min(lo, 0)) / 255, accuracy: 1e-6)
        XCTAssertLessThan(ema.scale!, 50 / 255, "the outlier in one window moves the average only 1 %")
        let last = try calibrate(observer: "memoryless_minmax", symmetric: true, batches: all)
        XCTAssertEqual(Double(last.scale!), Double(all.last!.scalars.map(\.magnitude).max()!) / 127.5, accuracy: 1e-6)
        // Window order matters for a moving average, so ranks exchange the window ranges and
        // average them in global window order: one rank's view equals any split.
        let byRank = [[Float]](arrayLiteral: [1, 2, 5, 6], [3, 4])  // windows 0, 2 on rank 0; 1 on rank 1
        let split = ActivationRangeCollector.movingAverage(byRank, constant: 0.5)
        let whole = ActivationRangeCollector.movingAverage([[1, 2, 3, 4, 5, 6]], constant: 0.5)
        XCTAssertEqual(split.min, whole.min)
        XCTAssertEqual(split.max, whole.max)
        XCTAssertEqual(whole.min, 3.5)  // 1 → 2 → 3.5
    }

    func testDynamicEntriesNeedNoStatistics() throws {
        let e = QuantizationPlan.Entry(block: 0, suffix: "mlp.down_proj", inFeatures: 4, outFeatures: 4, args: QuantizationArgs(),
                                       inputActivations: .int8DynamicPerToken)
        let params = try ActivationCalibration.parameters(for: [e], ranges: nil)
        XCTAssertEqual(params[e.name]?.scheme, .int8DynamicPerToken)
        XCTAssertNil(params[e.name]?.scale)
        XCTAssertTrue(ActivationRangeCollector(entries: [e]).isEmpty)
        XCTAssertEqual(params[e.name]?.inputQuantizer, InputQuantizer(symmetric: true, mode: .dynamicToken))
    }
}
