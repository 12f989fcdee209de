import QDistIO
import QDistTensor
import XCTest
@testable import QDistQuant

/// The `quantization_config` objects the writers produce (key sets copied from
/// compressed-tensors' `update_config` and AutoGPTQ's `quantize_config`), their survival through
/// config.json, and one-line errors for configurations qdist cannot read.
final class QuantizedFormatConfigTests: XCTestCase {
    private func scheme(_ bits: Int, sym: Bool, group: Int?, actOrder: Bool = false) -> [(name: String, scheme: QuantizedLinearScheme)] {
        [(name: "model.layers.0.self_attn.q_proj", scheme: QuantizedLinearScheme(numBits: bits, symmetric: sym, groupSize: group, actOrder: actOrder))]
    }

    func testCompressedTensorsW4A16ConfigIsWhatLlmCompressorWrites() throws {
        let config = try CompressedTensorsFormat.quantizationConfig(schemes: scheme(4, sym: true, group: 128))
        let expected: JSONValue = [
            "version": "0.20.1", "quant_method": "compressed-tensors", "sparsity_config": [:], "transform_config": [:],
            "config_groups": ["group_0": [
                "targets": ["Linear"],
                "weights": ["num_bits": 4, "type": "int", "symmetric": true, "group_size": 128, "strategy": "group",
                            "block_structure": nil, "dynamic": false, "actorder": nil, "observer": "minmax", "observer_kwargs": [:]],
                "input_activations": nil, "output_activations": nil, "format": "pack-quantized",
            ]],
            "kv_cache_scheme": nil, "format": "pack-quantized", "quantization_status": "compressed",
            "global_compression_ratio": nil, "ignore": ["lm_head"],
        ]
        XCTAssertEqual(config, expected)
        let w8 = try CompressedTensorsFormat.quantizationConfig(schemes: scheme(8, sym: true, group: nil))
        XCTAssertEqual(w8["config_groups"]?["group_0"]?["weights"]?["strategy"], "channel")
        XCTAssertEqual(w8["config_groups"]?["group_0"]?["weights"]?["group_size"], .null)
        let asym = try CompressedTensorsFormat.quantizationConfig(schemes: scheme(4, sym: false, group: 128, actOrder: true))
        XCTAssertEqual(asym["config_groups"]?["group_0"]?["weights"]?["symmetric"], false)
        XCTAssertEqual(asym["config_groups"]?["group_0"]?["weights"]?["actorder"], "group")
        let staticOrder = try CompressedTensorsFormat.quantizationConfig(schemes: scheme(4, sym: true, group: 128), options: .init(staticActOrder: true))
        XCTAssertEqual(staticOrder["config_groups"]?["group_0"]?["weights"]?["actorder"], "static")
    }

    func testGPTQConfigHasAutoGPTQKeys() throws {
        let config = try GPTQFormat.quantizationConfig(schemes: scheme(4, sym: true, group: nil, actOrder: true))
        XCTAssertEqual(config, [
            "bits": 4, "group_size": -1, "damp_percent": 0.01, "desc_act": true, "static_groups": false, "sym": true,
            "true_sequential": true, "lm_head": false, "quant_method": "gptq", "checkpoint_format": "gptq",
            "model_name_or_path": nil, "model_file_base_name": nil, "meta": ["quantizer": ["qdist"]],
        ])
    }

    /// config.json is written with sorted keys and parsed back; the reader must still find it all.
    func testConfigSurvivesConfigJSONRoundTrip() throws {
        let weight = Tensor(shape: [16, 64], scalars: (0..<1024).map { Float(($0 * 37) % 101) / 101 - 0.5 })
        let linear = try QuantizedLinearWeights.referenceRoundToNearest(
            name: "model.layers.0.self_attn.q_proj", weight: weight, numBits: 4, groupSize: 32, symmetric: false, scaleDType: .bf16)
        for written in [try CompressedTensorsFormat.write([linear], otherTensors: [:]),
                        try GPTQFormat.write([linear.roundingScales(to: .f16)], otherTensors: [:], options: .init(checkpointFormat: .v2))] {
            var model = ModelConfiguration(hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 1, numAttentionHeads: 4, vocabSize: 300)
            model = written.configuration(updating: model)
            let parsed = try ModelConfiguration(json: JSONParser.parse(model.serialized()), path: "config.json")
            XCTAssertEqual(parsed.quantizationConfig, written.quantizationConfig)
            let reader = try XCTUnwrap(QuantizedCheckpointReader(quantizationConfig: parsed.quantizationConfig, configPath: "config.json",
                                                                 source: InMemoryStoredTensors(written.tensors)))
            XCTAssertEqual(try reader.linear(linear.name).dequantize(), try reader.linears()[0].dequantize())
            XCTAssertEqual(reader.quantizedModule(forWeight: "\(linear.name).weight"), linear.name)
            XCTAssertNil(reader.quantizedModule(forWeight: "model.norm.weight"))
        }
        XCTAssertNil(try QuantizedCheckpointReader(quantizationConfig: nil, configPath: "config.json", source: InMemoryStoredTensors([:])))
    }

    private func error(_ config: JSONValue, tensors: [String: StoredTensor] = [:]) -> String {
        do {
            let reader = try QuantizedCheckpointReader(quantizationConfig: config, configPath: "/m/config.json",
                                                       source: InMemoryStoredTensors(tensors, sourcePath: "/m/model.safetensors"))
            _ = try reader?.linears()
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    func testUnsupportedConfigurationsAreOneLineErrorsNamingConfigJSONAndTheKey() throws {
        let ct = try CompressedTensorsFormat.quantizationConfig(schemes: scheme(4, sym: true, group: 128))
        func edited(_ base: JSONValue, _ key: String, _ value: JSONValue) -> JSONValue {
            .object(base.objectValue!.map { $0.key == key ? (key: key, value: value) : $0 })
        }
        func editedWeights(_ key: String, _ value: JSONValue) -> JSONValue {
            let weights = edited(ct["config_groups"]!["group_0"]!["weights"]!, key, value)
            let group = edited(ct["config_groups"]!["group_0"]!, "weights", weights)
            return edited(ct, "config_groups", ["group_0": group])
        }
        let gptq = try GPTQFormat.quantizationConfig(schemes: scheme(4, sym: true, group: 128))
        let cases: [(JSONValue, String)] = [
            (["quant_method": "awq", "bits": 4], "/m/config.json: key \"quantization_config.quant_method\": unsupported quantization method \"awq\""),
            (["bits": 4], "/m/config.json: missing required key \"quantization_config.quant_method\""),
            (edited(gptq, "bits", 5), "/m/config.json: key \"quantization_config.bits\": 5-bit GPTQ is not supported"),
            (edited(gptq, "checkpoint_format", "marlin"), "/m/config.json: key \"quantization_config.checkpoint_format\": unsupported GPTQ checkpoint format \"marlin\""),
            (edited(gptq, "group_size", 0), "/m/config.json: key \"quantization_config.group_size\": must be -1"),
            (edited(ct, "format", "nvfp4-pack-quantized"), "/m/config.json: key \"quantization_config.format\": unsupported compressed-tensors format \"nvfp4-pack-quantized\""),
            (edited(ct, "quantization_status", "frozen"), "/m/config.json: key \"quantization_config.quantization_status\""),
            (editedWeights("num_bits", 6), "/m/config.json: key \"quantization_config.config_groups.group_0.weights.num_bits\": 6-bit weights are not supported"),
            (editedWeights("type", "float"), "/m/config.json: key \"quantization_config.config_groups.group_0.weights.num_bits\": 4-bit float weights are not supported"),
            (editedWeights("type", "mxfp"), "/m/config.json: key \"quantization_config.config_groups.group_0.weights.type\""),
            (editedWeights("strategy", "block"), "/m/config.json: key \"quantization_config.config_groups.group_0.weights.strategy\""),
            ("gptq", "/m/config.json: key \"quantization_config\": expected a JSON object, found a string"),
        ]
        for (config, prefix) in cases {
            let message = error(config)
            XCTAssertTrue(message.hasPrefix(prefix), "\(message)\n  expected prefix: \(prefix)")
            XCTAssertFalse(message.contains("\n"), message)
        }
    }

    func testMissingOrMisshapenTensorsNameTheWeightsFileAndTensor() throws {
        let weight = Tensor(shape: [16, 64], scalars: (0..<1024).map { Float($0 % 13) - 6 })
        let linear = try QuantizedLinearWeights.referenceRoundToNearest(
            name: "model.layers.0.self_attn.q_proj", weight: weight, numBits: 4, groupSize: 32, symmetric: true, scaleDType: .f16)
        var tensors = try GPTQFormat.write([linear], otherTensors: [:]).tensors
        tensors["\(linear.name).scales"] = nil
        let config = try GPTQFormat.quantizationConfig(schemes: [(linear.name, linear.scheme)])
        XCTAssertEqual(error(config, tensors: tensors),
                       "/m/model.safetensors: tensor \"model.layers.0.self_attn.q_proj.scales\": missing (a GPTQ linear needs qweight, qzeros and scales)")
        let ct = try CompressedTensorsFormat.write([linear], otherTensors: [:])
        var bad = ct.tensors
        bad["\(linear.name).weight_scale"] = StoredTensor(Tensor.zeros([16, 3]), as: .f16)
        XCTAssertTrue(error(ct.quantizationConfig, tensors: bad).hasPrefix(
            "/m/model.safetensors: tensor \"model.layers.0.self_attn.q_proj.weight_scale\": expected a float [16, 2]"))
        let ignored = try CompressedTensorsFormat.quantizationConfig(
            schemes: [(linear.name, linear.scheme)], options: .init(ignore: ["lm_head", "re:.*q_proj$"]))
        XCTAssertTrue(error(ignored, tensors: ct.tensors).contains("key \"quantization_config.config_groups\": no config group targets"))
    }
}
