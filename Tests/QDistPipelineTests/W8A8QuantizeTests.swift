import Foundation
import QDistIO
import QDistModel
import QDistTensor
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// W8A8 int8 end to end on a tiny model (issue 5): `qdist quantize` writes compressed-tensors
/// int-quantized folders — dynamic per-token activations (the W8A8 preset) and static
/// calibrated scales (minmax, percentile) — that `qdist eval` runs with activation fake-quant
/// close to the float model; static scales are the same under `mpirun -n 2` and after a resume;
/// and the numpy reader reproduces a linear's forward, activation quantization included.
final class W8A8QuantizeTests: XCTestCase {
    var dir: URL!
    var model: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = dir.appendingPathComponent("tiny")
        let r = try QdistProcess.run(["tiny-model", model.path, "--layers", "2", "--hidden", "64", "--heads", "4",
                                      "--kv-heads", "2", "--intermediate", "128", "--seed", "7"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func recipe(_ body: String) throws -> String {
        let url = dir.appendingPathComponent("recipe-\(UUID().uuidString).yaml")
        try Data(body.utf8).write(to: url)
        return url.path
    }

    /// A round-to-nearest recipe with static per-tensor activations calibrated by `observer`.
    func staticRecipe(observer: String, symmetric: Bool = false, sequential: String = "block") throws -> String {
        try recipe("""
            sequential: \(sequential)
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 12, seq_len: 64, seed: 1}
            recipe:
              QuantizationModifier:
                config_groups:
                  g0:
                    targets: [Linear]
                    weights: {num_bits: 8, symmetric: true, strategy: channel}
                    input_activations: {num_bits: 8, symmetric: \(symmetric), strategy: tensor, dynamic: false, observer: \(observer)}
            """)
    }

    func quantize(_ recipe: String, into out: URL, ranks: Int? = nil, extra: [String] = []) throws {
        let r = try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", out.path] + extra, ranks: ranks)
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func ppl(_ folder: URL) throws -> Double {
        let r = try QdistProcess.run(["eval", "--model", folder.path, "--data", QdistProcess.wikitext("test").path,
                                      "--seq-len", "64", "--windows", "12", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(try QdistProcess.jsonObject(r)["ppl"] as? Double)
    }

    func quantizationConfig(_ folder: URL) throws -> [String: Any] {
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("config.json"))) as? [String: Any]
        return try XCTUnwrap(config?["quantization_config"] as? [String: Any])
    }

    /// `<m>.input_scale` of every linear, by module.
    func inputScales(_ folder: URL) throws -> [String: Float] {
        let f = try CheckpointFolder(url: folder)
        var out: [String: Float] = [:]
        for name in f.tensorNames where name.hasSuffix(".input_scale") { out[name] = try f.tensor(name).scalars[0] }
        return out
    }

    func testDynamicW8A8PresetWritesIntQuantizedThatEvalRunsCloseToFloat() throws {
        let out = dir.appendingPathComponent("dyn")
        // --scheme W8A8 over a weight-only recipe: no calibration data needed.
        try quantize(try recipe("recipe: {QuantizationModifier: {scheme: W8A16}}"), into: out, extra: ["--scheme", "W8A8"])
        let q = try quantizationConfig(out)
        XCTAssertEqual(q["format"] as? String, "int-quantized")
        let group = try XCTUnwrap((q["config_groups"] as? [String: Any])?["group_0"] as? [String: Any])
        XCTAssertEqual(group["format"] as? String, "int-quantized")
        let input = try XCTUnwrap(group["input_activations"] as? [String: Any])
        XCTAssertEqual(input["strategy"] as? String, "token")
        XCTAssertEqual(input["dynamic"] as? Bool, true)
        XCTAssertEqual(input["symmetric"] as? Bool, true)
        XCTAssertTrue(input["observer"] is NSNull)
        XCTAssertEqual((group["weights"] as? [String: Any])?["strategy"] as? String, "channel")
        let folder = try CheckpointFolder(url: out)
        let w = try folder.storedTensor("model.layers.1.mlp.down_proj.weight")
        XCTAssertEqual(w.dtype, .i8)
        XCTAssertEqual(w.shape, [64, 128])
        XCTAssertEqual(try folder.storedTensor("model.layers.1.mlp.down_proj.weight_scale").shape, [64, 1])
        XCTAssertFalse(folder.tensorNames.contains { $0.hasSuffix("input_scale") || $0.hasSuffix("zero_point") }, "dynamic symmetric stores no activation parameters")
        let before = try ppl(model), after = try ppl(out)
        XCTAssertLessThan(abs(after - before) / before, 0.02, "W8A8 dynamic keeps ppl within 2% (\(before) → \(after))")
        XCTAssertNotEqual(after, before)
        let inspect = try QdistProcess.run(["inspect", out.path])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
    }

    func testStaticMinmaxAndPercentileCalibrateScalesThatEvalUses() throws {
        let dynamic = dir.appendingPathComponent("dyn"), minmax = dir.appendingPathComponent("minmax")
        let percentile = dir.appendingPathComponent("pct")
        try quantize(try recipe("recipe: {QuantizationModifier: {scheme: W8A8}}"), into: dynamic)
        try quantize(try staticRecipe(observer: "minmax", symmetric: true), into: minmax)
        try quantize(try staticRecipe(observer: "percentile"), into: percentile)
        let minmaxScales = try inputScales(minmax), percentileScales = try inputScales(percentile)
        XCTAssertEqual(minmaxScales.count, 14, "7 linears × 2 blocks")
        XCTAssertEqual(percentileScales.count, 14)
        XCTAssertTrue(minmaxScales.values.allSatisfy { $0 > 0 && $0.isFinite })
        let pctFolder = try CheckpointFolder(url: percentile)
        XCTAssertEqual(try pctFolder.storedTensor("model.layers.0.self_attn.q_proj.input_zero_point").dtype, .i8)
        // q/k/v read the same input, so they share one calibrated scale.
        XCTAssertEqual(minmaxScales["model.layers.0.self_attn.q_proj.input_scale"], minmaxScales["model.layers.0.self_attn.v_proj.input_scale"])
        let input = try XCTUnwrap(((try quantizationConfig(percentile)["config_groups"] as? [String: Any])?["group_0"] as? [String: Any])?["input_activations"] as? [String: Any])
        XCTAssertEqual(input["dynamic"] as? Bool, false)
        XCTAssertEqual(input["observer"] as? String, "percentile")
        XCTAssertEqual(input["strategy"] as? String, "tensor")
        let float = try ppl(model), pDynamic = try ppl(dynamic), pMinmax = try ppl(minmax), pPercentile = try ppl(percentile)
        for (name, p) in [("minmax", pMinmax), ("percentile", pPercentile)] {
            XCTAssertLessThan(abs(p - float) / float, 0.05, "W8A8 static \(name) within 5% of float (\(float) → \(p))")
            XCTAssertNotEqual(p, pDynamic, "static \(name) and dynamic activations differ")
        }
        XCTAssertNotEqual(pMinmax, pPercentile)
    }

    func testTwoRanksCalibrateTheSameStaticScalesAsOne() throws {
        let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
        let recipe = try staticRecipe(observer: "percentile", sequential: "linear")
        try quantize(recipe, into: one)
        try quantize(recipe, into: two, ranks: 2)
        let a = try inputScales(one), b = try inputScales(two)
        XCTAssertEqual(a.count, 14)
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        for (name, scale) in a { XCTAssertEqual(b[name]!, scale, accuracy: scale * 1e-6, name) }
        let fa = try CheckpointFolder(url: one), fb = try CheckpointFolder(url: two)
        for name in fa.tensorNames where name.hasSuffix(".input_zero_point") || name.hasSuffix("mlp.down_proj.weight") {
            XCTAssertEqual(try fa.storedTensor(name).bytes, try fb.storedTensor(name).bytes, name)
        }
        XCTAssertEqual(try ppl(two), try ppl(one), accuracy: try ppl(one) * 1e-6)
    }

    func testResumedStaticJobWritesTheSameOutput() throws {
        let whole = dir.appendingPathComponent("whole"), resumed = dir.appendingPathComponent("resumed")
        let recipe = try staticRecipe(observer: "minmax")
        try quantize(recipe, into: whole)
        let stopped = try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", resumed.path,
                                            "--stop-after-block", "0"])
        XCTAssertEqual(stopped.status, 3, stopped.stderr)
        try quantize(recipe, into: resumed)
        let a = try CheckpointFolder(url: whole), b = try CheckpointFolder(url: resumed)
        XCTAssertEqual(a.tensorNames, b.tensorNames)
        for name in a.tensorNames { XCTAssertEqual(try a.storedTensor(name).bytes, try b.storedTensor(name).bytes, name) }
    }

    func testGPTQFormatCannotCarryActivations() throws {
        let out = dir.appendingPathComponent("never")
        let r = try QdistProcess.run(["quantize", "--config", try recipe("recipe: {QuantizationModifier: {scheme: W8A16}}"),
                                      "--model", model.path, "--output", out.path, "--format", "gptq", "--scheme", "W8A8"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("gptq format cannot carry quantized activations"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }

    /// The numpy reader (written from FORMATS.md) dequantizes every int-quantized linear and
    /// recomputes each one's forward on a random input with its activation fake-quant; both
    /// must match what qdist loads and runs.
    func testNumpyReaderReproducesLinearForwardsWithActivationQuantization() throws {
        let script = QdistProcess.repositoryRoot.appendingPathComponent("Tests/Reference/quantized_reader.py").path
        let variants: [(String, String)] = [
            ("dyn", try recipe("recipe: {QuantizationModifier: {scheme: W8A8}}")),
            ("static-asym", try staticRecipe(observer: "percentile")),
            ("static-sym", try staticRecipe(observer: "minmax", symmetric: true)),
        ]
        for (name, recipe) in variants {
            let out = dir.appendingPathComponent(name)
            try quantize(recipe, into: out)
            let config = try ModelConfiguration.load(from: out)
            let source = try XCTUnwrap(QuantizedWeightSource.open(folder: try CheckpointFolder(url: out), config: config))
            var expected: [String: StoredTensor] = [:]
            var rng = SeededGenerator(state: 17)
            for b in 0..<config.numHiddenLayers {
                let block = try LlamaBlockWeights.load(block: b, from: source, config: config)
                for (suffix, layer) in block.linears {
                    let module = "model.layers.\(b).\(suffix)"
                    XCTAssertNotNil(layer.inputQuantizer, "\(name) \(module) runs with its input quantizer")
                    let x = Tensor(shape: [6, layer.inFeatures], scalars: (0..<(6 * layer.inFeatures)).map { _ in Float.random(in: -3...3, using: &rng) })
                    expected["\(module).weight"] = StoredTensor(layer.weight, as: .f32)
                    expected["\(module).input"] = StoredTensor(x, as: .f32)
                    expected["\(module).output"] = StoredTensor(layer(x), as: .f32)
                }
            }
            let expectedURL = dir.appendingPathComponent("\(name)-expected.safetensors")
            try SafetensorsWriter.write(expected, to: expectedURL)
            let py = try QdistProcess.runProcess(try QdistProcess.python(), [script, out.path, expectedURL.path], environment: [:], timeout: 120)
            XCTAssertEqual(py.status, 0, "\(name): \(py.stderr)")
            let summary = try QdistProcess.jsonObject(py)
            XCTAssertEqual(summary["linears"] as? Int, 14, name)
            XCTAssertEqual(summary["forwards"] as? Int, 14, name)
            XCTAssertEqual(summary["max_abs_diff"] as? Double, 0, "\(name): scale × int8 code is exact")
            // Not vacuous: the forward without activation quantization is caught.
            let module = "model.layers.0.mlp.up_proj"
            let block = try LlamaBlockWeights.load(block: 0, from: source, config: config)
            let plain = LinearLayer(weight: block.up.weight, bias: block.up.bias)
            expected["\(module).output"] = StoredTensor(plain(expected["\(module).input"]!.toTensor()), as: .f32)
            try SafetensorsWriter.write(expected, to: expectedURL)
            let caught = try QdistProcess.runProcess(try QdistProcess.python(), [script, out.path, expectedURL.path], environment: [:], timeout: 120)
            XCTAssertEqual(caught.status, 1, name)
            XCTAssertTrue(caught.stderr.contains("\(module): forward max |numpy − qdist|"), "\(name): \(caught.stderr)")
        }
    }
}
