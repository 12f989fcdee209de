import Foundation
import QDistIO
import QDistPipeline
import QDistTensor
import QDistTestSupport
import XCTest

/// `qdist convert MODEL OUT.gguf`: the GGUF export of a Hugging Face folder. The reader side
/// (`GGUFCheckpoint`) is checked against gguf-py's files with Python's own Q/K permutation
/// (GGUFCheckpointTests), so a model that comes back bit-identical through it proves the
/// writer's names, permutation direction and layout. The byte-for-byte comparison with
/// llama.cpp's `convert_hf_to_gguf.py` on SmolLM2 needs torch and lives in
/// Benchmarks/gguf_export_vs_llamacpp.sh.
final class GGUFExportTests: XCTestCase {
    private func exportTiny(_ dir: URL, type: String = "F32") throws -> (model: URL, gguf: URL) {
        let model = try QdistProcess.tinyModel(in: dir, layers: 2, seed: 7)
        let gguf = dir.appendingPathComponent("tiny.gguf")
        let r = try QdistProcess.run(["convert", model.path, gguf.path, "--gguf-type", type, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return (model, gguf)
    }

    func testF32ExportLoadsBackAsTheSameWeightsTokenizerAndConfig() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let (model, gguf) = try exportTiny(dir)
        let original = try ModelBundle.open(model.path), exported = try ModelBundle.open(gguf.path)
        XCTAssertEqual(exported.config.hiddenSize, original.config.hiddenSize)
        XCTAssertEqual(exported.config.numKeyValueHeads, original.config.numKeyValueHeads)
        XCTAssertEqual(exported.config.ropeTheta, original.config.ropeTheta)
        XCTAssertEqual(exported.config.tieWordEmbeddings, original.config.tieWordEmbeddings)
        for (name, _) in original.config.tensorShapes {
            let a = try original.weights.tensor(name), b = try exported.weights.tensor(name)
            XCTAssertEqual(a.shape, b.shape, name)
            XCTAssertEqual(a.scalars.map(\.bitPattern), b.scalars.map(\.bitPattern), "\(name) changed through GGUF")
        }
        let text = "The tower is 324 metres (1,063 ft) tall, about the same height as an 81-storey building."
        XCTAssertEqual(exported.tokenizer.encode(text), original.tokenizer.encode(text))
        XCTAssertEqual(exported.tokenizer.bosTokenID, original.tokenizer.bosTokenID)
        XCTAssertEqual(exported.tokenizer.eosTokenID, original.tokenizer.eosTokenID)
    }

    func testExportCarriesConvertHFToGGUFKeysWithTheirTypes() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let (_, gguf) = try exportTiny(dir, type: "F16")
        let file = try GGUFFile(url: gguf)
        let expected: [(String, GGUFValueType)] = [
            ("general.architecture", .string), ("general.type", .string), ("general.name", .string),
            ("llama.block_count", .uint32), ("llama.context_length", .uint32), ("llama.embedding_length", .uint32),
            ("llama.feed_forward_length", .uint32), ("llama.attention.head_count", .uint32),
            ("llama.attention.head_count_kv", .uint32), ("llama.rope.freq_base", .float32),
            ("llama.attention.layer_norm_rms_epsilon", .float32), ("general.file_type", .uint32),
            ("llama.vocab_size", .uint32), ("llama.rope.dimension_count", .uint32),
            ("general.quantization_version", .uint32), ("tokenizer.ggml.model", .string), ("tokenizer.ggml.pre", .string),
            ("tokenizer.ggml.tokens", .array), ("tokenizer.ggml.token_type", .array), ("tokenizer.ggml.merges", .array),
        ]
        let keys = file.metadata.keys
        var last = -1
        for (key, type) in expected {
            guard let i = keys.firstIndex(of: key) else { XCTFail("missing \(key)"); continue }
            XCTAssertEqual(file.metadata[key]?.type, type, key)
            XCTAssertGreaterThan(i, last, "\(key) out of convert_hf_to_gguf's order")
            last = i
        }
        XCTAssertEqual(file.metadata.int("general.file_type"), 1, "F16 is llama_ftype 1")
        XCTAssertEqual(file.metadata.string("tokenizer.ggml.model"), "gpt2")
        XCTAssertEqual(file.metadata.string("tokenizer.ggml.pre"), "gpt-2", "a bare ByteLevel pre-tokenizer is llama.cpp's gpt-2")
        XCTAssertEqual(file.metadata.string("general.quantized_by"), "qdist")
        // F16 export: matrices in F16, 1-D norms stay F32 (as the converter does).
        XCTAssertEqual(try file.info("blk.0.attn_q.weight").type, .f16)
        XCTAssertEqual(try file.info("blk.0.attn_norm.weight").type, .f32)
        XCTAssertEqual(try file.info("token_embd.weight").dims, [64, 512], "ggml dims are innermost first")
    }

    func testSameEvalPerplexityFromFolderAndGGUF() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let (model, gguf) = try exportTiny(dir)
        func ppl(_ path: URL) throws -> Double {
            let r = try QdistProcess.run(["eval", "--model", path.path, "--data", QdistProcess.wikitext("test").path, "--windows", "2", "--seq-len", "128", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(JSONParser.parse(r.stdout)["ppl"]?.doubleValue)
        }
        XCTAssertEqual(try ppl(gguf), try ppl(model))
    }

    func testExportRefusesDestinationsItMustNotWrite() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try QdistProcess.tinyModel(in: dir, layers: 1, seed: 3)
        let foreign = dir.appendingPathComponent("foreign.gguf")
        try Data("not ours".utf8).write(to: foreign)
        try FileManager.default.createDirectory(atPath: model.path + ".gguf", withIntermediateDirectories: false)
        let cases: [(String, [String], String)] = [
            ("a folder", [model.path + ".gguf", "--overwrite"], "is a folder"),
            ("existing without --overwrite", [foreign.path], "pass --overwrite"),
            ("a file qdist did not write", [foreign.path, "--overwrite"], "was not written by qdist"),
            ("unknown type", [dir.appendingPathComponent("x.gguf").path, "--gguf-type", "Q9_Z"], "Q9_Z"),
        ]
        for (what, args, message) in cases {
            let r = try QdistProcess.run(["convert", model.path] + args)
            XCTAssertNotEqual(r.status, 0, what)
            XCTAssertTrue(r.stderr.contains(message), "\(what): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(what): one line: \(r.stderr)")
        }
        XCTAssertEqual(try String(contentsOf: foreign, encoding: .utf8), "not ours")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.gguf").path))
        // qdist's own file is replaced with --overwrite.
        let ours = dir.appendingPathComponent("ours.gguf")
        for _ in 0..<2 {
            let r = try QdistProcess.run(["convert", model.path, ours.path, "--gguf-type", "F32", "--overwrite"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
    }

    /// A Q4_K_M export of a model whose rows are multiples of 256 (so the k-quants apply): the
    /// mix's types are written, qdist reads the file back, quality stays near the float model's,
    /// and an importance matrix is recorded under llama-quantize's keys.
    func testQ4KMExportWithImatrixRunsAndRecordsItsProvenance() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try QdistProcess.tinyModel(in: dir, layers: 2, seed: 4, hidden: 256, intermediate: 512)
        let matrix = dir.appendingPathComponent("m.imatrix.gguf")
        var r = try QdistProcess.run(["imatrix", "--model", model.path, "--data", QdistProcess.wikitext("valid").path,
                                      "--samples", "4", "--seq-len", "128", "--output", matrix.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let gguf = dir.appendingPathComponent("q4km.gguf")
        r = try QdistProcess.run(["convert", model.path, gguf.path, "--gguf-type", "Q4_K_M", "--imatrix", matrix.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let bpw = try XCTUnwrap(JSONParser.parse(r.stdout)["bits_per_weight"]?.doubleValue)
        XCTAssertGreaterThan(bpw, 4.5)
        XCTAssertLessThan(bpw, 7, "Q4_K_M with Q6_K output/embedding on a tiny model")
        let file = try GGUFFile(url: gguf)
        XCTAssertEqual(file.metadata.int("general.file_type"), 15)
        XCTAssertEqual(file.metadata.string("quantize.imatrix.file"), matrix.path)
        XCTAssertEqual(file.metadata.int("quantize.imatrix.entries_count"), 14)
        XCTAssertEqual(file.metadata.int("quantize.imatrix.chunks_count"), 4)
        let planned = try GGUFExport.plannedTensors(ModelBundle.open(model.path).config, path: model.path)
        let expected = try GGUFMix.q4_K_M.tensorTypes(for: planned.map { .init(name: $0.gguf, dims: $0.dims, type: .f32) },
                                                      model: .init(configuration: ModelBundle.open(model.path).config),
                                                      options: .init(hasImportanceMatrix: true))
        // A quantized mix is written in llama-quantize's tensor order: compare by name.
        let written = Dictionary(uniqueKeysWithValues: file.tensorInfos.map { ($0.name, $0.type) })
        for (p, type) in zip(planned, expected) { XCTAssertEqual(written[p.gguf], type, p.gguf) }
        XCTAssertEqual(file.tensorInfos.prefix(3).map(\.name), ["output.weight", "output_norm.weight", "token_embd.weight"], "tensors outside the blocks first, in byte order")
        XCTAssertTrue(file.tensorInfos.contains { $0.type == .q4_K })
        func ppl(_ path: URL) throws -> Double {
            let r = try QdistProcess.run(["eval", "--model", path.path, "--data", QdistProcess.wikitext("test").path, "--windows", "2", "--seq-len", "128", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(JSONParser.parse(r.stdout)["ppl"]?.doubleValue)
        }
        let float = try ppl(model), quantized = try ppl(gguf)
        XCTAssertEqual(quantized / float, 1, accuracy: 0.05, "Q4_K_M ppl \(quantized) vs float \(float)")
        XCTAssertNotEqual(quantized, float, "the weights must actually be quantized")
    }

    /// `eval --llamacpp-activations`: every linear of a Q4_K_M file rounds its input to its
    /// weight's vec_dot type (Q8_K for the k-quants, Q8_0/Q8_1 for the legacy fallbacks), the tied
    /// output head to the embedding's; the perplexity moves a little, and a folder is refused.
    func testLlamaCppActivationsRoundEachLinearInputByItsStoredWeightType() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try QdistProcess.tinyModel(in: dir, layers: 2, seed: 4, hidden: 256, intermediate: 512)
        let gguf = try QdistProcess.ggufExport(of: model, type: "Q4_K_M", in: dir)
        let checkpoint = try GGUFCheckpoint(url: gguf), source = LlamaCppActivationWeights(checkpoint)
        var seen = Set<GGMLActivationRounding>()
        for name in checkpoint.tensorNames where name.hasSuffix("_proj.weight") {
            let module = String(name.dropLast(".weight".count))
            let type = try checkpoint.file.info(XCTUnwrap(checkpoint.ggufName(for: name))).type
            let mode = try XCTUnwrap(source.inputQuantizer(forLinear: module)).mode
            XCTAssertEqual(mode, .ggml(GGMLActivationRounding(weightType: type)), name)
            seen.insert(GGMLActivationRounding(weightType: type))
        }
        XCTAssertTrue(seen.contains(.q8_K), "the k-quant linears must be among those checked: \(seen)")
        let embedding = try checkpoint.file.info("token_embd.weight").type
        let head = try ModelBundle.open(gguf.path).config.tieWordEmbeddings
            ? XCTUnwrap(source.inputQuantizer(forLinear: "lm_head")).mode : nil
        if let head { XCTAssertEqual(head, .ggml(GGMLActivationRounding(weightType: embedding)), "tied head: the embedding's type") }
        XCTAssertNil(try source.inputQuantizer(forLinear: "model.layers.0.mlp.no_such_proj"))
        func eval(_ path: URL, _ extra: [String], ranks: Int? = nil) throws -> (ppl: Double?, result: QdistProcess.Result) {
            let r = try QdistProcess.run(["eval", "--model", path.path, "--data", QdistProcess.wikitext("test").path,
                                          "--windows", "3", "--seq-len", "128", "--json"] + extra, ranks: ranks)
            return (r.status == 0 ? try JSONParser.parse(r.stdout)["ppl"]?.doubleValue : nil, r)
        }
        let plain = try XCTUnwrap(eval(gguf, []).ppl)
        let emulated = try eval(gguf, ["--llamacpp-activations"])
        XCTAssertEqual(emulated.result.status, 0, emulated.result.stderr)
        XCTAssertEqual(try JSONParser.parse(emulated.result.stdout)["llamacpp_activations"]?.boolValue, true)
        let ppl = try XCTUnwrap(emulated.ppl)
        XCTAssertNotEqual(ppl, plain, "8-bit inputs must change the numbers")
        XCTAssertEqual(ppl / plain, 1, accuracy: 0.02, "8-bit inputs move perplexity by well under 2 %: \(ppl) vs \(plain)")
        let twoRanks = try eval(gguf, ["--llamacpp-activations"], ranks: 2)
        XCTAssertEqual(twoRanks.result.status, 0, twoRanks.result.stderr)
        XCTAssertEqual(twoRanks.ppl, ppl, "the rounding is per token: the same perplexity with the windows split over two ranks")
        let r = try eval(model, ["--llamacpp-activations"]).result
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("needs a .gguf model"), r.stderr)
    }
}
