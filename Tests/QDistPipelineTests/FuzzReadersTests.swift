import Foundation
import QDistTestSupport
import XCTest

/// Every reader of untrusted files survives a few thousand seeded, structure-aware mutations of
/// a valid input (issue 12, part 1): each one ends in a thrown error or a valid result — no trap
/// (the driver runs in its own process, so a trap is seen here with the input that caused it),
/// no hang (a time limit per reader). `Benchmarks/fuzz.sh N` runs long campaigns; a crash it
/// finds becomes a regression case here.
final class FuzzReadersTests: XCTestCase {
    static let inputsPerReader = 2_000

    var dir: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
    }

    /// Runs the driver; fails naming the reader, seed and input index if it does not finish cleanly.
    func fuzz(_ reader: String, _ seedPath: URL, seed: UInt64 = 1, file: StaticString = #filePath, line: UInt = #line) throws {
        let driver = try QdistProcess.binary.deletingLastPathComponent().appendingPathComponent("QDistFuzz").path
        let progress = dir.appendingPathComponent("progress-\(reader)").path
        let r = try QdistProcess.runProcess(driver, [reader, seedPath.path, String(Self.inputsPerReader), String(seed), progress],
                                            environment: [:], timeout: 240)
        let reached = (try? String(contentsOfFile: progress, encoding: .utf8)) ?? "?"
        XCTAssertEqual(r.status, 0, "\(reader): the driver died (status \(r.status)) near input \(reached) of seed \(seed): \(r.stderr.suffix(1500))",
                       file: file, line: line)
        let summary = try QdistProcess.jsonObject(r, file: file, line: line)
        XCTAssertEqual(summary["inputs"] as? Int, Self.inputsPerReader, file: file, line: line)
        XCTAssertGreaterThan(summary["errors"] as? Int ?? 0, 0, "\(reader): mutations must reach the error paths", file: file, line: line)
        // Inputs are at most a few MB: no input may make a reader allocate far beyond that.
        let fileBytes = (try? FileManager.default.attributesOfItem(atPath: seedPath.path)[.size] as? Int) ?? 1 << 20
        XCTAssertLessThan(summary["peak_rss_bytes"] as? Int ?? .max, 400 << 20 + 64 * fileBytes,
                          "\(reader): peak memory \(summary["peak_rss_bytes"] ?? "?") bytes", file: file, line: line)
    }

    func testModelFileReadersSurviveMutatedInputs() throws {
        let model = dir.appendingPathComponent("tiny")
        XCTAssertEqual(try QdistProcess.run(["tiny-model", model.path, "--layers", "1", "--hidden", "32", "--heads", "2",
                                             "--kv-heads", "1", "--intermediate", "64"]).status, 0)
        try fuzz("safetensors", model.appendingPathComponent("model.safetensors"))
        try fuzz("tokenizer", model.appendingPathComponent("tokenizer.json"))
        let gguf = dir.appendingPathComponent("gguf")
        try FileManager.default.createDirectory(at: gguf, withIntermediateDirectories: true)
        let script = QdistProcess.repositoryRoot.appendingPathComponent("Tests/Reference/gguf_reference.py").path
        let made = try QdistProcess.runProcess(try QdistProcess.python(), [script, "model", gguf.path, "llama"], environment: [:], timeout: 120)
        XCTAssertEqual(made.status, 0, made.stderr)
        try fuzz("gguf", gguf.appendingPathComponent("model.gguf"))
    }

    func testConfigAdapterAndQuantizedCheckpointReadersSurviveMutatedInputs() throws {
        let root = QdistProcess.repositoryRoot
        try fuzz("recipe", root.appendingPathComponent("Configs/quantize/smollm2-gptq-w4a16-asym.yaml"))
        try fuzz("finetune", root.appendingPathComponent("Configs/finetune/smollm2-qlora.yaml"))
        let model = dir.appendingPathComponent("tiny")
        XCTAssertEqual(try QdistProcess.run(["tiny-model", model.path, "--layers", "1", "--hidden", "32", "--heads", "2",
                                             "--kv-heads", "1", "--intermediate", "64"]).status, 0)
        let adapter = dir.appendingPathComponent("adapter")
        XCTAssertEqual(try QdistProcess.run(["random-adapter", "--model", model.path, "--output", adapter.path, "--rank", "2"]).status, 0)
        try FileManager.default.createDirectory(at: adapter.appendingPathComponent("base"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: model.appendingPathComponent("config.json"), to: adapter.appendingPathComponent("base/config.json"))
        try fuzz("peft", adapter)
        let recipe = dir.appendingPathComponent("rtn.yaml")
        try Data("recipe: {QuantizationModifier: {config_groups: {g: {targets: [Linear], weights: {num_bits: 4, symmetric: false, strategy: group, group_size: 16}}}}}\n".utf8).write(to: recipe)
        let quantized = dir.appendingPathComponent("q")
        XCTAssertEqual(try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", quantized.path]).status, 0)
        try fuzz("quantized", quantized)
        let gptq = dir.appendingPathComponent("g")
        let symmetric = dir.appendingPathComponent("rtn-sym.yaml")
        try Data("recipe: {QuantizationModifier: {config_groups: {g: {targets: [Linear], weights: {num_bits: 4, strategy: group, group_size: 16}}}}}\n".utf8).write(to: symmetric)
        XCTAssertEqual(try QdistProcess.run(["quantize", "--config", symmetric.path, "--model", model.path, "--output", gptq.path,
                                             "--format", "gptq"]).status, 0)
        try fuzz("quantized", gptq, seed: 2)
    }
}
