import XCTest
import QDistIO
import QDistTensor
@testable import QDistQuant

/// The format table's numbers, checked against the bit-level codecs and the ggml block layouts.
final class NumberFormatTests: XCTestCase {
    func testFloatRangesAndStepsMatchTheBitLevelCodecs() throws {
        let fp16 = try XCTUnwrap(NumberFormat.named("fp16"))
        XCTAssertEqual(fp16.maximum, Double(FloatBits.float(fromFP16: 0x7BFF)))
        XCTAssertEqual(fp16.smallestPositive, Double(FloatBits.float(fromFP16: 0x0001)))
        XCTAssertEqual(fp16.stepAtOne, Double(FloatBits.float(fromFP16: 0x3C01) - 1))
        let bf16 = try XCTUnwrap(NumberFormat.named("bf16"))
        XCTAssertEqual(bf16.maximum, Double(FloatBits.float(fromBF16: 0x7F7F)))
        XCTAssertEqual(bf16.smallestPositive, Double(FloatBits.float(fromBF16: 0x0001)))
        XCTAssertEqual(bf16.stepAtOne, Double(FloatBits.float(fromBF16: 0x3F81) - 1))
        let e4m3 = try XCTUnwrap(NumberFormat.named("fp8_e4m3"))
        XCTAssertEqual(e4m3.maximum, Double(FloatBits.float(fromFP8E4M3: 0x7E)))
        XCTAssertEqual(e4m3.smallestPositive, Double(FloatBits.float(fromFP8E4M3: 0x01)))
        XCTAssertEqual(e4m3.stepAtOne, Double(FloatBits.float(fromFP8E4M3: 0x39) - 1))
        let e5m2 = try XCTUnwrap(NumberFormat.named("e5m2"))
        XCTAssertEqual(e5m2.maximum, Double(FloatBits.float(fromFP8E5M2: 0x7B)))
        XCTAssertEqual(e5m2.smallestPositive, Double(FloatBits.float(fromFP8E5M2: 0x01)))
        XCTAssertEqual(e5m2.stepAtOne, Double(FloatBits.float(fromFP8E5M2: 0x3D) - 1))
    }

    func testEveryFormatTheIssueNamesIsListed() {
        for name in ["fp32", "fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "int8", "int4", "int3", "int2", "nf4", "fp4",
                     "ternary", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"] {
            XCTAssertNotNil(NumberFormat.named(name), name)
        }
        XCTAssertEqual(Set(NumberFormat.all.map(\.name)).count, NumberFormat.all.count, "names are unique")
    }

    func testBitsPerWeightIncludeScaleOverhead() throws {
        let int4 = try XCTUnwrap(NumberFormat.named("int4"))
        XCTAssertEqual(int4.bitsPerWeight(), 4)
        XCTAssertEqual(int4.bitsPerWeight(groupSize: 128), 4.125)
        XCTAssertEqual(int4.bitsPerWeight(groupSize: 128, zeroPoint: true), 4.15625)
        XCTAssertEqual(try XCTUnwrap(NumberFormat.named("nf4")).bitsPerWeight(), 4.5)
        XCTAssertEqual(try XCTUnwrap(NumberFormat.named("nf4_dq")).bitsPerWeight(), 4 + 8.0 / 64 + 32.0 / 16384, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(NumberFormat.named("ternary")).bitsPerWeight(), log2(3), accuracy: 1e-12)
        for (name, bits) in [("q4_0", 4.5), ("q4_1", 5.0), ("q5_0", 5.5), ("q5_1", 6.0), ("q8_0", 8.5), ("q2_k", 2.625),
                             ("q3_k", 3.4375), ("q4_k", 4.5), ("q5_k", 5.5), ("q6_k", 6.5625), ("tq1_0", 1.6875), ("tq2_0", 2.0625)] {
            XCTAssertEqual(try XCTUnwrap(NumberFormat.named(name)).bitsPerWeight(), bits, name)
        }
    }

    /// Stands in for ggml's static_assert(sizeof(block_…) == …): bytes per block recomputed
    /// from the field layouts of FORMATS.md §2.3 (half = 2 bytes, QK_K = 256).
    func testGGMLBlockSizesMatchTheirFieldLayouts() {
        let half = 2, qk = 256
        let layouts: [GGMLType: Int] = [
            .q4_0: half + 32 / 2,
            .q4_1: 2 * half + 32 / 2,
            .q5_0: half + 4 + 32 / 2,
            .q5_1: 2 * half + 4 + 32 / 2,
            .q8_0: half + 32,
            .q8_1: 2 * half + 32,
            .q2_K: qk / 16 + qk / 4 + 2 * half,
            .q3_K: qk / 8 + qk / 4 + 12 + half,
            .q4_K: 2 * half + 12 + qk / 2,
            .q5_K: 2 * half + 12 + qk / 8 + qk / 2,
            .q6_K: qk / 2 + qk / 4 + qk / 16 + half,
            .q8_K: 4 + qk + 2 * qk / 16,
            .tq1_0: (qk - 4 * qk / 64) / 5 + qk / 64 + half,
            .tq2_0: qk / 4 + half,
        ]
        for (type, bytes) in layouts {
            XCTAssertEqual(type.traits.typeSize, bytes, type.traits.name)
            XCTAssertEqual(GGMLType(name: type.traits.name), type)
        }
        XCTAssertEqual(GGMLType.q4_K.byteCount(elements: 512), 288)
        XCTAssertNil(GGMLType.q4_K.byteCount(elements: 100), "not a whole number of blocks")
        XCTAssertNil(GGMLType(rawValue: 4), "removed type ids stay unassigned")
    }
}
