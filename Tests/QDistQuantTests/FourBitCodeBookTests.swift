import QDistTensor
import XCTest
@testable import QDistQuant

/// The bitsandbytes code books and encoders (FORMATS.md §6.1, §6.2, §6.4), value for value.
final class FourBitCodeBookTests: XCTestCase {
    func testNF4CodeBookHoldsTheExactFloat32Literals() {
        let nf4 = FourBitQuantType.nf4.codeBook
        XCTAssertEqual(nf4.count, 16)
        // Bit patterns of FORMATS.md §6.1's literals (each an exact float32 printed as a double).
        let bits: [UInt32] = [0xBF80_0000, 0xBF32_39B1, 0xBF06_6B30, 0xBECA_32A0, 0xBE91_A24D, 0xBE3D_353F, 0xBDBA_7871, 0x0000_0000,
                              0x3DA2_FAFF, 0x3E24_CAE3, 0x3E7C_04DD, 0x3EAD_033A, 0x3EE1_A4B8, 0x3F10_07AB, 0x3F39_13B3, 0x3F80_0000]
        XCTAssertEqual(nf4.map(\.bitPattern), bits)
        XCTAssertEqual(nf4, nf4.sorted(), "NF4 codes ascend, so code order is value order")
        XCTAssertEqual(nf4[7], 0, "NF4 has an exact zero")
    }

    func testFP4CodeBookIsTheRawListOverTwelveWithBit3AsSign() {
        let fp4 = FourBitQuantType.fp4.codeBook
        let expected: [Float] = [0, 0.005208333, 0.6666667, 1.0, 0.3333333, 0.5, 0.1666667, 0.25]
        for i in 0..<8 {
            XCTAssertEqual(fp4[i], expected[i], accuracy: 1e-7, "code \(i)")
            XCTAssertEqual(fp4[i + 8], -fp4[i], "code \(i + 8) is the negative of code \(i)")
        }
        XCTAssertEqual(fp4[8].sign, .minus, "code 8 is −0")
    }

    /// Every threshold sits between two neighbouring codes; a value on it takes the lower code,
    /// one ulp above the upper (the kernel's `x > t`).
    func testEncodersPickTheNearestCodeAndSendExactTiesDown() {
        for type in FourBitQuantType.allCases {
            let ts = BlockwiseFourBit.encodingThresholds(type)
            for t in ts.dropLast() {  // the last is the +inf pad
                let below = type.code(forScaled: t), above = type.code(forScaled: t.nextUp)
                XCTAssertNotEqual(below, above, "\(type) threshold \(t) separates two codes")
                XCTAssertLessThan(type.codeBook[Int(below)], type.codeBook[Int(above)], "\(type) at \(t)")
            }
            var rng = SeededGenerator(seed: 1)
            for _ in 0..<20_000 {
                let x = Float(rng.uniform() * 2 - 1)
                let code = Int(type.code(forScaled: x))
                let distance = abs(type.codeBook[code] - x)
                let best = type.codeBook.map { abs($0 - x) }.min()!
                XCTAssertLessThanOrEqual(distance - best, 1e-6, "\(type) code \(code) for \(x) is not the nearest")
            }
        }
    }

    func testExtremesZeroAndNaNEncodeAsTheCUDAKernelDoes() {
        XCTAssertEqual(FourBitQuantType.nf4.code(forScaled: 1), 15)
        XCTAssertEqual(FourBitQuantType.nf4.code(forScaled: -1), 0)
        XCTAssertEqual(FourBitQuantType.nf4.code(forScaled: 0), 7)
        XCTAssertEqual(FourBitQuantType.nf4.code(forScaled: .nan), 0, "NaN fails every comparison")
        XCTAssertEqual(FourBitQuantType.fp4.code(forScaled: 1), 0b0011)
        XCTAssertEqual(FourBitQuantType.fp4.code(forScaled: -1), 0b1011)
        XCTAssertEqual(FourBitQuantType.fp4.code(forScaled: 0), 0)
        XCTAssertEqual(FourBitQuantType.fp4.code(forScaled: -0.001), 0b1000, "tiny negatives keep their sign: −0")
        XCTAssertEqual(FourBitQuantType.fp4.code(forScaled: .nan), 0)
    }

    /// The branch-free bulk encoder is the decision tree, including at every threshold ± 1 ulp,
    /// NaN and infinities.
    func testBulkEncoderAgreesWithTheDecisionTree() {
        for type in FourBitQuantType.allCases {
            let ts = BlockwiseFourBit.encodingThresholds(type)
            var xs: [Float] = [0, -0.0, 1, -1, 2, -2, .nan, .infinity, -.infinity, .leastNonzeroMagnitude]
            for t in ts.dropLast() { xs += [t, t.nextUp, t.nextDown, -t, (-t).nextUp, (-t).nextDown] }
            var rng = SeededGenerator(seed: 2)
            for _ in 0..<50_000 { xs.append(Float(rng.uniform() * 2.2 - 1.1)) }
            let order = BlockwiseFourBit.codeOrder(type)
            ts.withUnsafeBufferPointer { t in
                order.withUnsafeBufferPointer { o in
                    for x in xs {
                        XCTAssertEqual(BlockwiseFourBit.encode(x, type: type, thresholds: t, order: o), type.code(forScaled: x), "\(type) at \(x)")
                    }
                }
            }
        }
    }

    func testDynamicMapIsBitsandbytesCreateDynamicMap() {
        let map = DynamicQuantizationMap.signed8Bit
        XCTAssertEqual(map.count, 256)
        XCTAssertEqual(map, map.sorted())
        XCTAssertEqual(map[127], 0)
        XCTAssertEqual(map[255], 1)
        // Golden values from bitsandbytes 0.50.2 / torch 2.13 (x86): create_dynamic_map().
        XCTAssertEqual(map[0].bitPattern, 0xBF7E_3333)    // −0.99296874
        XCTAssertEqual(map[1].bitPattern, 0xBF7A_999A)    // −0.9789063
        XCTAssertEqual(map[128].bitPattern, 0x3513_A3B7)  // 5.5000004e-07
        XCTAssertEqual(map[254].bitPattern, 0x3F7E_3333)  // 0.99296874
        // FNV-1a over all 256 bit patterns.
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for v in map { hash = (hash ^ UInt64(v.bitPattern)) &* 0x100_0000_01B3 }
        XCTAssertEqual(hash, Self.bnbMapHash, "dynamic map differs from bitsandbytes'")
    }
    static let bnbMapHash: UInt64 = 0x690C_A6AD_558A_2475

    func testTorchLinspaceHalvesMeetAtTheEnds() {
        let l = DynamicQuantizationMap.torchLinspace(from: 0.1, to: 1, count: 65)
        XCTAssertEqual(l.first, 0.1)
        XCTAssertEqual(l.last, 1)
        XCTAssertEqual(l, l.sorted())
    }

    func testEightBitSearchReturnsTheNearestEntry() {
        let map = DynamicQuantizationMap.signed8Bit
        map.withUnsafeBufferPointer { code in
            XCTAssertEqual(DynamicQuantizationMap.nearestIndex(1, code: code), 255)
            XCTAssertEqual(DynamicQuantizationMap.nearestIndex(-1, code: code), 0)
            XCTAssertEqual(DynamicQuantizationMap.nearestIndex(0, code: code), 127)
            XCTAssertEqual(DynamicQuantizationMap.nearestIndex(.nan, code: code), 0, "as the CUDA search ends for NaN")
            var rng = SeededGenerator(seed: 3)
            for k in 0..<30_000 {
                // Half uniform, half log-uniform near zero where the map is dense.
                let u = rng.uniform()
                let x = k % 2 == 0 ? Float(u * 2 - 1) : Float((u < 0.5 ? -1 : 1) * pow(10, -7 * rng.uniform()))
                let i = Int(DynamicQuantizationMap.nearestIndex(x, code: code))
                let best = map.map { abs($0 - x) }.min()!
                XCTAssertLessThanOrEqual(abs(map[i] - x) - best, x.ulp * 2, "index \(i) for \(x)")
            }
            // Every entry maps to itself.
            for i in 0..<256 { XCTAssertEqual(Int(DynamicQuantizationMap.nearestIndex(map[i], code: code)), i) }
        }
    }
}
