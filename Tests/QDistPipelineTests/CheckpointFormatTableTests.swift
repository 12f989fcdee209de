import Foundation
import QDistIO
import QDistQuant
import QDistTensor
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
        let pruned = try StrictYAML.decode(QuantizeJobConfig.self, from: "recipe: [{SparseGPTModifier: {mask_structure: \"2:4\"}}, {QuantizationModifier: {scheme: W4A16}}]", path: "r.yaml")
        XCTAssertGreaterThanOrEqual(CheckpointFormatTable.rows.count, 4)
        for row in CheckpointFormatTable.rows.compactMap({ $0 as? any FolderFormatRow }) {
            let rowReader = row.reader
            let format = try XCTUnwrap(QuantizeJobConfig.OutputFormat(rawValue: row.name), row.name)
            // Each row with a recipe it holds: integer grids, HQQ's float zero points, LLM.int8.
            // (The legacy sparse row holds pruned models only.)
            let floatZero = row.name == "float-zero", bnb = row.name == "bitsandbytes", sparse = row.name == "compressed-tensors-legacy-sparse"
            let plan = try QuantizationPlan(recipe: (floatZero ? hqq : bnb ? int8 : sparse ? pruned : rtn).recipe, config: config, format: format)
            let scheme = QuantizedLinearScheme(numBits: 4, symmetric: !floatZero, groupSize: 128, actOrder: false, fractionalZeros: floatZero)
            let written = try row.quantizationConfig(schemes: [("model.layers.0.mlp.down_proj", scheme)], plan: plan, scaleType: .f16)
            XCTAssertEqual(written["quant_method"]?.stringValue, rowReader.quantMethod, row.name)
            let registered = try XCTUnwrap(QuantizedFormatReaders.reader(for: rowReader.quantMethod), "\(row.name)'s reader is registered")
            XCTAssertEqual(String(describing: type(of: registered)), String(describing: type(of: rowReader)), row.name)
            // The registered reader accepts what the row writes (no tensors: no linears found).
            let reader = try XCTUnwrap(QuantizedCheckpointReader(quantizationConfig: written, configPath: "config.json",
                                                                 source: InMemoryStoredTensors([:])))
            XCTAssertEqual(reader.modules, [], row.name)
        }
        XCTAssertEqual(Set(CheckpointFormatTable.rows.map(\.name)).count, CheckpointFormatTable.rows.count, "names are unique")
    }

    /// The extension points a sparse layout needs keep every other row's output as it was: a
    /// pruned float linear is stored as `<module>.weight` in the model dtype like any float
    /// tensor, and the config is the row's own (none for a recipe that only prunes), with the
    /// staged folder never opened.
    func testTheDefaultHooksStorePrunedFloatLinearsDenseAndKeepTheConfig() throws {
        let config = ModelConfiguration(hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 1, numAttentionHeads: 4,
                                        numKeyValueHeads: 2, vocabSize: 128)
        let job = try StrictYAML.decode(QuantizeJobConfig.self, from: "recipe: {WandaPruningModifier: {mask_structure: \"2:4\"}}", path: "r.yaml")
        let weight = Tensor(shape: [2, 4], scalars: [0, 1.5, 0, -2, 3, 0, 0, 4])
        struct NotOpened: Error {}
        let folderRows = CheckpointFormatTable.rows.compactMap { $0 as? any FolderFormatRow }
        XCTAssertEqual(Set(folderRows.map(\.name)), Set(CheckpointFormatTable.rows.map(\.name)).subtracting(["gguf"]),
                       "every row but GGUF (one file) writes a safetensors folder")
        for row in folderRows where row.name != "compressed-tensors-legacy-sparse" {
            let plan = try QuantizationPlan(recipe: job.recipe, config: config, format: .compressedTensors)
            XCTAssertEqual(try row.prunedFloatTensors(module: "m", weight: weight, dtype: .bf16, plan: plan), ["m.weight": StoredTensor(weight, as: .bf16)], row.name)
            XCTAssertNil(try row.finalQuantizationConfig(nil, plan: plan, model: config, staged: { throw NotOpened() }), row.name)
            XCTAssertEqual(try row.finalQuantizationConfig(["quant_method": "gptq"], plan: plan, model: config, staged: { throw NotOpened() }),
                           ["quant_method": "gptq"], row.name)
        }
    }
}
