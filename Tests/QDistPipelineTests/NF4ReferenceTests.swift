import Foundation
import QDistQuant
import QDistTensor
import QDistTestSupport
import XCTest

/// qdist's 4-bit quantizer against an independent numpy implementation of bitsandbytes'
/// algorithm (Tests/Reference/nf4_reference.py; it is itself checked against bitsandbytes by
/// Benchmarks/bnb_nf4_compare.py). Codes, absmaxes, the double-quantization offset, 8-bit codes,
/// second-level absmaxes, the dynamic map and the dequantized values must agree bit for bit.
/// Never skips: a missing .venv fails it (`bash Launch/setup-debian.sh`).
final class NF4ReferenceTests: XCTestCase {
    struct Reference {
        var packed: [UInt8], absmax: [Float], offset: Float, qabsmax: [UInt8], absmax2: [Float], dequant: [Float], code8: [Float]
    }

    func reference(_ values: [Float], type: FourBitQuantType, blockSize: Int = 64) throws -> Reference {
        let dir = try QdistProcess.temporaryDirectory(self)
        let input = dir.appendingPathComponent("in.f32")
        try values.withUnsafeBytes { try Data($0).write(to: input) }
        let script = QdistProcess.repositoryRoot.appendingPathComponent("Tests/Reference/nf4_reference.py").path
        let out = dir.appendingPathComponent("out")
        let r = try QdistProcess.runProcess(try QdistProcess.python(), [script, "quantize", input.path, out.path, type.rawValue, String(blockSize)],
                                            environment: [:], timeout: 120)
        XCTAssertEqual(r.status, 0, "nf4_reference.py failed; is numpy in .venv (bash Launch/setup-debian.sh)?\n\(r.stderr)")
        func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: out.appendingPathComponent(name))) }
        func floats(_ name: String) throws -> [Float] {
            try Data(contentsOf: out.appendingPathComponent(name)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        return Reference(packed: try bytes("packed.u8"), absmax: try floats("absmax.f32"), offset: try floats("offset.f32")[0],
                         qabsmax: try bytes("qabsmax.u8"), absmax2: try floats("absmax2.f32"), dequant: try floats("dequant.f32"),
                         code8: try floats("code8.f32"))
    }

    /// Weight-like values: N(0, 0.02²) with 0.2% outliers ×30, optionally an all-zero first block.
    func weights(_ n: Int, seed: UInt64, zeroBlock: Bool = false) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        var v = (0..<n).map { _ in 0.02 * rng.nextGaussian() }
        for i in v.indices where rng.uniform() < 0.002 { v[i] *= 30 }
        if zeroBlock { for i in 0..<min(64, n) { v[i] = 0 } }
        return v
    }

    func assertMatchesReference(_ values: [Float], type: FourBitQuantType, blockSize: Int = 64,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let ref = try reference(values, type: type, blockSize: blockSize)
        let t = Tensor(shape: [values.count], scalars: values)
        let plain = FourBitTensor(quantizing: t, type: type, blockSize: blockSize, doubleQuantize: false)
        let dq = FourBitTensor(quantizing: t, type: type, blockSize: blockSize)
        let what = "\(type) n=\(values.count)"
        XCTAssertEqual(plain.packed, ref.packed, "\(what): packed codes", file: file, line: line)
        XCTAssertEqual(plain.blockAbsmax().map(\.bitPattern), ref.absmax.map(\.bitPattern), "\(what): absmax", file: file, line: line)
        guard case .doubleQuantized(let d) = dq.absmax else { return XCTFail("double quantization expected", file: file, line: line) }
        XCTAssertEqual(d.offset.bitPattern, ref.offset.bitPattern, "\(what): offset", file: file, line: line)
        XCTAssertEqual(d.codes, ref.qabsmax, "\(what): 8-bit absmax codes", file: file, line: line)
        XCTAssertEqual(d.secondLevelAbsmax.map(\.bitPattern), ref.absmax2.map(\.bitPattern), "\(what): second-level absmax", file: file, line: line)
        XCTAssertEqual(dq.dequantized().scalars.map(\.bitPattern), ref.dequant.map(\.bitPattern), "\(what): dequantized", file: file, line: line)
    }

    func testNF4MatchesTheNumpyReferenceBitForBitIncludingOddSizes() throws {
        // Sizes around a byte, a block, and several 256-block groups of absmaxes.
        for (k, n) in [1, 2, 63, 64, 65, 127, 1000, 4097, 64 * 256 + 1, 64 * 600 + 33].enumerated() {
            try assertMatchesReference(weights(n, seed: UInt64(10 + k), zeroBlock: k == 6), type: .nf4)
        }
    }

    func testFP4MatchesTheNumpyReferenceBitForBit() throws {
        for (k, n) in [3, 64, 1001, 64 * 300 + 7].enumerated() {
            try assertMatchesReference(weights(n, seed: UInt64(30 + k), zeroBlock: k == 2), type: .fp4)
        }
    }

    func testOtherBlockSizesMatchTheReference() throws {
        try assertMatchesReference(weights(5000, seed: 40), type: .nf4, blockSize: 32)
        try assertMatchesReference(weights(5000, seed: 41), type: .nf4, blockSize: 256)
    }

    func testDynamicMapMatchesTheReferenceBitForBit() throws {
        let ref = try reference([1, 2], type: .nf4)
        XCTAssertEqual(DynamicQuantizationMap.signed8Bit.map(\.bitPattern), ref.code8.map(\.bitPattern))
    }
}
