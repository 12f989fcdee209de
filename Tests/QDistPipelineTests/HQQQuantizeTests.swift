import Foundation
import QDistIO
import QDistQuant
import QDistTensor
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// HQQ end to end (issue 14): the `HQQModifier` recipe keys, the float-zero folder `qdist
/// quantize` writes holding exactly what `HQQSolver` computes for each original weight (the
/// solver itself is checked against a float64 port of the hqq library and the library), the
/// formats that cannot hold float zero points refusing the recipe, and one-line errors.
final class HQQQuantizeTests: XCTestCase {
    var dir: URL!
    var model: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = try QdistProcess.tinyModel(in: dir, seed: 7)
    }

    func decode(_ yaml: String) throws -> QuantizeJobConfig {
        try StrictYAML.decode(QuantizeJobConfig.self, from: yaml, path: "r.yaml")
    }

    func testRecipeKeysDefaultToTheLibrarysSettingsAndRejectWhatHQQCannotDo() throws {
        let job = try decode("format: float-zero\nrecipe: {HQQModifier: {}}")
        let hqq = try XCTUnwrap(job.recipe.modifiers.first as? HQQModifier)
        XCTAssertEqual(hqq.settings, HQQSolver.Settings(), "nbits 4, group 64, lp 0.7, beta 10, 20 iterations")
        XCTAssertEqual(job.recipe.modifier!.weightGroups.first?.weights,
                       WeightArgsConfig(numBits: 4, symmetric: false, strategy: .group, groupSize: 64))
        let tuned = try decode("recipe: {HQQModifier: {num_bits: 3, group_size: 32, round_zero: true, lp_norm: 0.5, beta: 5, iters: 7}}")
        let t = try XCTUnwrap(tuned.recipe.modifiers.first as? HQQModifier)
        XCTAssertEqual(t.settings, HQQSolver.Settings(nbits: 4, groupSize: 64, roundZero: true, lpNorm: 0.5, beta: 5, iterations: 7))
        XCTAssertEqual(tuned.recipe.modifier!.weightGroups.first?.weights.numBits, 3)
        for (yaml, key) in [("{num_bits: 4, scheme: W4A16_ASYM}", "num_bits"), ("{scheme: W4A16}", "scheme"),
                            ("{num_bits: 5}", "num_bits"), ("{lp_norm: 1.5}", "lp_norm"), ("{kappa: 1.01}", "kappa")] {
            XCTAssertThrowsError(try decode("recipe: {HQQModifier: \(yaml)}"), yaml) { error in
                XCTAssertTrue("\(error)".contains(key), "\(yaml): \(error)")
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
    }

    func testQuantizeWritesTheSolversCodesScalesAndFloatZerosForEveryLinear() throws {
        let recipe = dir.appendingPathComponent("hqq.yaml"), out = dir.appendingPathComponent("hqq")
        try Data("format: float-zero\nrecipe: {HQQModifier: {num_bits: 3, group_size: 32}}\n".utf8).write(to: recipe)
        let r = try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let config = try JSONParser.parseFile(at: out.appendingPathComponent("config.json"))["quantization_config"]
        XCTAssertEqual(config?["quant_method"], "qdist")
        XCTAssertEqual(config?["format"], "pack-quantized-float-zero")
        let folder = try CheckpointFolder(url: out), original = try CheckpointFolder(url: model)
        let reader = try XCTUnwrap(try QuantizedCheckpointReader.open(folder: folder, config: try ModelConfiguration.load(from: out)))
        XCTAssertEqual(reader.modules.count, 14)
        var fractional = 0
        for module in reader.modules {
            let stored = try reader.linear(module)
            let direct = try HQQSolver.quantize(try original.tensor(module + ".weight"), settings: .init(nbits: 3, groupSize: 32))
            XCTAssertEqual(stored.codes, direct.codes.map(Int32.init), module)
            let zeros = try XCTUnwrap(stored.fractionalZeroPoints, module)
            for (a, b) in zip(zeros, direct.zeros) { XCTAssertEqual(a, b, accuracy: 1e-5, module) }
            // Scales are stored in the model's dtype (bf16 here): equal after that rounding.
            let rounded = StoredTensor(Tensor(shape: [direct.scales.count], scalars: direct.scales), as: .bf16).toTensor().scalars
            XCTAssertEqual(stored.scales, rounded, module)
            fractional += zeros.filter { $0 != $0.rounded() }.count
        }
        XCTAssertGreaterThan(fractional, 100, "HQQ's zero points are off the integer grid")
        let e = try QdistProcess.run(["eval", "--model", out.path, "--data", QdistProcess.wikitext("test").path, "--seq-len", "64",
                                      "--windows", "2", "--json"])
        XCTAssertEqual(e.status, 0, e.stderr)
    }

    /// A run stopped after block 0 and resumed stages the first block's float zero points (HQQ)
    /// and FP8 codes with their per-tensor scales, and ends byte-identical to an uninterrupted run.
    func testAStoppedAndResumedRunWritesTheSameHQQAndFP8Bytes() throws {
        for (name, recipe) in [("hqq", "format: float-zero\nrecipe: {HQQModifier: {num_bits: 4, group_size: 32}}\n"),
                               ("fp8", "calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 4, seq_len: 64}\nrecipe: {QuantizationModifier: {scheme: FP8}}\n")] {
            let url = dir.appendingPathComponent("\(name).yaml")
            try Data(recipe.utf8).write(to: url)
            let whole = dir.appendingPathComponent("\(name)-whole"), resumed = dir.appendingPathComponent("\(name)-resumed")
            XCTAssertEqual(try QdistProcess.run(["quantize", "--config", url.path, "--model", model.path, "--output", whole.path]).status, 0)
            let args = ["quantize", "--config", url.path, "--model", model.path, "--output", resumed.path]
            XCTAssertEqual(try QdistProcess.run(args + ["--stop-after-block", "0"]).status, 3, name)
            let r = try QdistProcess.run(args)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("resuming after block 0"), "\(name): \(r.stdout)")
            XCTAssertEqual(try CheckpointComparison.differingTensors(whole, resumed), [], name)
        }
    }

    /// With no proximal steps and a rounded start (`iters: 0, round_zero: true`) every HQQ zero
    /// point is a whole number; the layers still go to the float-zero format the plan chose.
    func testWholeNumberHQQZeroPointsStillWriteTheFloatZeroFormat() throws {
        let recipe = dir.appendingPathComponent("hqq0.yaml"), out = dir.appendingPathComponent("hqq0")
        try Data("format: float-zero\nrecipe: {HQQModifier: {group_size: 32, iters: 0, round_zero: true}}\n".utf8).write(to: recipe)
        let r = try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let folder = try CheckpointFolder(url: out)
        let reader = try XCTUnwrap(try QuantizedCheckpointReader.open(folder: folder, config: try ModelConfiguration.load(from: out)))
        let zeros = try XCTUnwrap(try reader.linear(reader.modules[0]).fractionalZeroPoints)
        XCTAssertTrue(zeros.allSatisfy { $0 == $0.rounded() }, "round_zero with no steps keeps whole-number zeros")
    }

    /// `integer_zero: true`: the solver's zero points rounded (half to even, clamped to the code
    /// range) and every weight re-quantized on that grid with the solver's scale — restated here
    /// in Float64 — written as compressed-tensors pack-quantized and as GPTQ.
    func testIntegerZeroRoundsTheSolversZerosAndWritesPackQuantizedAndGPTQ() throws {
        let original = try CheckpointFolder(url: model)
        for format in ["compressed-tensors", "gptq"] {
            let recipe = dir.appendingPathComponent("\(format)-int.yaml"), out = dir.appendingPathComponent("\(format)-int")
            try Data("format: \(format)\nrecipe: {HQQModifier: {num_bits: 4, group_size: 32, integer_zero: true}}\n".utf8).write(to: recipe)
            let r = try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path])
            XCTAssertEqual(r.status, 0, r.stderr)
            let reader = try XCTUnwrap(try QuantizedCheckpointReader.open(folder: try CheckpointFolder(url: out), config: try ModelConfiguration.load(from: out)))
            XCTAssertEqual(reader.modules.count, 14)
            var moved = 0
            for module in reader.modules {
                let stored = try reader.linear(module)
                let w = try original.tensor(module + ".weight")
                let direct = try HQQSolver.quantize(w, settings: .init(nbits: 4, groupSize: 32))
                let zeros = direct.zeros.map { Int32(min(max(Double($0).rounded(.toNearestOrEven), 0), 15)) }
                XCTAssertEqual(stored.zeroPoints, zeros, "\(format) \(module)")
                XCTAssertNil(stored.fractionalZeroPoints)
                let want = (0..<w.count).map { j -> Int32 in
                    let g = j / 32
                    return Int32(min(max((Double(w.scalars[j]) / Double(direct.scales[g]) + Double(zeros[g])).rounded(.toNearestOrEven), 0), 15))
                }
                XCTAssertEqual(stored.codes, want, "\(format) \(module)")
                moved += zip(stored.codes, direct.codes).filter { $0 != Int32($1) }.count
            }
            XCTAssertGreaterThan(moved, 0, "rounding the zeros moves some codes")
        }
    }

    func testFormatsWithIntegerZeroPointsRefuseTheRecipeNamingFloatZero() throws {
        for format in ["compressed-tensors", "gptq"] {
            let recipe = dir.appendingPathComponent("\(format).yaml"), out = dir.appendingPathComponent(format)
            try Data("format: \(format)\nrecipe: {HQQModifier: {}}\n".utf8).write(to: recipe)
            let r = try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path])
            XCTAssertEqual(r.status, 1)
            XCTAssertTrue(r.stderr.contains("--format float-zero") && r.stderr.contains("integer_zero: true"), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "no partial output")
        }
        let rtn = dir.appendingPathComponent("rtn.yaml")
        try Data("format: float-zero\nrecipe: {QuantizationModifier: {scheme: W4A16_ASYM}}\n".utf8).write(to: rtn)
        let r = try QdistProcess.run(["quantize", "--config", rtn.path, "--model", model.path, "--output", dir.appendingPathComponent("x").path])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("float-zero format holds HQQ"), r.stderr)
    }
}
