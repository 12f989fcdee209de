import Foundation
import QDistComm
import QDistIO
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// Calibration windows: seeded, split across ranks without loss, read from .txt or .jsonl.
final class CalibrationSetTests: XCTestCase {
    func testWindowsAreSeededAndRankSharesPartitionThem() {
        let tokens = Array(0..<1000)
        let a = CalibrationSet.cut(tokens, samples: 10, seqLen: 50, seed: 3)
        XCTAssertEqual(a, CalibrationSet.cut(tokens, samples: 10, seqLen: 50, seed: 3), "same seed, same windows")
        XCTAssertNotEqual(a, CalibrationSet.cut(tokens, samples: 10, seqLen: 50, seed: 4))
        for w in a { XCTAssertEqual(w.count, 50); XCTAssertEqual(w.last! - w.first!, 49, "a contiguous slice") }
        let set = CalibrationSet(windows: a, fileTokens: 1000)
        for p in 1...4 {
            let shares = (0..<p).map { set.share(rank: $0, size: p) }
            XCTAssertEqual(shares.map(\.count).reduce(0, +), 10)
            XCTAssertEqual(Set(shares.flatMap { $0 }), Set(a), "the union over ranks is the whole set at P = \(p)")
        }
    }

    func testPythonRandomSamplerCutsTheWindowsOfPythonsRandintDraw() {
        let tokens = Array(0..<1000)
        let windows = CalibrationSet.cut(tokens, samples: 4, seqLen: 50, seed: 0, sampler: .pythonRandom)
        // random.seed(0); [random.randint(0, 1000 - 50) for _ in range(4)] in CPython.
        XCTAssertEqual(windows.map { $0[0] }, [864, 394, 776, 911])
        XCTAssertEqual(windows.map(\.count), [50, 50, 50, 50])
        XCTAssertNotEqual(windows, CalibrationSet.cut(tokens, samples: 4, seqLen: 50, seed: 0), "the default sampler draws other windows")
    }

    func testJSONLTextFieldsAreJoinedAndAMissingFieldIsNamed() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = dir.appendingPathComponent("tiny")
        XCTAssertEqual(try QdistProcess.run(["tiny-model", model.path]).status, 0)
        let tokenizer = try BPETokenizer(folder: model)
        let jsonl = dir.appendingPathComponent("c.jsonl")
        try Data("{\"text\": \"The model reads text.\"}\n\n{\"text\": \"Quantization stores weights.\"}\n".utf8).write(to: jsonl)
        let set = try CalibrationSet.load(path: jsonl.path, samples: 3, seqLen: 4, seed: 0, tokenizer: tokenizer,
                                          communicator: SingleProcessCommunicator())
        XCTAssertEqual(set.fileTokens, tokenizer.encode("The model reads text.\n\nQuantization stores weights.").count)
        let bad = dir.appendingPathComponent("bad.jsonl")
        try Data("{\"text\": \"ok\"}\n{\"body\": \"no\"}\n".utf8).write(to: bad)
        XCTAssertThrowsError(try CalibrationSet.load(path: bad.path, samples: 1, seqLen: 2, seed: 0, tokenizer: tokenizer,
                                                     communicator: SingleProcessCommunicator())) {
            XCTAssertTrue("\($0)".contains("bad.jsonl") && "\($0)".contains("line 2"), "\($0)")
        }
    }
}
