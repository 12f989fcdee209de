import Foundation
import QDistIO
import QDistTestSupport
import XCTest

final class ModelConfigurationTests: XCTestCase {
    static let smolLM2 = """
        {
          "architectures": ["LlamaForCausalLM"],
          "attention_bias": false,
          "attention_dropout": 0.0,
          "bos_token_id": 0,
          "eos_token_id": 0,
          "hidden_act": "silu",
          "hidden_size": 576,
          "initializer_range": 0.041666666666666664,
          "intermediate_size": 1536,
          "is_llama_config": true,
          "max_position_embeddings": 8192,
          "mlp_bias": false,
          "model_type": "llama",
          "num_attention_heads": 9,
          "num_hidden_layers": 30,
          "num_key_value_heads": 3,
          "pretraining_tp": 1,
          "rms_norm_eps": 1e-05,
          "rope_interleaved": false,
          "rope_scaling": null,
          "rope_theta": 100000,
          "tie_word_embeddings": true,
          "torch_dtype": "bfloat16",
          "transformers_version": "4.42.3",
          "use_cache": true,
          "vocab_size": 49152
        }
        """

    static let mistral7B = """
        {"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
         "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
         "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
         "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
         "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000}
        """

    static let qwen2 = """
        {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151643,
         "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
         "max_position_embeddings": 131072, "max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14,
         "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
         "sliding_window": 131072, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
         "transformers_version": "4.40.1", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936}
        """

    static let llama31 = """
        {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 128000,
         "eos_token_id": [128001, 128008, 128009], "hidden_size": 4096, "intermediate_size": 14336,
         "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32,
         "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
         "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 8192, "rope_type": "llama3"},
         "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 128256,
         "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": false, "sym": true}}
        """

    private func parse(_ text: String, path: String = "config.json") throws -> ModelConfiguration {
        try ModelConfiguration(json: JSONParser.parse(text), path: path)
    }

    private func assertConfigError(_ text: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(text, path: "/models/x/config.json"), file: file, line: line) { error in
            XCTAssertEqual((error as? QDistIOError)?.kind, .config, file: file, line: line)
            XCTAssertEqual("\(error)", "/models/x/config.json: " + expected, file: file, line: line)
        }
    }

    func testSmolLM2ParsesWithTiedEmbeddingsAnd134515008Parameters() throws {
        let c = try parse(Self.smolLM2)
        XCTAssertEqual(c.modelType, "llama")
        XCTAssertEqual(c.architectures, ["LlamaForCausalLM"])
        XCTAssertEqual([c.hiddenSize, c.intermediateSize, c.numHiddenLayers, c.numAttentionHeads, c.numKeyValueHeads, c.headDim, c.vocabSize],
                       [576, 1536, 30, 9, 3, 64, 49152])
        XCTAssertEqual(c.ropeTheta, 100_000)
        XCTAssertEqual(c.rmsNormEps, 1e-5)
        XCTAssertNil(c.ropeScaling)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertEqual(c.eosTokenIds, [0])
        XCTAssertEqual(c.torchDtype, "bfloat16")
        XCTAssertEqual(c.parameterCount, 134_515_008)
        XCTAssertEqual(c.tensorShapes.count, 1 + 30 * 9 + 1)
        XCTAssertEqual(c.tensorShapes.reduce(0) { $0 + $1.shape.reduce(1, *) }, c.parameterCount)
        XCTAssertFalse(c.tensorShapes.contains { $0.name == "lm_head.weight" })
    }

    func testLinearLayersListSevenProjectionsPerLayerWithPyTorchShapes() throws {
        let c = try parse(Self.smolLM2)
        let layer = c.linearLayers(inLayer: 3)
        XCTAssertEqual(layer.map(\.name), ["q_proj", "k_proj", "v_proj", "o_proj"].map { "model.layers.3.self_attn.\($0)" }
            + ["gate_proj", "up_proj", "down_proj"].map { "model.layers.3.mlp.\($0)" })
        XCTAssertEqual(layer.map(\.weightShape), [[576, 576], [192, 576], [192, 576], [576, 576], [1536, 576], [1536, 576], [576, 1536]])
        XCTAssertEqual(c.linearLayers.count, 210)
        XCTAssertFalse(layer.contains { $0.hasBias })
        XCTAssertEqual(c.lmHead.weightShape, [49152, 576])
    }

    func testMistral7BParsesWithItsSlidingWindowAnd7241732096Parameters() throws {
        let c = try parse(Self.mistral7B)
        XCTAssertEqual(c.modelType, "mistral")
        XCTAssertEqual(c.slidingWindow, 4096)
        XCTAssertEqual(c.headDim, 128)
        XCTAssertFalse(c.tieWordEmbeddings)
        XCTAssertEqual(c.parameterCount, 7_241_732_096)
        XCTAssertEqual(c.tensorShapes.last?.name, "lm_head.weight")
    }

    func testQwen2HasQKVBiasesByDefaultButNoOutputBiasAnd494032768Parameters() throws {
        let c = try parse(Self.qwen2)
        XCTAssertTrue(c.attentionBias)
        XCTAssertTrue(c.hasQKVBias)
        XCTAssertFalse(c.hasOutputProjectionBias)
        XCTAssertEqual(c.linearLayers(inLayer: 0).map(\.hasBias), [true, true, true, false, false, false, false])
        XCTAssertEqual(c.useSlidingWindow, false)
        XCTAssertEqual(c.ropeTheta, 1_000_000)
        XCTAssertEqual(c.parameterCount, 494_032_768)
        XCTAssertTrue(c.tensorShapes.contains { $0.name == "model.layers.0.self_attn.k_proj.bias" && $0.shape == [128] })
    }

    func testLlama31ReadsRopeScalingSeveralEOSIdsAndKeepsQuantizationConfigVerbatim() throws {
        let c = try parse(Self.llama31)
        XCTAssertEqual(c.ropeScaling, .init(ropeType: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192))
        XCTAssertEqual(c.eosTokenIds, [128001, 128008, 128009])
        XCTAssertEqual(c.parameterCount, 8_030_261_248)
        XCTAssertEqual(c.quantizationConfig?.objectValue?.map(\.key), ["quant_method", "bits", "group_size", "desc_act", "sym"])
        XCTAssertEqual(c.quantizationConfig?["bits"], .number(4))
    }

    func testDefaultsApplyWhenOptionalKeysAreAbsent() throws {
        let c = try parse(#"{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100}"#)
        XCTAssertEqual(c.numKeyValueHeads, 4)
        XCTAssertEqual(c.headDim, 16)
        XCTAssertEqual(c.ropeTheta, 10000)
        XCTAssertEqual(c.rmsNormEps, 1e-6)
        XCTAssertEqual(c.maxPositionEmbeddings, 2048)
        XCTAssertFalse(c.tieWordEmbeddings)
        XCTAssertFalse(c.attentionBias)
        XCTAssertNil(c.quantizationConfig)
    }

    func testTransformers5SpellingsRopeParametersAndDtypeAreRead() throws {
        let c = try parse(#"{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100,"dtype":"float16","rope_parameters":{"rope_theta":500000.0,"rope_type":"llama3","factor":32.0}}"#)
        XCTAssertEqual(c.ropeTheta, 500_000)
        XCTAssertEqual(c.ropeScaling?.ropeType, "llama3")
        XCTAssertEqual(c.ropeScaling?.factor, 32)
        XCTAssertEqual(c.torchDtype, "float16")
    }

    func testMissingKeyWrongTypeAndUnsupportedModelTypeNameTheFileAndKey() {
        let base = #""model_type":"llama","intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100"#
        assertConfigError("{\(base)}", #"missing required key "hidden_size""#)
        // Found by the fuzz harness: an odd head dimension trapped in the rotary embedding.
        assertConfigError(#"{\#(base),"hidden_size":64,"head_dim":15}"#, #"key "head_dim": must be even for rotary embeddings, found 15"#)
        assertConfigError(#"{\#(base),"hidden_size":"64"}"#, #"key "hidden_size": expected an integer, found a string ("64")"#)
        assertConfigError(#"{\#(base),"hidden_size":64.5}"#, #"key "hidden_size": expected an integer, found a number (64.5)"#)
        assertConfigError(#"{\#(base),"hidden_size":64,"tie_word_embeddings":"yes"}"#, #"key "tie_word_embeddings": expected a boolean, found a string ("yes")"#)
        assertConfigError(#"{\#(base),"hidden_size":64,"rope_scaling":{"rope_type":"linear","factor":"2"}}"#,
                          #"key "rope_scaling.factor": expected a number, found a string ("2")"#)
        assertConfigError(#"{\#(base),"hidden_size":64,"num_key_value_heads":3}"#, #"key "num_key_value_heads": 3 does not divide num_attention_heads 4"#)
        assertConfigError(#"{\#(base),"hidden_size":0}"#, #"key "hidden_size": must be positive, found 0"#)
        assertConfigError(#"{"model_type":"gpt2","hidden_size":64}"#, #"key "model_type": unsupported model type "gpt2" (qdist supports llama, mistral, qwen2)"#)
        assertConfigError(#"{"hidden_size":64}"#, #"missing required key "model_type""#)
        assertConfigError("[1]", "the file: expected a JSON object, found an array")
    }

    func testLoadReadsAFolderOrAFileAndReportsInvalidJSONWithTheByteOffset() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let url = folder.appendingPathComponent("config.json")
        try Data(Self.smolLM2.utf8).write(to: url)
        XCTAssertEqual(try ModelConfiguration.load(from: folder), try ModelConfiguration.load(from: url))
        try Data(#"{"model_type":"llama","model_type":"llama"}"#.utf8).write(to: url)
        XCTAssertThrowsError(try ModelConfiguration.load(from: folder)) {
            XCTAssertEqual("\($0)", url.path + #": invalid JSON at byte 22: duplicate key "model_type""#)
        }
        XCTAssertThrowsError(try ModelConfiguration.load(from: folder.appendingPathComponent("nope"))) {
            XCTAssertTrue("\($0)".contains("nope/config.json: cannot read") || "\($0)".contains("nope: cannot read"), "\($0)")
        }
    }

    func testEncodeThenDecodeGivesTheSameConfiguration() throws {
        for text in [Self.smolLM2, Self.mistral7B, Self.qwen2, Self.llama31] {
            let c = try parse(text)
            XCTAssertEqual(try ModelConfiguration(json: c.jsonValue, path: "x"), c)
            XCTAssertEqual(try ModelConfiguration(json: JSONParser.parse(c.serialized()), path: "x"), c)
            let viaCodable = try JSONDecoder().decode(ModelConfiguration.self, from: JSONEncoder().encode(c))
            XCTAssertEqual(viaCodable.hiddenSize, c.hiddenSize)
            XCTAssertEqual(viaCodable.ropeScaling, c.ropeScaling)
            XCTAssertEqual(viaCodable.eosTokenIds, c.eosTokenIds)
            XCTAssertEqual(viaCodable.quantizationConfig?["bits"], c.quantizationConfig?["bits"])
        }
        let written = String(decoding: try parse(Self.llama31).serialized(), as: UTF8.self)
        XCTAssertTrue(written.contains("\"num_key_value_heads\": 8,\n"), written)
        XCTAssertTrue(written.contains("\"rope_scaling\": {\n    \"factor\": 8,"), written)
        XCTAssertTrue(written.hasSuffix("}\n"))
    }

    func testWriteThenLoadRoundTripsThroughAFile() throws {
        let folder = try QdistProcess.temporaryDirectory(self)
        let c = try parse(Self.qwen2)
        try c.write(to: folder.appendingPathComponent("config.json"))
        XCTAssertEqual(try ModelConfiguration.load(from: folder), c)
    }
}
