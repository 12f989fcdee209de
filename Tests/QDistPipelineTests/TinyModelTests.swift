import Foundation
import QDistIO
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// `qdist tiny-model` writes a folder that qdist, Python `tokenizers` and a float64 numpy
/// reference all read the same way.
final class TinyModelTests: XCTestCase {
    func testTinyModelFolderLoadsAndItsTokenizerMatchesPythonTokenizers() throws {
        let dir = try QdistProcess.temporaryDirectory(self).appendingPathComponent("tiny")
        let r = try QdistProcess.run(["tiny-model", dir.path, "--arch", "qwen2", "--layers", "2", "--hidden", "64",
                                      "--heads", "4", "--kv-heads", "2", "--vocab", "400", "--seed", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for file in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(file).path), file)
        }
        let bundle = try ModelBundle.open(dir.path)
        XCTAssertEqual(bundle.config.vocabSize, 400)
        XCTAssertEqual(bundle.tokenizer.vocabularySize, 400, "the trained vocabulary fills the model's")
        let text = "Quantization stores each weight with fewer bits. Perplexity 12.5% in 2024? Ünïcödé ✓ 👍\n\n  end"
        let ours = bundle.tokenizer.encode(text)
        XCTAssertEqual(bundle.tokenizer.decode(ours), text, "byte-level BPE round-trips any text")
        let py = try QdistProcess.runPython("""
            import sys, json
            from tokenizers import Tokenizer
            t = Tokenizer.from_file(sys.argv[1])
            print(json.dumps(t.encode(sys.argv[2], add_special_tokens=False).ids))
            """, arguments: [dir.appendingPathComponent("tokenizer.json").path, text])
        XCTAssertEqual(py.status, 0, py.stderr)
        XCTAssertEqual(try JSONSerialization.jsonObject(with: Data(py.stdout.utf8)) as? [Int], ours)
        XCTAssertLessThan(ours.count, text.utf8.count, "merges were learned")
    }

    func testTinyModelLogitsMatchFloat64Reference() throws {
        let dir = try QdistProcess.temporaryDirectory(self).appendingPathComponent("tiny")
        XCTAssertEqual(try QdistProcess.run(["tiny-model", dir.path, "--seed", "11"]).status, 0)
        let bundle = try ModelBundle.open(dir.path)
        let model = try bundle.loadModel()
        let tokens = bundle.tokenizer.encode("The model is a stack of decoder blocks.")
        let out = dir.appendingPathComponent("ref.f64")
        let script = QdistProcess.repositoryRoot.appendingPathComponent("Tests/Reference/llama_reference.py").path
        let r = try QdistProcess.runProcess(try QdistProcess.python(), [script, dir.path, tokens.map(String.init).joined(separator: ","), out.path],
                                            environment: [:], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        let reference = try Data(contentsOf: out).withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
        let ours = model.logits(tokens)
        XCTAssertEqual(reference.count, ours.count)
        let diff = zip(ours.scalars, reference).map { abs(Double($0) - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(diff, 1e-4)
    }

    func testExistingOutputIsKeptUnlessOverwriteAndBadSizesAreOneLineErrors() throws {
        let dir = try QdistProcess.temporaryDirectory(self).appendingPathComponent("tiny")
        XCTAssertEqual(try QdistProcess.run(["tiny-model", dir.path]).status, 0)
        let again = try QdistProcess.run(["tiny-model", dir.path])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("already exists"), again.stderr)
        XCTAssertEqual(try QdistProcess.run(["tiny-model", dir.path, "--overwrite", "--seed", "2"]).status, 0)
        let bad = try QdistProcess.run(["tiny-model", dir.path + "-bad", "--hidden", "60", "--heads", "8"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path + "-bad"), "no partial output")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.deletingLastPathComponent().path).filter { $0.contains("partial") }
        XCTAssertEqual(leftovers, [], "no staging folders left behind")
    }
}
