import Foundation
import QDistIO
import QDistQuant
import QDistTensor
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// `--format compressed-tensors-legacy-sparse` (issue 24, item 4): pruned models in
/// compressed-tensors ≤ 0.14's sparse layouts, read back by qdist exactly as the dense-zeros
/// output of the same recipe — the same weights, so the same NLL to the last digit.
final class CompressedTensorsLegacySparseRowTests: XCTestCase {
    var dir: URL!
    var model: URL!
    let legacy = "compressed-tensors-legacy-sparse"

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = try QdistProcess.tinyModel(in: dir, seed: 5)
    }

    /// Runs `recipe` (modifier lines) into `name`, in `format` (nil: the default).
    @discardableResult
    func quantize(_ recipe: String, _ name: String, format: String? = nil, ranks: Int? = nil) throws -> URL {
        let url = dir.appendingPathComponent("\(name).yaml"), out = dir.appendingPathComponent(name)
        try Data("""
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 8, seq_len: 64, seed: 1}
            recipe:
            \(recipe)
            """.utf8).write(to: url)
        let r = try QdistProcess.run(["quantize", "--config", url.path, "--model", model.path, "--output", out.path]
                                     + (format.map { ["--format", $0] } ?? []), ranks: ranks)
        XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
        return out
    }

    /// `qdist eval`'s "ppl … (mean NLL …)" line.
    func nll(_ folder: URL) throws -> String {
        let r = try QdistProcess.run(["eval", "--model", folder.path, "--data", QdistProcess.wikitext("test").path, "--windows", "2", "--seq-len", "64"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasPrefix("ppl ") }.map(String.init), r.stdout)
    }

    func quantizationConfig(_ folder: URL) throws -> JSONValue {
        try XCTUnwrap(try ModelConfiguration.load(from: folder).quantizationConfig)
    }

    /// Zeros over every tensor of a dense-stored (float) folder.
    func globalSparsity(_ folder: URL) throws -> Double {
        let f = try CheckpointFolder(url: folder)
        var zeros = 0, count = 0
        for name in f.tensorNames {
            let t = try f.tensor(name)
            zeros += t.scalars.filter { $0 == 0 }.count
            count += t.count
        }
        return Double(zeros) / Double(count)
    }

    func testPruneOnlyTwoOfFourWritesSparse24BitmaskThatReadsExactlyAsTheDenseZerosOutput() throws {
        for (name, pruner) in [("sgpt", "  SparseGPTModifier: {mask_structure: \"2:4\", block_size: 32}"),
                               ("wanda", "  WandaPruningModifier: {mask_structure: \"2:4\", ignore: [\"re:.*down_proj\"]}")] {
            let dense = try quantize(pruner, "\(name)-dense"), sparse = try quantize(pruner, "\(name)-legacy", format: legacy)
            let q = try quantizationConfig(sparse)
            XCTAssertEqual(q.objectValue?.map(\.key), ["quant_method", "sparsity_config", "transform_config", "version"], "no config_groups, no format")
            XCTAssertEqual(q["version"], "0.14.0")
            let s = try XCTUnwrap(q["sparsity_config"])
            XCTAssertEqual(s["format"], "sparse-24-bitmask")
            XCTAssertEqual(s["sparsity_structure"], "2:4")
            XCTAssertEqual(s["registry_requires_subclass"], false)
            XCTAssertEqual(s["targets"], ["Linear"])
            let ignored: JSONValue = name == "wanda" ? ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj", "lm_head"] : ["lm_head"]
            XCTAssertEqual(s["ignore"], ignored)
            XCTAssertEqual(s["global_sparsity"]?.doubleValue ?? -1, try globalSparsity(dense), accuracy: 1e-12)

            let stored = try CheckpointFolder(url: sparse)
            let prunedCount = name == "wanda" ? 12 : 14
            XCTAssertEqual(stored.tensorNames.filter { $0.hasSuffix(".bitmask") }.count, prunedCount)
            XCTAssertEqual(try stored.storedTensor("model.layers.0.self_attn.q_proj.compressed").shape, [64, 32])
            XCTAssertFalse(stored.contains("model.layers.0.self_attn.q_proj.weight"))
            XCTAssertEqual(stored.contains("model.layers.0.mlp.down_proj.weight"), name == "wanda", "unpruned linears stay dense")

            XCTAssertEqual(try nll(sparse), try nll(dense), name)
            // convert decompresses it into the very float folder the default format writes.
            let converted = dir.appendingPathComponent("\(name)-converted")
            let c = try QdistProcess.run(["convert", sparse.path, converted.path, "--dtype", "bf16"])
            XCTAssertEqual(c.status, 0, c.stderr)
            XCTAssertEqual(try CheckpointComparison.differingTensors(converted, dense), [], name)

            let inspect = try QdistProcess.run(["inspect", sparse.path, "--sparsity", "--json"])
            XCTAssertEqual(inspect.status, 0, inspect.stderr)
            let linears = try XCTUnwrap(try JSONParser.parse(Array(inspect.stdout.utf8))["sparsity"]?["linears"]?.arrayValue)
            XCTAssertEqual(linears.filter { $0["structure"]?.stringValue == "2:4" }.count, prunedCount)
        }
    }

    func testUnstructuredPruningWritesSparseBitmaskWhoseBytesAreNumpysPackbitsOfTheDenseOutput() throws {
        let pruner = "  WandaPruningModifier: {sparsity: 0.5}"
        let dense = try quantize(pruner, "dense"), sparse = try quantize(pruner, "legacy", format: legacy)
        let s = try XCTUnwrap(try quantizationConfig(sparse)["sparsity_config"])
        XCTAssertEqual(s["format"], "sparse-bitmask")
        XCTAssertEqual(s["sparsity_structure"], "0:0", "the recipe's mask_structure, default included")
        XCTAssertEqual(try nll(sparse), try nll(dense))
        // compressed-tensors' bitmask_compress in numpy, on the dense output's raw bf16 bits.
        let script = #"""
        import json, struct, sys
        import numpy as np
        def load(path):
            with open(path, "rb") as f:
                n = struct.unpack("<Q", f.read(8))[0]
                header = json.loads(f.read(n))
                data = f.read()
            types = {"BF16": np.uint16, "U8": np.uint8, "I64": np.int64}
            return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype=types[v["dtype"]]).reshape(v["shape"])
                    for k, v in header.items() if k != "__metadata__" and v["dtype"] in types}
        dense, sparse = load(sys.argv[1]), load(sys.argv[2])
        checked = 0
        for name in [k[:-len(".bitmask")] for k in sparse if k.endswith(".bitmask")]:
            w = dense[name + ".weight"]
            mask = (w & 0x7FFF) != 0                       # W != 0, with -0.0 a zero
            counts = mask.sum(axis=-1)
            expected = {"compressed": w[mask], "bitmask": np.packbits(mask, axis=-1, bitorder="little"),
                        "shape": np.array(w.shape, dtype=np.int64), "row_offsets": np.cumsum(counts) - counts}
            for part, value in expected.items():
                got = sparse[name + "." + part]
                assert got.shape == value.shape and got.tobytes() == value.astype(got.dtype).tobytes(), (name, part)
            checked += 1
        print(checked)
        """#
        let r = try QdistProcess.runPython(script, arguments: [dense.appendingPathComponent("model.safetensors").path,
                                                               sparse.appendingPathComponent("model.safetensors").path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "14")
    }

    func testW8A8TwoOfFourCompressesTheInt8WeightsAndWeightOnlyQuantizationKeepsItsTensorsUnderADenseSparsityConfig() throws {
        let sgpt = "  - SparseGPTModifier: {mask_structure: \"2:4\", block_size: 32}\n"
        let w8a8 = sgpt + "  - GPTQModifier: {targets: [Linear], ignore: [lm_head], scheme: W8A8}"
        let dense = try quantize(w8a8, "w8a8-dense"), sparse = try quantize(w8a8, "w8a8-legacy", format: legacy)
        let q = try quantizationConfig(sparse)
        XCTAssertEqual(q["format"], "int-quantized")
        XCTAssertEqual(q["sparsity_config"]?["format"], "sparse-24-bitmask")
        XCTAssertEqual(q["config_groups"], try quantizationConfig(dense)["config_groups"])
        let stored = try CheckpointFolder(url: sparse)
        XCTAssertEqual(try stored.storedTensor("model.layers.1.mlp.down_proj.compressed").dtype, .i8)
        XCTAssertEqual(try stored.storedTensor("model.layers.1.mlp.down_proj.compressed").shape, [64, 64])
        XCTAssertTrue(stored.contains("model.layers.1.mlp.down_proj.weight_scale"))
        XCTAssertEqual(try nll(sparse), try nll(dense))
        XCTAssertEqual(try CheckpointComparison.differingTensors(sparse, try quantize(w8a8, "w8a8-legacy-2", format: legacy, ranks: 2)), [],
                       "the same bytes on two ranks")

        let w4 = sgpt + "  - GPTQModifier: {config_groups: {g: {targets: [Linear], weights: {num_bits: 4, symmetric: true, strategy: group, group_size: 32}}}}"
        let w4Dense = try quantize(w4, "w4-dense"), w4Sparse = try quantize(w4, "w4-legacy", format: legacy)
        XCTAssertEqual(try CheckpointComparison.differingTensors(w4Sparse, w4Dense), [], "pack-quantized has no weight to compress")
        let s = try XCTUnwrap(try quantizationConfig(w4Sparse)["sparsity_config"])
        XCTAssertEqual(s["format"], "dense")
        XCTAssertEqual(s["sparsity_structure"], "2:4")
        XCTAssertEqual(try quantizationConfig(w4Sparse)["format"], "pack-quantized")
    }

    func testWhatTheFormatCannotHoldIsRefusedInOneLineBeforeAnyWork() throws {
        let config = try ModelConfiguration.load(from: model)
        let format = try XCTUnwrap(QuantizeJobConfig.OutputFormat(rawValue: legacy))
        for (recipe, message) in [
            ("{QuantizationModifier: {scheme: W8A8}}", "the recipe prunes nothing"),
            ("{WandaPruningModifier: {mask_structure: \"4:8\"}}", "\"4:8\" is not a compressed-tensors sparsity structure"),
            ("[{SparseGPTModifier: {mask_structure: \"2:4\"}}, {QuantizationModifier: {config_groups: {g: {targets: [Linear], weights: {num_bits: 8, symmetric: false, strategy: channel}, input_activations: {num_bits: 8, strategy: token, dynamic: true}}}}}]",
             "asymmetric int8 weights"),
        ] {
            let job = try StrictYAML.decode(QuantizeJobConfig.self, from: "recipe: \(recipe)", path: "r.yaml")
            XCTAssertThrowsError(try QuantizationPlan(recipe: job.recipe, config: config, format: format), recipe) {
                XCTAssertTrue("\($0)".contains(message), "\(recipe): \($0)")
                XCTAssertFalse("\($0)".contains("\n"))
            }
        }
        let help = try QdistProcess.run(["quantize", "--help"])
        XCTAssertTrue(help.stdout.replacingOccurrences(of: "\n", with: " ").contains(legacy), "--help lists the row")
    }

    /// Rewrites `folder`'s model.safetensors with `edit` applied to its tensors.
    func damage(_ folder: URL, _ edit: (inout [String: StoredTensor]) -> Void) throws {
        let file = folder.appendingPathComponent("model.safetensors")
        let reader = try SafetensorsReader(url: file)
        var tensors: [String: StoredTensor] = [:]
        for name in reader.tensorNames { tensors[name] = try reader.storedTensor(name) }
        edit(&tensors)
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: file)
    }

    func testDamagedLegacyFoldersFailInOneLineNamingTheFileAndTensor() throws {
        let written = try quantize("  WandaPruningModifier: {mask_structure: \"2:4\"}", "legacy", format: legacy)
        let file = written.appendingPathComponent("model.safetensors").path
        let m = "model.layers.1.mlp.up_proj"
        for (name, message, edit) in [
            ("popcount", "inputs 0…3 keep 4 values", { (t: inout [String: StoredTensor]) in t["\(m).bitmask"]!.bytes[0] |= 0x0F }),
            ("shape", "expected U8 [128, 8]", { (t: inout [String: StoredTensor]) in
                t["\(m).bitmask"] = StoredTensor(dtype: .u8, shape: [64, 16], bytes: t["\(m).bitmask"]!.bytes)
            }),
        ] as [(String, String, (inout [String: StoredTensor]) -> Void)] {
            let copy = dir.appendingPathComponent("damaged-\(name)")
            try FileManager.default.copyItem(at: written, to: copy)
            try damage(copy, edit)
            let r = try QdistProcess.run(["eval", "--model", copy.path, "--data", QdistProcess.wikitext("test").path, "--windows", "1", "--seq-len", "64"])
            XCTAssertNotEqual(r.status, 0, name)
            let lines = r.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains(file.replacingOccurrences(of: written.path, with: copy.path)), r.stderr)
            XCTAssertTrue(r.stderr.contains("tensor \"\(m).bitmask\""), r.stderr)
            XCTAssertTrue(r.stderr.contains(message), r.stderr)
        }
    }
}
