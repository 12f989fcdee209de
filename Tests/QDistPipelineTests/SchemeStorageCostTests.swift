import Foundation
import QDistIO
import QDistPipeline
import QDistQuant
import QDistTestSupport
import XCTest

/// A size budget is charged what the writers will store: the predicted bits of every linear
/// equal the bytes of the folder (or GGUF file) qdist then writes, for each kind of scheme.
final class SchemeStorageCostTests: XCTestCase {
    func testCompressedTensorsPredictionEqualsTheWrittenFolderForEachSchemeKind() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try QdistProcess.tinyModel(in: dir, layers: 2, seed: 9, hidden: 256, intermediate: 512)
        let config = try ModelConfiguration.load(from: model.appendingPathComponent("config.json"))
        let linears = config.tensorShapes.filter { $0.name.hasPrefix("model.layers.") && $0.name.hasSuffix("_proj.weight") }
        let cases: [(weights: String, scheme: QuantizedLinearScheme)] = [
            ("{num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 128}", .init(numBits: 4, symmetric: true, groupSize: 128, actOrder: false)),
            ("{num_bits: 3, type: int, symmetric: false, strategy: group, group_size: 64}", .init(numBits: 3, symmetric: false, groupSize: 64, actOrder: false)),
            ("{num_bits: 2, type: int, symmetric: false, strategy: group, group_size: 32}", .init(numBits: 2, symmetric: false, groupSize: 32, actOrder: false)),
            ("{num_bits: 8, type: int, symmetric: true, strategy: channel}", .init(numBits: 8, symmetric: true, groupSize: nil, actOrder: false)),
        ]
        for (i, c) in cases.enumerated() {
            let recipe = dir.appendingPathComponent("r\(i).yaml"), out = dir.appendingPathComponent("q\(i)")
            try Data("recipe:\n  QuantizationModifier:\n    config_groups:\n      group_0:\n        targets: [Linear]\n        weights: \(c.weights)\n".utf8).write(to: recipe)
            let r = try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path])
            XCTAssertEqual(r.status, 0, r.stderr)
            let measured = try XCTUnwrap(QuantizedBitsPerWeight.measure(folder: out.path))
            let predicted = try linears.reduce(0) {
                $0 + (try SchemeStorageCost.compressedTensorsBits(c.scheme, outFeatures: $1.shape[0], inFeatures: $1.shape[1]))
            }
            XCTAssertEqual(measured.bits, predicted, c.weights)
            XCTAssertEqual(measured.linears, linears.count, c.weights)
        }
        XCTAssertThrowsError(try SchemeStorageCost.compressedTensorsBits(.init(numBits: 4, symmetric: true, groupSize: 128, actOrder: true),
                                                                       outFeatures: 8, inFeatures: 256))
    }

    func testGGUFPredictionEqualsEachWrittenTensorOfAMix() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = try QdistProcess.tinyModel(in: dir, layers: 2, seed: 9, hidden: 256, intermediate: 512)
        let gguf = try QdistProcess.ggufExport(of: model, type: "Q4_K_M", in: dir)
        var types = Set<String>()
        for info in try GGUFFile(url: gguf).tensorInfos where info.shape.count == 2 {
            let (out, inF) = (info.shape[0], info.shape[1])
            XCTAssertEqual(try SchemeStorageCost.ggufBits(info.type, outFeatures: out, inFeatures: inF), info.byteCount * 8, info.name)
            types.insert(info.type.traits.name)
        }
        XCTAssertTrue(types.isSuperset(of: ["Q4_K", "Q6_K"]), "the mix's types must be among those checked: \(types)")
        XCTAssertThrowsError(try SchemeStorageCost.ggufBits(.q4_K, outFeatures: 4, inFeatures: 576), "576 is not a multiple of 256")
    }
}
