import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest

/// Damaged models end in one-line errors naming the tensor or file, never in a trap or a
/// silent "ppl nan" (issue 12, part 0): a NaN weight, a norm stored as integers, a tokenizer
/// whose ids run past the embedding, and a NaN sampling temperature.
final class HostileModelTests: XCTestCase {
    var dir: URL!
    var model: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = dir.appendingPathComponent("tiny")
        let r = try QdistProcess.run(["tiny-model", model.path, "--layers", "1", "--hidden", "32", "--heads", "2",
                                      "--kv-heads", "1", "--intermediate", "64", "--seed", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    /// A copy of the tiny model with `change` applied to its tensors (and config).
    func damaged(_ name: String, tensors change: (inout [String: StoredTensor]) throws -> Void,
                 config: ((inout ModelConfiguration) -> Void)? = nil) throws -> URL {
        let out = dir.appendingPathComponent(name)
        try FileManager.default.copyItem(at: model, to: out)
        let folder = try CheckpointFolder(url: model)
        var tensors: [String: StoredTensor] = [:]
        for n in folder.tensorNames { tensors[n] = try folder.storedTensor(n) }
        try change(&tensors)
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: out.appendingPathComponent("model.safetensors"))
        if let config {
            var c = try ModelConfiguration.load(from: model)
            config(&c)
            try c.write(to: out.appendingPathComponent("config.json"))
        }
        return out
    }

    func assertOneLineFailure(_ args: [String], mentions parts: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try QdistProcess.run(args)
        XCTAssertNotEqual(r.status, 0, "\(args): \(r.stdout)", file: file, line: line)
        XCTAssertFalse([132, 133, 134, 139].contains(r.status), "a trap, not an error: \(r.stderr)", file: file, line: line)
        let message = r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(message.contains("\n"), "one line: \(message)", file: file, line: line)
        for p in parts { XCTAssertTrue(message.contains(p), "\(message) should mention \(p)", file: file, line: line) }
    }

    func testANaNWeightIsNamedByEvalAndQuantizeInsteadOfNaNPerplexityOrATrap() throws {
        let name = "model.layers.0.mlp.up_proj.weight"
        let bad = try damaged("nan") { t in
            var w = t[name]!
            w.bytes.replaceSubrange(8..<12, with: withUnsafeBytes(of: Float.nan.bitPattern.littleEndian, Array.init))
            t[name] = StoredTensor(dtype: w.dtype, shape: w.shape, bytes: w.bytes)
        }
        try assertOneLineFailure(["eval", "--model", bad.path, "--data", QdistProcess.wikitext("test").path, "--windows", "1", "--seq-len", "16"],
                                 mentions: [name, "non-finite"])
        let recipe = dir.appendingPathComponent("rtn.yaml")
        try Data("recipe: {QuantizationModifier: {scheme: W8A16}}\n".utf8).write(to: recipe)
        try assertOneLineFailure(["quantize", "--config", recipe.path, "--model", bad.path, "--output", dir.appendingPathComponent("q").path],
                                 mentions: [name, "non-finite"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("q").path))
    }

    func testANormStoredAsIntegersIsRefused() throws {
        let name = "model.layers.0.input_layernorm.weight"
        let bad = try damaged("i32") { t in
            let n = t[name]!.shape.reduce(1, *)
            t[name] = StoredTensor(dtype: .i32, shape: [n], bytes: [UInt8](repeating: 1, count: 4 * n))
        }
        try assertOneLineFailure(["eval", "--model", bad.path, "--data", QdistProcess.wikitext("test").path, "--windows", "1", "--seq-len", "16"],
                                 mentions: [name, "I32"])
    }

    func testTokenIdsPastTheEmbeddingAreRefusedWhenTheModelOpens() throws {
        // Keep the tokenizer, shrink the vocabulary (and the embedding) below its largest id.
        let bad = try damaged("vocab", tensors: { t in
            let e = t["model.embed_tokens.weight"]!
            let width = e.shape[1] * e.dtype.byteSize
            t["model.embed_tokens.weight"] = StoredTensor(dtype: e.dtype, shape: [100, e.shape[1]], bytes: Array(e.bytes.prefix(100 * width)))
            t["lm_head.weight"] = nil
        }, config: { c in c.vocabSize = 100; c.tieWordEmbeddings = true })
        for command in [["eval", "--data", QdistProcess.wikitext("test").path, "--windows", "1", "--seq-len", "16"],
                        ["generate", "--prompt", "Hello", "--max-tokens", "2"]] {
            try assertOneLineFailure([command[0], "--model", bad.path] + Array(command.dropFirst()), mentions: ["tokenizer", "vocab_size is 100"])
        }
    }

    func testANaNTemperatureIsAnArgumentError() throws {
        // An argument error: swift-argument-parser's first line names it, then the usage follows.
        let r = try QdistProcess.run(["generate", "--model", model.path, "--prompt", "Hi", "--temperature", "nan"])
        XCTAssertEqual(r.status, 64, r.stderr)
        XCTAssertTrue(r.stderr.split(separator: "\n").first?.contains("--temperature must be a finite number") == true, r.stderr)
    }

    func testAFIFOIsRefusedNotWaitedOnAndAFolderAsTokenizerIsNamed() throws {
        for name in ["pipe.safetensors", "pipe.gguf"] {
            let fifo = dir.appendingPathComponent(name)
            XCTAssertEqual(mkfifo(fifo.path, 0o644), 0)
            // A hang would hit the process timeout and fail the run, not just this assertion.
            let r = try QdistProcess.run(["inspect", fifo.path], timeout: 20)
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("not a regular file"), r.stderr)
        }
        let folder = dir.appendingPathComponent("tok-folder")
        try FileManager.default.copyItem(at: model, to: folder)
        try FileManager.default.removeItem(at: folder.appendingPathComponent("tokenizer.json"))
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("tokenizer.json"), withIntermediateDirectories: false)
        try assertOneLineFailure(["eval", "--model", folder.path, "--data", QdistProcess.wikitext("test").path, "--windows", "1"],
                                 mentions: ["tokenizer.json", "is a folder, not a file"])
    }
}
