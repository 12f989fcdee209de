import Foundation
import QDistIO
import QDistQuant
import XCTest
@testable import QDistPipeline

/// The format table is the one extension point for outputs: every row's config names the
/// reader that loads it back, and that reader is the one QuantizedCheckpointReader dispatches to.
final class CheckpointFormatTableTests: XCTestCase {
    func testEveryRowsConfigIsAnsweredByItsOwnRegisteredReader() throws {
        let config = ModelConfiguration(hiddenSize: 256, intermediateSize: 512, numHiddenLayers: 1, numAttentionHeads: 4,
                                        numKeyValueHeads: 2, vocabSize: 512)
        let rtn = try StrictYAML.decode(QuantizeJobConfig.self, from: "recipe: {QuantizationModifier: {scheme: W4A16}}", path: "r.yaml")
        let hqq = try StrictYAML.decode(QuantizeJobConfig.self, from: "recipe: {HQQModifier: {group_size: 128}}", path: "r.yaml")
        let int8 = try StrictYAML.decode(QuantizeJobConfig.self, from: "recipe: {QuantizationModifier: {scheme: LLM_INT8}}", path: "r.yaml")
        XCTAssertGreaterThanOrEqual(CheckpointFormatTable.rows.count, 4)
        for row in CheckpointFormatTable.rows {
            let format = try XCTUnwrap(QuantizeJobConfig.OutputFormat(rawValue: row.name), row.name)
            // Each row with a recipe it holds: integer grids, HQQ's float zero points, LLM.int8.
            let floatZero = row.name == "float-zero", bnb = row.name == "bitsandbytes"
            let plan = try QuantizationPlan(recipe: (floatZero ? hqq : bnb ? int8 : rtn).recipe, config: config, format: format)
            let scheme = QuantizedLinearScheme(numBits: 4, symmetric: !floatZero, groupSize: 128, actOrder: false, fractionalZeros: floatZero)
            let written = try row.quantizationConfig(schemes: [("model.layers.0.mlp.down_proj", scheme)], plan: plan, scaleType: .f16)
            XCTAssertEqual(written["quant_method"]?.stringValue, row.reader.quantMethod, row.name)
            let registered = try XCTUnwrap(QuantizedFormatReaders.reader(for: row.reader.quantMethod), "\(row.name)'s reader is registered")
            XCTAssertEqual(String(describing: type(of: registered)), String(describing: type(of: row.reader)), row.name)
            // The registered reader accepts what the row writes (no tensors: no linears found).
            let reader = try XCTUnwrap(QuantizedCheckpointReader(quantizationConfig: written, configPath: "config.json",
                                                                 source: InMemoryStoredTensors([:])))
            XCTAssertEqual(reader.modules, [], row.name)
        }
        XCTAssertEqual(Set(CheckpointFormatTable.rows.map(\.name)).count, CheckpointFormatTable.rows.count, "names are unique")
    }
}
