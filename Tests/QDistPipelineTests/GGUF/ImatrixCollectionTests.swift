import Foundation
import QDistComm
import QDistIO
import QDistPipeline
import QDistTensor
import QDistTestSupport
import XCTest

/// `qdist imatrix`: llama-imatrix's statistics, computed by P ranks.
final class ImatrixCollectionTests: XCTestCase {
    private func run(_ model: URL, _ out: URL, ranks: Int? = nil, threads: Int = 2) throws {
        let r = try QdistProcess.run(["imatrix", "--model", model.path, "--data", QdistProcess.wikitext("valid").path,
                                      "--samples", "5", "--seq-len", "96", "--output", out.path, "--json"],
                                     ranks: ranks, environment: ["OPENBLAS_NUM_THREADS": String(threads)])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    /// Block 0's q/k/v read RMSNorm(embedding) · w: Σx² recomputed in Float64 from the stored
    /// weights and the same windows, independently of the decoder's forward.
    func testFirstBlockSumsMatchAFloat64Recomputation() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try QdistProcess.tinyModel(in: dir, layers: 2, seed: 11)
        let out = dir.appendingPathComponent("m.imatrix.gguf")
        try run(model, out)
        let m = try GGUFImatrix(contentsOf: out)
        XCTAssertEqual(m.entries.count, 14)
        XCTAssertEqual(m.chunkCount, 5)
        XCTAssertEqual(m.chunkSize, 96)
        XCTAssertEqual(m.datasets, [QdistProcess.wikitext("valid").path])

        let bundle = try ModelBundle.open(model.path)
        let calibration = try CalibrationSet.load(path: QdistProcess.wikitext("valid").path, samples: 5, seqLen: 96, seed: 0,
                                                  tokenizer: bundle.tokenizer, communicator: SingleProcessCommunicator())
        let embed = try bundle.weights.tensor("model.embed_tokens.weight").scalars
        let norm = try bundle.weights.tensor("model.layers.0.input_layernorm.weight").scalars
        let h = bundle.config.hiddenSize, eps = bundle.config.rmsNormEps
        var expected = [Double](repeating: 0, count: h)
        for window in calibration.windows {
            for id in window {
                let row = (0..<h).map { Double(embed[id * h + $0]) }
                let scale = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(h) + eps).squareRoot()
                for j in 0..<h { let v = row[j] * scale * Double(norm[j]); expected[j] += v * v }
            }
        }
        for stem in ["attn_q", "attn_k", "attn_v"] {
            let e = try XCTUnwrap(m.entries["blk.0.\(stem).weight"])
            XCTAssertEqual(e.counts, [5 * 96])
            for j in 0..<h {
                XCTAssertEqual(Double(e.sums[j]), expected[j], accuracy: 1e-4 * expected[j], "\(stem) column \(j)")
            }
        }
        // The other groups see other inputs (sizes differ for down).
        XCTAssertEqual(m.entries["blk.1.ffn_down.weight"]?.sums.count, bundle.config.intermediateSize)
        XCTAssertNotEqual(m.entries["blk.0.attn_output.weight"]?.sums, m.entries["blk.0.attn_q.weight"]?.sums)
    }

    /// Windows split across 1, 2 or 3 ranks and 1 or 2 BLAS threads: the same file, byte for byte.
    func testFileIsTheSameBytesForAnyRankAndThreadCount() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try QdistProcess.tinyModel(in: dir, layers: 2, seed: 5, hidden: 256, intermediate: 512)
        let reference = dir.appendingPathComponent("p1.gguf")
        try run(model, reference, threads: 1)
        let bytes = try Data(contentsOf: reference)
        for (ranks, threads) in [(2, 1), (3, 1), (1, 2)] {
            let out = dir.appendingPathComponent("p\(ranks)t\(threads).gguf")
            try run(model, out, ranks: ranks, threads: threads)
            XCTAssertTrue(try Data(contentsOf: out) == bytes, "\(ranks) ranks × \(threads) threads differ from one process")
        }
    }

    func testRefusesToReplaceAFileThatIsNotAnImatrix() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try QdistProcess.tinyModel(in: dir, layers: 1, seed: 2)
        let other = dir.appendingPathComponent("notes.gguf")
        try Data("keep".utf8).write(to: other)
        for extra in [[], ["--overwrite"]] {
            let r = try QdistProcess.run(["imatrix", "--model", model.path, "--data", QdistProcess.wikitext("valid").path,
                                          "--samples", "1", "--seq-len", "32", "--output", other.path] + extra)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains(other.path), r.stderr)
        }
        XCTAssertEqual(try String(contentsOf: other, encoding: .utf8), "keep")
    }
}
