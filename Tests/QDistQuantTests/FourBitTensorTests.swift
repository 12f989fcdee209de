import QDistTensor
import XCTest
@testable import QDistQuant

/// Blockwise 4-bit storage (FORMATS.md §6.3, §6.4): packing order, error bounds, double
/// quantization, partial dequantization and size accounting.
final class FourBitTensorTests: XCTestCase {
    /// Largest half-gap between neighbouring codes: the worst rounding error, in absmax units.
    static let worstHalfGap: [FourBitQuantType: Float] = [.nf4: (1 - 0.6961928009986877) / 2, .fp4: (1 - 0.6666667) / 2]
    /// Relative RMSE limits on N(0, 1) weights, blocks of 64, double-quantized (measured 0.0920 / 0.1222).
    static let relativeRMSELimit: [FourBitQuantType: Double] = [.nf4: 0.095, .fp4: 0.125]

    func testFirstValueOfEachPairGoesInTheHighNibble() {
        // absmax 1: values are their own scaled values.
        let t = Tensor(shape: [1, 4], scalars: [1, -1, 0, 0.5626170039176941])
        let q = FourBitTensor(quantizing: t, type: .nf4, doubleQuantize: false)
        XCTAssertEqual(q.packed, [0xF0, 0x7D])
        XCTAssertEqual(q.absmax, .float32([1]))
        let f = FourBitTensor(quantizing: t, type: .fp4, doubleQuantize: false)
        XCTAssertEqual(f.packed, [0x3B, 0x05], "fp4: 1 → 0b0011, −1 → 0b1011, 0 → 0, 0.56 → 0b0101 (0.5)")
    }

    func testOddCountPadsTheLastLowNibbleWithTheCodeOfZero() {
        let t = Tensor(shape: [3], scalars: [0.25, -0.5, 1])
        XCTAssertEqual(FourBitTensor(quantizing: t, type: .nf4).packed.last! & 0x0F, 7)
        XCTAssertEqual(FourBitTensor(quantizing: t, type: .fp4).packed.last! & 0x0F, 0)
        XCTAssertEqual(FourBitTensor(quantizing: t, type: .nf4).packed.count, 2)
    }

    func testBlocksAreSixtyFourConsecutiveValuesOfTheFlattenedTensorWithAShortLastBlock() {
        var v = [Float](repeating: 0.001, count: 3 * 50)  // 150 values: blocks of 64, 64, 22
        v[10] = -3; v[100] = 2; v[149] = 0.5
        let q = FourBitTensor(quantizing: Tensor(shape: [3, 50], scalars: v), doubleQuantize: false)
        XCTAssertEqual(q.absmax, .float32([3, 2, 0.5]))
        XCTAssertEqual(q.packed.count, 75)
    }

    func testQuantizeDequantizeErrorStaysWithinHalfACodeGapOfEachBlock() {
        let x = QuantTestData.gaussian(96, 257, seed: 4, outlierFraction: 0.01)  // odd row length: blocks straddle rows
        for type in FourBitQuantType.allCases {
            let q = FourBitTensor(quantizing: x, type: type, doubleQuantize: false)
            let d = q.dequantized()
            XCTAssertEqual(d.shape, x.shape)
            let absmax = q.blockAbsmax()
            var sq = 0.0
            for i in 0..<x.count {
                let e = abs(d.scalars[i] - x.scalars[i])
                let bound = absmax[i / 64] * (Self.worstHalfGap[type]! + 1e-6)
                XCTAssertLessThanOrEqual(e, bound, "\(type) element \(i)")
                sq += Double(e * e)
            }
            let std = (x.scalars.map { Double($0 * $0) }.reduce(0, +) / Double(x.count)).squareRoot()
            XCTAssertLessThan((sq / Double(x.count)).squareRoot() / std, 0.25, "\(type) with 1% outliers (measured 0.18 / 0.22)")
        }
    }

    func testRelativeRMSEOnGaussianWeightsStaysUnderItsNamedLimit() {
        let x = QuantTestData.gaussian(512, 512, seed: 5)
        for type in FourBitQuantType.allCases {
            let d = FourBitTensor(quantizing: x, type: type).dequantized()
            var sq = 0.0, ss = 0.0
            for i in 0..<x.count {
                sq += Double((d.scalars[i] - x.scalars[i]) * (d.scalars[i] - x.scalars[i]))
                ss += Double(x.scalars[i] * x.scalars[i])
            }
            let rel = (sq / ss).squareRoot()
            XCTAssertLessThan(rel, Self.relativeRMSELimit[type]!, "\(type)")
            XCTAssertGreaterThan(rel, 0.05, "\(type): 4 bits cannot be this accurate; is it quantizing?")
        }
    }

    func testDoubleQuantizedAbsmaxRoundTripsWithinHalfAnEightBitStep() {
        var rng = SeededGenerator(seed: 6)
        let absmax = (0..<(256 * 3 + 41)).map { _ in Float(0.5 + rng.uniform() * 3) }
        let dq = DoubleQuantizedAbsmax(compressing: absmax)
        XCTAssertEqual(dq.codes.count, absmax.count)
        XCTAssertEqual(dq.secondLevelAbsmax.count, 4)
        XCTAssertEqual(Double(dq.offset), absmax.map(Double.init).reduce(0, +) / Double(absmax.count), accuracy: 1e-6)
        let back = dq.decompressed()
        for i in absmax.indices {
            // The dynamic map's widest gap in [-1, 1] is 1 − 0.9789 ≈ 0.0141 (between its top entries).
            XCTAssertLessThanOrEqual(abs(back[i] - absmax[i]), dq.secondLevelAbsmax[i / 256] * 0.00704 + 1e-6, "block \(i)")
        }
        XCTAssertEqual(dq.storageBytes, absmax.count + 4 * 4 + 4)
    }

    func testAllZeroBlockDequantizesToZero() {
        var v = [Float](repeating: 0, count: 200)
        for i in 128..<200 { v[i] = Float(i) / 200 }
        let q = FourBitTensor(quantizing: Tensor(shape: [200], scalars: v), type: .nf4)
        XCTAssertEqual(q.packed[0], 0x77, "the code of 0.0, not the CUDA kernel's NaN → code 0 (−1.0)")
        XCTAssertEqual(q.blockAbsmax()[0] != 0, true, "the double-quantized absmax of the zero block is not 0 …")
        let d = q.dequantized()
        XCTAssertTrue(d.scalars[0..<128].allSatisfy { $0 == 0 }, "… yet its values come back exactly 0")
        XCTAssertEqual(d.scalars[199], v[199], accuracy: 0.05)
    }

    func testRowRangesEqualTheSameRowsOfTheWholeTensor() {
        let x = QuantTestData.gaussian(9, 33, seed: 7)  // 33 columns: odd, so rows start mid-byte
        for type in FourBitQuantType.allCases {
            let q = FourBitTensor(quantizing: x, type: type)
            let whole = q.dequantized()
            for lo in 0...9 {
                for hi in lo...9 {
                    XCTAssertEqual(q.dequantizedRows(lo..<hi), whole.rows(lo..<hi), "\(type) rows \(lo)..<\(hi)")
                }
            }
        }
    }

    func testBitsPerParameterCountsCodesAndAbsmaxStorage() {
        let x = Tensor.zeros([1024, 1024])
        XCTAssertEqual(FourBitTensor(quantizing: x, doubleQuantize: false).bitsPerParameter, 4.5, accuracy: 1e-12)
        let dq = FourBitTensor(quantizing: x)
        // 4 + 8/64 + 32/(64·256) + the 32-bit offset spread over 2^20 weights.
        let expected: Double = 4 + 8.0 / 64 + 32.0 / (64 * 256) + 32.0 / 1_048_576
        XCTAssertEqual(dq.bitsPerParameter, expected, accuracy: 1e-12)
        XCTAssertEqual(dq.storageBytes, 524_288 + 16_384 + 4 * 64 + 4)
    }

    func testMismatchedPartsAreOneLineErrorsNamingTheTensor() {
        XCTAssertThrowsError(try FourBitTensor(shape: [4, 4], quantType: .nf4, blockSize: 64, packed: [0], absmax: .float32([1]),
                                               subject: "q_proj")) { error in
            XCTAssertEqual("\(error)", "q_proj: 1 packed bytes for 16 values (need 8)")
        }
        XCTAssertThrowsError(try FourBitTensor(shape: [130], quantType: .nf4, blockSize: 64, packed: [UInt8](repeating: 0, count: 65),
                                               absmax: .float32([1, 1]), subject: "k_proj")) { error in
            XCTAssertEqual("\(error)", "k_proj: 2 absmax values for 3 blocks of 64")
        }
    }
}
