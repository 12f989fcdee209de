import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// `qdist quantize --format gguf`: round-to-nearest gives llama-quantize's bytes (through the
/// staged pipeline, Q/K rows permuted as encoded rows); GPTQ keeps llama.cpp's block scales and
/// changes only codes, gives the same file for any number of ranks and threads, and gguf-py reads
/// it back to the same weights qdist reads.
final class GGUFQuantizeTests: XCTestCase {
    private func recipe(_ dir: URL, _ name: String, modifier: String, extra: String = "") throws -> URL {
        let url = dir.appendingPathComponent(name)
        try """
            format: gguf
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 6, seq_len: 64, seed: 0}
            \(extra)
            recipe:
              \(modifier)
            """.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    private func quantize(_ recipe: URL, _ model: URL, _ out: URL, _ extra: [String], ranks: Int? = nil, threads: Int = 1,
                          file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path] + extra,
                                     ranks: ranks, environment: ["OPENBLAS_NUM_THREADS": String(threads)])
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
    }

    /// Quantizes once in one process, then under each (ranks, threads): the same file, byte for
    /// byte. Returns the one-process file.
    private func assertSameFileForRanksAndThreads(_ recipe: URL, _ model: URL, _ dir: URL, mix: String, _ runs: [(Int, Int)],
                                                  file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let reference = dir.appendingPathComponent("p1.gguf")
        try quantize(recipe, model, reference, ["--gguf-type", mix], file: file, line: line)
        let bytes = try Data(contentsOf: reference)
        for (ranks, threads) in runs {
            let out = dir.appendingPathComponent("p\(ranks)t\(threads).gguf")
            try quantize(recipe, model, out, ["--gguf-type", mix], ranks: ranks, threads: threads, file: file, line: line)
            XCTAssertTrue(try Data(contentsOf: out) == bytes, "\(ranks) ranks × \(threads) threads differ from one process", file: file, line: line)
        }
        return reference
    }

    private func tinyModel(_ dir: URL) throws -> URL {
        try QdistProcess.tinyModel(in: dir, layers: 2, seed: 9, hidden: 256, intermediate: 512)
    }

    func testRoundToNearestIsByteIdenticalToTheExportWithAndWithoutAnImatrix() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try tinyModel(dir)
        let rtn = try recipe(dir, "rtn.yaml", modifier: "QuantizationModifier: {scheme: GGUF}")
        let imatrix = dir.appendingPathComponent("m.imatrix.gguf")
        let made = try QdistProcess.run(["imatrix", "--model", model.path, "--data", QdistProcess.wikitext("valid").path,
                                         "--samples", "3", "--seq-len", "64", "--output", imatrix.path])
        XCTAssertEqual(made.status, 0, made.stderr)
        for (mix, importance) in [("Q4_K_M", "none"), ("Q3_K_M", imatrix.path), ("Q4_0", imatrix.path), ("TQ2_0", "none")] {
            let ours = dir.appendingPathComponent("q-\(mix).gguf"), export = dir.appendingPathComponent("e-\(mix).gguf")
            try quantize(rtn, model, ours, ["--gguf-type", mix, "--imatrix", importance])
            let e = try QdistProcess.run(["convert", model.path, export.path, "--gguf-type", mix] + (importance == "none" ? [] : ["--imatrix", importance]))
            XCTAssertEqual(e.status, 0, e.stderr)
            XCTAssertTrue(try Data(contentsOf: ours) == Data(contentsOf: export), "\(mix) imatrix \(importance)")
        }
    }

    /// With the same imatrix file and `sequential: none`, GPTQ starts from the weights the export
    /// encodes: every block's scale bytes must be the export's, and only codes may differ.
    func testGPTQKeepsLlamaCppsBlockScalesAndChangesOnlyCodes() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try tinyModel(dir)
        let imatrix = dir.appendingPathComponent("m.imatrix.gguf")
        XCTAssertEqual(try QdistProcess.run(["imatrix", "--model", model.path, "--data", QdistProcess.wikitext("valid").path,
                                             "--samples", "3", "--seq-len", "64", "--output", imatrix.path]).status, 0)
        let gptq = try recipe(dir, "gptq.yaml", modifier: "GPTQModifier: {scheme: GGUF}", extra: "sequential: none")
        let ours = dir.appendingPathComponent("gptq.gguf"), export = dir.appendingPathComponent("export.gguf")
        try quantize(gptq, model, ours, ["--gguf-type", "Q3_K_M", "--imatrix", imatrix.path])
        XCTAssertEqual(try QdistProcess.run(["convert", model.path, export.path, "--gguf-type", "Q3_K_M", "--imatrix", imatrix.path]).status, 0)
        let a = try GGUFFile(url: ours), b = try GGUFFile(url: export)
        XCTAssertEqual(a.tensorInfos.map(\.name), b.tensorInfos.map(\.name))
        XCTAssertEqual(a.tensorInfos.map(\.type), b.tensorInfos.map(\.type))
        let bytesA = try Data(contentsOf: ours), bytesB = try Data(contentsOf: export)
        var linears = 0, changedCodes = 0, totalCodes = 0
        for (x, y) in zip(a.tensorInfos, b.tensorInfos) where x.name.hasPrefix("blk.") && x.dims.count == 2 {
            guard let layout = GGMLBlockCodes.layout(x.type), let size = x.type.byteCount(elements: x.elementCount) else { continue }
            var p = [UInt8](bytesA[(a.dataOffset + x.offset)..<(a.dataOffset + x.offset + size)])
            var q = [UInt8](bytesB[(b.dataOffset + y.offset)..<(b.dataOffset + y.offset + size)])
            let n = x.type.traits.blockSize, blocks = size / x.type.traits.typeSize
            p.withUnsafeMutableBytes { pp in
                q.withUnsafeMutableBytes { qq in
                    for blk in 0..<blocks {
                        let u = pp.baseAddress! + blk * x.type.traits.typeSize, v = qq.baseAddress! + blk * x.type.traits.typeSize
                        for e in 0..<n {
                            if GGMLBlockCodes.code(x.type, block: u, element: e) != GGMLBlockCodes.code(x.type, block: v, element: e) { changedCodes += 1 }
                            GGMLBlockCodes.setCode(x.type, block: u, element: e, layout.codeMin)
                            GGMLBlockCodes.setCode(x.type, block: v, element: e, layout.codeMin)
                        }
                        totalCodes += n
                    }
                }
            }
            XCTAssertEqual(p, q, "\(x.name) (\(x.type.traits.name)): scale bytes differ from llama.cpp's encoder")
            linears += 1
        }
        XCTAssertEqual(linears, 14)
        // GPTQ moved a real share of the codes (and not all of them).
        XCTAssertGreaterThan(Double(changedCodes) / Double(totalCodes), 0.05)
        XCTAssertLessThan(Double(changedCodes) / Double(totalCodes), 0.9)
    }

    /// Calibration windows over 1 to 4 ranks and 1 or 2 BLAS threads: the same file, byte for
    /// byte; gguf-py (llama.cpp's own reader) dequantizes every tensor to what qdist reads.
    func testGPTQFileIsTheSameForAnyRankAndThreadCountAndGGUFPyReadsIt() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try tinyModel(dir)
        let gptq = try recipe(dir, "gptq.yaml", modifier: "GPTQModifier: {scheme: GGUF}")
        let reference = try assertSameFileForRanksAndThreads(gptq, model, dir, mix: "Q4_K_M", [(2, 1), (3, 1), (4, 1), (1, 2)])
        let expected = dir.appendingPathComponent("expected.safetensors")
        let script = QdistProcess.repositoryRoot.appendingPathComponent("Tests/Reference/gguf_reference.py").path
        let r = try QdistProcess.runProcess(try QdistProcess.python(), [script, "dequantize", reference.path, expected.path], environment: [:], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        let theirs = try SafetensorsReader(url: expected), file = try GGUFFile(url: reference)
        for info in file.tensorInfos {
            var ours = [Float](repeating: 0, count: info.elementCount)
            try file.dequantize(info, into: &ours)
            XCTAssertEqual(ours, try theirs.tensor(info.name).scalars, info.name)
        }
        XCTAssertEqual(file.metadata.string("general.quantized_by"), "qdist")
    }

    /// AWQ before a GGUF quantizer: the scales are searched on llama.cpp's block types and
    /// folded into the norms, and the file holds the smoothed norms, so each norm-scaled linear
    /// still computes the float model's function (checked on Q8_0, where rounding is small, as
    /// diag(norm)·Wᵀ against the model's own); AWQ + GPTQ on Q4_0 with Hessian importance gives
    /// the same bytes for any rank and thread count.
    func testAWQScalesAreFoldedIntoTheFilesNormsAndTheFileIsTheSameForAnyRank() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try tinyModel(dir)
        let rtn = try recipe(dir, "awq-rtn.yaml", modifier: "- AWQModifier: {duo_scaling: true}\n  - QuantizationModifier: {scheme: GGUF}")
        let q8 = dir.appendingPathComponent("awq-q8.gguf")
        try quantize(rtn, model, q8, ["--gguf-type", "Q8_0"])
        let file = try GGUFFile(url: q8)
        let float = try SafetensorsReader(url: model.appendingPathComponent("model.safetensors"))
        func tensor(_ name: String) throws -> [Float] {
            let info = try XCTUnwrap(file.tensorInfos.first { $0.name == name }, name)
            var out = [Float](repeating: 0, count: info.elementCount)
            try file.dequantize(info, into: &out)
            return out
        }
        for b in 0..<2 {
            let norm = try tensor("blk.\(b).ffn_norm.weight"), gate = try tensor("blk.\(b).ffn_gate.weight")
            let norm0 = try float.tensor("model.layers.\(b).post_attention_layernorm.weight").scalars
            let gate0 = try float.tensor("model.layers.\(b).mlp.gate_proj.weight").scalars
            let n = norm.count
            XCTAssertGreaterThan(zip(norm, norm0).map { abs(Double($0 / $1) - 1) }.max() ?? 0, 0.05, "block \(b): AWQ left the norm as it was")
            var err = 0.0, ref = 0.0
            for i in gate.indices {
                let a = Double(gate[i]) * Double(norm[i % n]), e = Double(gate0[i]) * Double(norm0[i % n])
                err += (a - e) * (a - e); ref += e * e
            }
            XCTAssertLessThan((err / ref).squareRoot(), 0.01, "block \(b): diag(norm)·Wᵀ of the file is not the model's")
        }
        let gptq = try recipe(dir, "awq-gptq.yaml", modifier: "- AWQModifier: {duo_scaling: true}\n  - GPTQModifier: {scheme: GGUF}")
        _ = try assertSameFileForRanksAndThreads(gptq, model, dir, mix: "Q4_0", [(2, 1), (3, 2)])
    }

    func testRefusesRecipesAndPathsItCannotWrite() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try QdistProcess.tinyModel(in: dir, layers: 1, seed: 3)
        let gguf = try recipe(dir, "g.yaml", modifier: "GPTQModifier: {scheme: GGUF}")
        let w4 = try recipe(dir, "w4.yaml", modifier: "GPTQModifier: {scheme: W4A16}")
        let hqq = try recipe(dir, "hqq.yaml", modifier: "HQQModifier: {scheme: GGUF}")
        let clip = try recipe(dir, "clip.yaml", modifier: "- AWQModifier: {apply_clip: true}\n  - GPTQModifier: {scheme: GGUF}")
        let awq = try recipe(dir, "awq.yaml", modifier: "- AWQModifier: {}\n  - GPTQModifier: {scheme: GGUF}")
        let imatrix = dir.appendingPathComponent("tiny.imatrix.gguf")
        XCTAssertEqual(try QdistProcess.run(["imatrix", "--model", model.path, "--data", QdistProcess.wikitext("valid").path,
                                             "--samples", "2", "--seq-len", "32", "--output", imatrix.path]).status, 0)
        let out = dir.appendingPathComponent("o.gguf")
        for (args, needle) in [
            (["--config", gguf.path], "--gguf-type"),
            (["--config", w4.path, "--gguf-type", "Q4_0"], "scheme: GGUF"),
            (["--config", gguf.path, "--format", "compressed-tensors", "--gguf-type", "Q4_0"], "--format gguf"),
            (["--config", gguf.path, "--gguf-type", "Q9_X"], "Q9_X"),
            (["--config", gguf.path, "--gguf-type", "F16"], "float type"),
            (["--config", gguf.path, "--gguf-type", "Q4_0", "--imatrix", dir.appendingPathComponent("missing.gguf").path], "missing.gguf"),
            (["--config", clip.path, "--gguf-type", "Q4_0"], "apply_clip"),
            (["--config", awq.path, "--gguf-type", "Q4_0", "--imatrix", imatrix.path], "imatrix: hessian"),
        ] {
            let r = try QdistProcess.run(["quantize", "--model", model.path, "--output", out.path] + args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains(needle), "\(args): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        }
        let r = try QdistProcess.run(["quantize", "--config", hqq.path, "--model", model.path, "--output", out.path, "--gguf-type", "Q4_0"])
        XCTAssertNotEqual(r.status, 0)
        // A folder path is not a GGUF file.
        let folder = try QdistProcess.run(["quantize", "--config", gguf.path, "--model", model.path, "--output", dir.appendingPathComponent("f").path,
                                           "--gguf-type", "Q4_0"])
        XCTAssertNotEqual(folder.status, 0)
        XCTAssertTrue(folder.stderr.contains(".gguf"), folder.stderr)
    }
}
