import XCTest
import QDistTensor
@testable import QDistQuant

/// Observers: exact min/max, MSE shrinking, percentile and KL thresholds, and statistics that
/// merge across batches and ranks exactly.
final class ObserverTests: XCTestCase {
    func testMinMaxObserverReturnsTheExactExtremes() throws {
        let v: [Float] = [0.5, -2.25, 3.125, 0, -1]
        let grid = try QuantizationGrid(QuantizationArgs(numBits: 4))
        let r = v.withUnsafeBufferPointer { MinMaxObserver().range(of: $0, grid: grid) }
        XCTAssertEqual(r, ClipRange(min: -2.25, max: 3.125))
        var s = MinMaxStatistics(channels: 2)
        s.observe(Tensor(shape: [2, 2], scalars: [1, -5, -3, 7]))
        XCTAssertEqual(s.range(channel: 0), ClipRange(min: -3, max: 1))
        XCTAssertEqual(s.range(channel: 1), ClipRange(min: -5, max: 7))
    }

    func testMSEObserverShrinksTheRangeAndLowersTheErrorOnHeavyTailedWeights() throws {
        let w = QuantTestData.gaussian(16, 256, seed: 11, outlierFraction: 0.004, outlierScale: 12)
        let args = QuantizationArgs(numBits: 4, strategy: .channel, observer: .mse)
        let grid = try QuantizationGrid(args)
        func squaredError(_ q: QuantizedWeight) -> Double {
            zip(q.dequantized().scalars, w.scalars).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
        }
        let rtnMinMax = grid.quantize(w, observer: MinMaxObserver())
        let rtnMSE = grid.quantize(w)  // args.observer == .mse
        XCTAssertLessThan(squaredError(rtnMSE), 0.9 * squaredError(rtnMinMax))
        XCTAssertTrue(zip(rtnMSE.parameters.scales, rtnMinMax.parameters.scales).allSatisfy { $0 <= $1 })
        XCTAssertTrue(zip(rtnMSE.parameters.scales, rtnMinMax.parameters.scales).contains { $0 < $1 })
    }

    func testMSEObserverKeepsMinMaxOnDataWithoutOutliers() throws {
        // Evenly spaced values are exactly representable at the min/max scale: nothing to gain.
        let v: [Float] = (-8...7).map { Float($0) * 0.25 }
        let grid = try QuantizationGrid(QuantizationArgs(numBits: 4, symmetric: false))
        let r = v.withUnsafeBufferPointer { MSEObserver().range(of: $0, grid: grid) }
        XCTAssertEqual(r, ClipRange(min: -2, max: 1.75))
    }

    func testPercentileObserverOnAKnownDistribution() {
        // |x| uniform on [0, 1): the p-th percentile is p/100, up to one bin (1/2048).
        var h = HistogramStatistics()
        let n = 200_000
        let values = (0..<n).map { Float($0) / Float(n) * ($0 % 2 == 0 ? 1 : -1) }
        h.observe(Tensor(shape: [n], scalars: values))
        XCTAssertEqual(h.exponent, 0)
        for p in [50.0, 90.0, 99.0, 99.99] {
            let t = PercentileObserver(percentile: p).threshold(h)
            XCTAssertEqual(t, p / 100, accuracy: 1.0 / 2048 + 1e-9, "percentile \(p)")
        }
        let r = PercentileObserver(percentile: 90).range(of: h)
        XCTAssertEqual(Double(r.max), 0.9, accuracy: 1.0 / 2048)
        XCTAssertEqual(Double(r.min), -0.9, accuracy: 1.0 / 2048)
    }

    func testKLThresholdLiesBelowTheAbsmaxOnDataWithOutliers() {
        var x = QuantTestData.gaussian(1, 100_000, seed: 21).scalars
        for i in 0..<20 { x[i * 997] = 40 + Float(i) }
        var h = HistogramStatistics()
        h.observe(Tensor(shape: [x.count], scalars: x))
        let t = KLObserver().threshold(h)
        XCTAssertLessThan(t, 40, "KL should clip the outliers (absmax 59)")
        XCTAssertGreaterThan(t, 3, "but keep the Gaussian bulk")
        let r = KLObserver().range(of: h)
        XCTAssertEqual(Double(r.max), t, accuracy: 1e-6)
    }

    func testHistogramMergeEqualsObservingTheUnionInOneProcess() {
        // b has a 16x larger range than a, so merging must re-bin a exactly.
        let a = QuantTestData.gaussian(1, 5000, std: 0.3, seed: 31)
        let b = QuantTestData.gaussian(1, 7000, std: 4.8, seed: 32)
        let c = QuantTestData.gaussian(1, 300, std: 1, seed: 33)
        var ha = HistogramStatistics(), hb = HistogramStatistics(), hc = HistogramStatistics()
        ha.observe(a); hb.observe(b); hc.observe(c)
        var whole = HistogramStatistics()
        whole.observe(c); whole.observe(a); whole.observe(b)  // another order, one process
        let merged = HistogramStatistics.merge([ha, hb, hc])
        XCTAssertEqual(merged, whole)
        XCTAssertEqual(merged.total, 12_300)
        XCTAssertEqual(KLObserver().threshold(merged), KLObserver().threshold(whole))
        XCTAssertEqual(PercentileObserver().threshold(merged), PercentileObserver().threshold(whole))

        // The same through the Allreduce sequence: MAX on exponent, widen, SUM on counts.
        let e = max(ha.exponent, hb.exponent, hc.exponent)
        var parts = [ha, hb, hc]
        for i in parts.indices { parts[i].widen(toExponent: e) }
        let summed = (0..<ha.bins).map { i in parts.reduce(0.0) { $0 + $1.counts[i] } }
        XCTAssertEqual(summed, whole.counts)
    }

    func testMinMaxStatisticsMergeEqualsObservingTheUnion() {
        let a = QuantTestData.gaussian(10, 6, seed: 41), b = QuantTestData.gaussian(7, 6, std: 3, seed: 42)
        var sa = MinMaxStatistics(channels: 6), sb = MinMaxStatistics(channels: 6), whole = MinMaxStatistics(channels: 6)
        sa.observe(a); sb.observe(b)
        whole.observe(b); whole.observe(a)
        XCTAssertEqual(MinMaxStatistics.merge([sa, sb]), whole)
        var ta = MinMaxStatistics(), tb = MinMaxStatistics(), tw = MinMaxStatistics()
        ta.observe(a); tb.observe(b); tw.observe(Tensor.concatenateRows([a, b]))
        XCTAssertEqual(MinMaxStatistics.merge([ta, tb]), tw)
    }

    func testNonFiniteActivationsAreCountedNotBinned() {
        var h = HistogramStatistics()
        h.observe(Tensor(shape: [4], scalars: [1, .nan, -.infinity, -0.5]))
        XCTAssertEqual(h.nonFinite, 2)
        XCTAssertEqual(h.total, 2)
        XCTAssertEqual(h.min, -0.5)
        XCTAssertEqual(h.max, 1)
    }
}
