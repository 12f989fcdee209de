import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// `GGUFImatrix` against a file llama.cpp's `llama-imatrix` wrote (Tests/Reference/fixtures/
/// llama-imatrix-tiny.imatrix: `qdist tiny-model` exported to GGUF, 3 chunks of 128 tokens of
/// wikitext-2 valid, llama.cpp as vendored by llama-cpp-python 0.3.36).
final class GGUFImatrixTests: XCTestCase {
    static let fixture = QdistProcess.repositoryRoot.appendingPathComponent("Tests/Reference/fixtures/llama-imatrix-tiny.imatrix")

    func testReadsLlamaImatrixFileAndRewritesItByteIdentically() throws {
        let m = try GGUFImatrix(contentsOf: Self.fixture)
        XCTAssertEqual(m.chunkCount, 3)
        XCTAssertEqual(m.chunkSize, 128)
        XCTAssertEqual(m.entries.count, 14, "7 linears × 2 layers")
        let q = try XCTUnwrap(m.entries["blk.1.attn_q.weight"])
        XCTAssertEqual(q.sums.count, 64)
        XCTAssertEqual(q.counts, [384], "3 chunks × 128 tokens")
        XCTAssertTrue(q.sums.allSatisfy { $0 > 0 && $0.isFinite })
        let dir = try QdistProcess.temporaryDirectory(self)
        let out = dir.appendingPathComponent("rewritten.gguf")
        try m.write(to: out)
        XCTAssertTrue(try Data(contentsOf: out) == Data(contentsOf: Self.fixture), "qdist's rewrite differs from llama-imatrix's bytes")
        XCTAssertEqual(try GGUFImatrix(contentsOf: out), m)
    }

    func testImportanceIsSumsOverCountsInFloat32AsLlamaQuantizeDivides() throws {
        let m = GGUFImatrix(entries: ["a": .init(sums: [3, 1, 0.7], counts: [3]), "z": .init(sums: [5, 6], counts: [0])],
                            datasets: ["d"], chunkCount: 1, chunkSize: 512)
        XCTAssertEqual(m.importance["a"], [Float(3) / 3, Float(1) / 3, Float(0.7) / 3])
        XCTAssertEqual(m.importance["z"], [1, 1], "a zero count gives ones")
        let legacy = GGUFImatrix(entries: ["a": .init(sums: [4, 2], counts: [2])], datasets: [], chunkCount: 0, chunkSize: 0, isLegacy: true)
        XCTAssertEqual(legacy.importance["a"], [2, 1], "legacy sums are divided by the call count")
    }

    func testLegacyDatFileIsRead() throws {
        var bytes: [UInt8] = []
        func i32(_ v: Int32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        i32(1)
        let name = Array("blk.0.ffn_up.weight".utf8)
        i32(Int32(name.count)); bytes += name
        i32(2); i32(3)
        for v: Float in [1.5, 2.5, 3.5] { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        i32(7); i32(4); bytes += Array("wiki".utf8)
        let dir = try QdistProcess.temporaryDirectory(self)
        let url = dir.appendingPathComponent("m.dat")
        try Data(bytes).write(to: url)
        let m = try GGUFImatrix(contentsOf: url)
        XCTAssertTrue(m.isLegacy)
        XCTAssertEqual(m.chunkCount, 7)
        XCTAssertEqual(m.datasets, ["wiki"])
        XCTAssertEqual(m.importance["blk.0.ffn_up.weight"], [0.75, 1.25, 1.75])
        try Data(bytes.prefix(20)).write(to: url)
        XCTAssertThrowsError(try GGUFImatrix(contentsOf: url)) { XCTAssertTrue("\($0)".contains(url.path)) }
    }
}
