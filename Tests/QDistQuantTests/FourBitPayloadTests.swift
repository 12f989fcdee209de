import QDistTensor
import XCTest
@testable import QDistQuant

/// The flat byte encoding ZeRO-3 moves frozen 4-bit blocks in.
final class FourBitPayloadTests: XCTestCase {
    func entries() -> [(name: String, entry: FourBitPayload.Entry)] {
        let w = QuantTestData.gaussian(48, 37, seed: 8)
        return [("norm", .float32(Tensor(shape: [5], scalars: [1, 2, 3, -0.0, .infinity]))),
                ("a.weight", .fourBit(FourBitTensor(quantizing: w, type: .nf4))),
                ("b.weight", .fourBit(FourBitTensor(quantizing: w, type: .fp4, blockSize: 128, doubleQuantize: false))),
                ("empty", .float32(Tensor.zeros([0, 3])))]
    }

    func testRoundTripIsExact() throws {
        let original = entries()
        let decoded = try FourBitPayload.decode(FourBitPayload.encode(original))
        XCTAssertEqual(decoded.map(\.name), original.map(\.name))
        for (a, b) in zip(decoded, original) { XCTAssertEqual(a.entry, b.entry, a.name) }
    }

    func testTruncatedPaddedAndForeignPayloadsFailWithTheByteOffset() {
        let bytes = FourBitPayload.encode(entries())
        XCTAssertThrowsError(try FourBitPayload.decode(Array(bytes.dropLast(3)), subject: "block 2")) { error in
            XCTAssertTrue("\(error)".hasPrefix("block 2: truncated: needs "), "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
        XCTAssertThrowsError(try FourBitPayload.decode(bytes + [0], subject: "block 2")) { error in
            XCTAssertEqual("\(error)", "block 2: 1 bytes left over after the last entry (byte \(bytes.count))")
        }
        XCTAssertThrowsError(try FourBitPayload.decode(Array("PK\u{3}\u{4}rest".utf8), subject: "x")) { error in
            XCTAssertEqual("\(error)", "x: not a qdist 4-bit payload (magic is not QD4B)")
        }
    }
}
