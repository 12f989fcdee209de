import XCTest
import QDistTensor
@testable import QDistTrain

/// Exact sums on a fixed grid: any order and any split give the same digits, and the value is
/// the float64 sum of the grid-rounded inputs.
final class FixedPointLimbsTests: XCTestCase {
    func testSumsInAnyOrderAndSplitGiveTheSameDigitsAndTheExactValue() {
        var rng = SeededGenerator(state: 3)
        // Magnitudes from 1e-12 to 1e6 and both signs: a Float sum of these depends on order.
        let values: [Float] = (0..<4000).map { i in rng.nextGaussian() * Float(pow(10, Double(i % 19) - 12)) }
        let limbs = FixedPointLimbs.gradients
        func digits(_ order: [Int], parts: Int) -> [Int64] {
            var partials = (0..<parts).map { _ in [Int64](repeating: 0, count: limbs.limbs) }
            for (n, i) in order.enumerated() {
                partials[n % parts].withUnsafeMutableBufferPointer { XCTAssertTrue(limbs.add(Double(values[i]), to: $0.baseAddress!)) }
            }
            var total = [Int64](repeating: 0, count: limbs.limbs)
            for p in partials.reversed() { for k in total.indices { total[k] &+= p[k] } }
            return total
        }
        let forward = digits(Array(values.indices), parts: 1)
        var shuffled = Array(values.indices)
        shuffled.shuffle(using: &rng)
        for parts in 1...4 { XCTAssertEqual(digits(shuffled, parts: parts), forward, "\(parts) parts") }
        // The value: the sum of the inputs (a Float64 re-computation, itself rounded).
        let reference = values.reduce(0.0) { $0 + Double($1) }
        XCTAssertEqual(forward.withUnsafeBufferPointer { limbs.value(of: $0.baseAddress!) }, reference, accuracy: 1e-12 * values.map { abs(Double($0)) }.reduce(0, +))
        // Float32 summation really does depend on the order for these inputs.
        let f1 = values.reduce(Float(0), +), f2 = shuffled.map { values[$0] }.reduce(Float(0), +)
        XCTAssertNotEqual(f1, f2, "the test data must make plain Float sums order-dependent")
    }

    func testOutOfRangeAndNonFiniteValuesAreRefusedNotWrapped() {
        let limbs = FixedPointLimbs.gradients
        var d = [Int64](repeating: 0, count: 3)
        d.withUnsafeMutableBufferPointer { p in
            XCTAssertFalse(limbs.add(.nan, to: p.baseAddress!))
            XCTAssertFalse(limbs.add(.infinity, to: p.baseAddress!))
            XCTAssertFalse(limbs.add(0x1p40, to: p.baseAddress!))
            XCTAssertTrue(limbs.add(-0x1p38, to: p.baseAddress!))
        }
        XCTAssertEqual(d.withUnsafeBufferPointer { limbs.value(of: $0.baseAddress!) }, -0x1p38)
        let floats = limbs.floats([5 << 40 | 7, -3, 0])  // one value; its digits carry into each other
        XCTAssertEqual(floats[0], Float((Double(5 << 40 | 7) - 3 * 0x1p40) * 0x1p-80))
    }
}
