import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest

/// `qdist generate` and `qdist eval` on a 2:4-pruned tiny model: they say how many linears run
/// on the compressed kernel, `--dense` and QDIST_SPARSE_KERNEL=0 turn it off, and greedy
/// generation picks the same tokens either way.
final class SparseKernelCommandTests: XCTestCase {
    var dir: URL!
    var model: URL!
    var pruned: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = try QdistProcess.tinyModel(in: dir, layers: 2, seed: 13)
        pruned = try Self.magnitudePruned24(model, into: dir.appendingPathComponent("pruned"))
    }

    /// A copy of `folder` whose decoder linears keep the two largest |w| of every four inputs
    /// (what Benchmarks/prune_24.py does to SmolLM2).
    static func magnitudePruned24(_ folder: URL, into out: URL) throws -> URL {
        let checkpoint = try CheckpointFolder(url: folder)
        var tensors: [String: StoredTensor] = [:]
        for name in checkpoint.tensorNames {
            let stored = try checkpoint.storedTensor(name)
            guard name.hasPrefix("model.layers."), name.hasSuffix("_proj.weight") else { tensors[name] = stored; continue }
            var s = stored.toTensor().scalars
            for g in 0..<(s.count / 4) {
                let order = (0..<4).sorted { abs(s[4 * g + $0]) > abs(s[4 * g + $1]) }
                for j in order[2...] { s[4 * g + j] = 0 }
            }
            tensors[name] = StoredTensor(Tensor(shape: stored.shape, scalars: s), as: stored.dtype)
        }
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path) where !file.hasSuffix(".safetensors") {
            try FileManager.default.copyItem(at: folder.appendingPathComponent(file), to: out.appendingPathComponent(file))
        }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: out.appendingPathComponent("model.safetensors"))
        return out
    }

    func generate(_ folder: URL, _ extra: [String] = [], environment: [String: String] = [:]) throws -> [String: Any] {
        let r = try QdistProcess.run(["generate", "--model", folder.path, "--prompt", "The cat sat on", "--max-tokens", "24",
                                      "--json"] + extra, environment: environment)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try QdistProcess.jsonObject(r)
    }

    func testGreedyGenerationPicksTheSameTokensWithAndWithoutTheSparseKernel() throws {
        let sparse = try generate(pruned)
        XCTAssertEqual(sparse["sparse_linears"] as? Int, 14, "7 linears × 2 blocks")
        XCTAssertEqual(sparse["sparse_linears_by_kind"] as? [String: Int], ["2:4": 14])
        let tokens = try XCTUnwrap(sparse["tokens"] as? [Int])
        XCTAssertEqual(tokens.count, 24)
        for (label, run) in [("--dense", try generate(pruned, ["--dense"])),
                             ("QDIST_SPARSE_KERNEL=0", try generate(pruned, environment: ["QDIST_SPARSE_KERNEL": "0"]))] {
            XCTAssertEqual(run["sparse_linears"] as? Int, 0, label)
            XCTAssertEqual(run["tokens"] as? [Int], tokens, label)
        }
        XCTAssertEqual(try generate(model)["sparse_linears"] as? Int, 0, "the unpruned model has no 2:4 linear")
    }

    func testEvalCompressesOnlyForWindowsTheKernelServesAndScoresThemAlikeOnBothKernels() throws {
        func eval(_ extra: [String], seqLen: Int = 8) throws -> [String: Any] {
            // 8-token windows: 7 positions per forward, within the 2:4 kernel's limit of 8.
            let r = try QdistProcess.run(["eval", "--model", pruned.path, "--data", QdistProcess.wikitext("test").path,
                                          "--seq-len", String(seqLen), "--windows", "6", "--json"] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try QdistProcess.jsonObject(r)
        }
        let sparse = try eval([]), dense = try eval(["--dense"])
        XCTAssertEqual(sparse["sparse_linears"] as? Int, 14)
        XCTAssertEqual(dense["sparse_linears"] as? Int, 0)
        let a = try XCTUnwrap(sparse["ppl"] as? Double), b = try XCTUnwrap(dense["ppl"] as? Double)
        XCTAssertEqual(a, b, accuracy: 1e-5 * b)
        XCTAssertEqual(try eval([], seqLen: 10)["sparse_linears"] as? Int, 0, "9-token forwards: sgemm, so nothing is compressed")
    }
}
