import Foundation
import QDistIO
import QDistPipeline
import QDistTestSupport
import XCTest

/// `bits_per_weight` of `qdist inspect`: every stored byte of the quantized linears over their
/// weight count, against what the formats' layouts say each weight costs.
final class QuantizedBitsPerWeightTests: XCTestCase {
    private func inspect(_ path: URL) throws -> JSONValue {
        let r = try QdistProcess.run(["inspect", path.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONParser.parse(r.stdout)
    }

    /// compressed-tensors pack-quantized W4 g128, symmetric: 4 bits per code (int32 words of
    /// eight), one fp16 scale per 128 weights, and a two-int64 `weight_shape` per linear.
    func testCompressedTensorsW4G128CountsCodesScalesAndShapeRecords() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try QdistProcess.tinyModel(in: dir, layers: 2, seed: 9, hidden: 256, intermediate: 512)
        let recipe = dir.appendingPathComponent("w4.yaml"), out = dir.appendingPathComponent("w4")
        try Data("recipe: {QuantizationModifier: {scheme: W4A16}}\n".utf8).write(to: recipe)
        let r = try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let config = try ModelConfiguration.load(from: model.appendingPathComponent("config.json"))
        let linears = config.tensorShapes.filter { $0.name.hasPrefix("model.layers.") && $0.name.hasSuffix("_proj.weight") }
        let weights = linears.reduce(0) { $0 + $1.shape[0] * $1.shape[1] }
        let bits = linears.reduce(0) { $0 + $1.shape[0] * $1.shape[1] * 4 + $1.shape[0] * ($1.shape[1] / 128) * 16 + 2 * 64 }
        let report = try inspect(out)
        XCTAssertEqual(report["quantized_linears"]?.intValue, linears.count)
        XCTAssertEqual(report["quantized_linear_weights"]?.intValue, weights)
        XCTAssertEqual(try XCTUnwrap(report["bits_per_weight"]?.doubleValue), Double(bits) / Double(weights), accuracy: 1e-12)
        XCTAssertGreaterThan(try XCTUnwrap(report["bits_per_weight"]?.doubleValue), 4.125, "all-in is above the scheme's nominal 4 + 16/128")
        XCTAssertNil(try inspect(model)["bits_per_weight"], "a float model has no quantized linears")
    }

    /// GGUF: Q8_0 blocks are 34 bytes per 32 weights (8.5 bits), Q4_0 18 per 32 (4.5).
    func testGGUFDecoderLinearsCostTheirBlockTypesSize() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try QdistProcess.tinyModel(in: dir, layers: 2, seed: 9)
        for (type, expected) in [("Q8_0", 8.5), ("Q4_0", 4.5)] {
            let gguf = try QdistProcess.ggufExport(of: model, type: type, in: dir, extra: ["--pure"])
            let report = try inspect(gguf)
            XCTAssertEqual(report["bits_per_weight"]?.doubleValue, expected, type)
            XCTAssertEqual(report["quantized_linears"]?.intValue, 2 * 7, type)
            let table = try QdistProcess.run(["inspect", gguf.path])
            XCTAssertTrue(table.stdout.contains(String(format: "%.4f bits per weight", expected)), table.stdout)
        }
    }
}
