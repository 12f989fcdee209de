import XCTest
import QDistTensor
@testable import QDistQuant

/// The compressed-tensors grid: formulas checked by hand, and round-trip bounds for every
/// strategy, symmetric and asymmetric.
final class QuantizationGridTests: XCTestCase {
    func testSymmetricScaleUsesHalfTheCodeSpanAsCompressedTensors() throws {
        let int4 = try QuantizationGrid(QuantizationArgs(numBits: 4))
        XCTAssertEqual(int4.parameters(min: -3, max: 1.5).scale, 3 / 7.5)
        XCTAssertEqual(int4.parameters(min: -3, max: 1.5).zeroPoint, 0)
        let int8 = try QuantizationGrid(QuantizationArgs(numBits: 8))
        XCTAssertEqual(int8.parameters(min: -0.5, max: 2).scale, 2 / 127.5)
        // An all-zero group gets the smallest scale, so every code is 0.
        XCTAssertEqual(int4.parameters(min: 0, max: 0).scale, Float.ulpOfOne)
    }

    func testAsymmetricZeroPointIsRoundedClampedAndTheRangeIncludesZero() throws {
        let g = try QuantizationGrid(QuantizationArgs(numBits: 4, symmetric: false))
        let (scale, zero) = g.parameters(min: -1, max: 3)
        XCTAssertEqual(scale, 4 / 15)
        XCTAssertEqual(zero, -4)  // round(−8 − (−1)/(4/15)) = round(−4.25)
        // All-positive data: min is widened to 0, so zero = qmin.
        let (s2, z2) = g.parameters(min: 2, max: 6)
        XCTAssertEqual(s2, 6 / 15)
        XCTAssertEqual(z2, -8)
        XCTAssertEqual(g.fakeQuantize(0, scale: scale, zeroPoint: zero), 0)
    }

    func testRoundTripErrorIsAtMostHalfAScaleForEveryStrategyAndSymmetry() throws {
        let w = QuantTestData.gaussian(24, 200, seed: 7, outlierFraction: 0.01)
        let strategies: [(QuantizationArgs.Strategy, Int?)] = [(.tensor, nil), (.channel, nil), (.group, 64), (.group, 32)]
        for symmetric in [true, false] {
            for bits in [2, 4, 8] {
                for (strategy, gs) in strategies {
                    let args = QuantizationArgs(numBits: bits, symmetric: symmetric, strategy: strategy, groupSize: gs)
                    let grid = try QuantizationGrid(args)
                    let q = grid.quantize(w)
                    let dq = q.dequantized()
                    let label = "\(bits)-bit \(symmetric ? "sym" : "asym") \(strategy) \(gs ?? 0)"
                    for r in 0..<w.rows {
                        for c in 0..<w.columns {
                            let i = q.parameters.index(row: r, group: Int(q.groupIndex[c]))
                            let scale = q.parameters.scales[i]
                            // Half a step, plus float rounding of (q − z)·s at |w|'s magnitude.
                            XCTAssertLessThanOrEqual(abs(dq[r, c] - w[r, c]), scale / 2 * (1 + 1e-5) + 4 * w[r, c].ulp, label)
                        }
                    }
                    let (lo, hi) = args.codeRange
                    XCTAssertTrue(q.codes.allSatisfy { Float($0) >= lo && Float($0) <= hi }, label)
                    XCTAssertTrue(q.parameters.zeroPoints.allSatisfy { $0 >= lo && $0 <= hi && $0 == $0.rounded() }, label)
                    if symmetric { XCTAssertTrue(q.parameters.zeroPoints.allSatisfy { $0 == 0 }, label) }
                }
            }
        }
    }

    func testGroupsAlongTheInputDimensionAllowAShorterLastGroup() throws {
        let w = QuantTestData.gaussian(3, 100, seed: 3)
        let grid = try QuantizationGrid(QuantizationArgs(numBits: 4, strategy: .group, groupSize: 32))
        let p = grid.findParameters(w)
        XCTAssertEqual(p.groupsPerRow, 4)
        XCTAssertEqual(p.scaleShape, [3, 4])
        // The last group holds columns 96..<100 only: its scale comes from those four values.
        for r in 0..<3 {
            let tail = (96..<100).map { abs(w[r, $0]) }.max()!
            XCTAssertEqual(p.scales[p.index(row: r, group: 3)], tail / 7.5, accuracy: 1e-7)
        }
        XCTAssertEqual(p.consecutiveGroupIndex()[99], 3)
    }

    func testTensorAndChannelParameterShapesFollowCompressedTensors() throws {
        let w = QuantTestData.gaussian(5, 16, seed: 4)
        XCTAssertEqual(try QuantizationGrid(QuantizationArgs(strategy: .tensor)).findParameters(w).scaleShape, [1])
        XCTAssertEqual(try QuantizationGrid(QuantizationArgs(strategy: .channel)).findParameters(w).scaleShape, [5, 1])
        let t = try QuantizationGrid(QuantizationArgs(strategy: .tensor)).findParameters(w)
        XCTAssertEqual(t.scales[0], w.absMax() / 127.5)
    }

    func testFP8WeightsUseAbsmaxOver448AndRoundOntoE4M3() throws {
        let w = QuantTestData.gaussian(8, 64, seed: 5)
        let grid = try QuantizationGrid(QuantizationArgs(numBits: 8, type: .float, strategy: .channel))
        let q = grid.quantize(w)
        let dq = q.dequantized()
        for r in 0..<8 {
            let absmax = (0..<64).map { abs(w[r, $0]) }.max()!
            XCTAssertEqual(q.parameters.scales[r], absmax / 448)
            for c in 0..<64 {
                let s = q.parameters.scales[r]
                // E4M3: 3 mantissa bits → relative error ≤ 2^−4, plus half a subnormal step.
                XCTAssertLessThanOrEqual(abs(dq[r, c] - w[r, c]), abs(w[r, c]) / 16 + s * 0x1p-10 + 1e-9)
            }
        }
    }

    func testValidateNamesTheGroupSizesThatDivideTheInputFeatures() {
        let args = QuantizationArgs.w4a16(groupSize: 128)
        XCTAssertThrowsError(try args.validate(inFeatures: 576)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("group_size 128 does not divide in_features 576"), text)
            for size in ["64", "96", "144", "192", "288", "576"] { XCTAssertTrue(text.contains(size), text) }
            XCTAssertTrue(text.contains("nearest: 144, 96") || text.contains("nearest: 96, 144"), text)
        }
        XCTAssertNoThrow(try QuantizationArgs.w4a16(groupSize: 64).validate(inFeatures: 576))
        XCTAssertNoThrow(try args.validate(inFeatures: 1536))
    }

    func testStructuralValidationRejectsWhatNoFormatHolds() {
        XCTAssertThrowsError(try QuantizationArgs(numBits: 1).validateStructure())
        XCTAssertThrowsError(try QuantizationArgs(numBits: 4, type: .float).validateStructure())
        XCTAssertThrowsError(try QuantizationArgs(numBits: 8, type: .float, symmetric: false).validateStructure())
        XCTAssertThrowsError(try QuantizationArgs(strategy: .group, groupSize: nil).validateStructure())
        XCTAssertThrowsError(try QuantizationArgs(strategy: .channel, actorder: .group).validateStructure()) { error in
            XCTAssertTrue("\(error)".contains("actorder static"), "\(error)")
        }
        XCTAssertNoThrow(try QuantizationArgs(strategy: .channel, actorder: .static).validateStructure())
    }
}
