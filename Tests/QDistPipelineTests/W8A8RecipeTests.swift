import Foundation
import QDistIO
import QDistQuant
import XCTest
@testable import QDistPipeline

/// `input_activations` in recipes (issue 5): the W8A8 preset as compressed-tensors defines it,
/// static and dynamic groups spelled out, every nonsensical combination a one-line error with
/// file, line and key, and the plan's calibration arguments.
final class W8A8RecipeTests: XCTestCase {
    func decode(_ yaml: String) throws -> QuantizeJobConfig {
        try StrictYAML.decode(QuantizeJobConfig.self, from: yaml, path: "r.yaml")
    }

    func assertError(_ yaml: String, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try decode(yaml), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertFalse(text.contains("\n"), "one line: \(text)", file: file, line: line)
            for p in parts { XCTAssertTrue(text.contains(p), "\(text) should contain \(p)", file: file, line: line) }
        }
    }

    func group(_ activations: String, weights: String = "{num_bits: 8, strategy: channel}") -> String {
        """
        recipe:
          QuantizationModifier:
            config_groups:
              g0:
                targets: [Linear]
                weights: \(weights)
                input_activations: \(activations)
        """
    }

    func testW8A8PresetIsCompressedTensorsINT8W8A8() throws {
        for name in ["W8A8", "int8"] {
            let job = try decode("recipe: {QuantizationModifier: {scheme: \(name)}}")
            let g = try XCTUnwrap(job.recipe.modifier!.weightGroups.first)
            XCTAssertEqual(g.weights, WeightArgsConfig(numBits: 8, symmetric: true, strategy: .channel))
            XCTAssertEqual(g.inputActivations, ActivationArgsConfig(numBits: 8, symmetric: true, strategy: .token, dynamic: true))
            XCTAssertEqual(g.inputActivations?.scheme, .int8DynamicPerToken)
            XCTAssertTrue(job.recipe.modifier!.quantizesActivations)
        }
        XCTAssertTrue(SchemePresets.names.contains("W8A8"))
        XCTAssertNil(SchemePresets.inputActivations(named: "W4A16"), "weight-only presets quantize no activations")
    }

    /// compressed-tensors' FP8 presets: `FP8` static per-tensor weights and inputs, `FP8_DYNAMIC`
    /// per-channel weights and dynamic per-token inputs; both E4M3, symmetric, calibrated by
    /// minmax where static; only FP8 (static) needs calibration data.
    func testFP8PresetsAreCompressedTensorsFP8AndFP8Dynamic() throws {
        let config = ModelConfiguration(hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2, numAttentionHeads: 4,
                                        numKeyValueHeads: 2, vocabSize: 512)
        let fp8 = try decode("recipe: {QuantizationModifier: {scheme: FP8}}")
        let g = try XCTUnwrap(fp8.recipe.modifier!.weightGroups.first)
        XCTAssertEqual(g.weights, WeightArgsConfig(numBits: 8, type: .float, symmetric: true, strategy: .tensor))
        XCTAssertEqual(g.inputActivations?.scheme, InputActivationScheme(strategy: .tensor, dynamic: false, observer: "minmax", type: .float))
        let staticPlan = try QuantizationPlan(recipe: fp8.recipe, config: config, format: .compressedTensors)
        XCTAssertTrue(staticPlan.needsCalibration)
        XCTAssertEqual(staticPlan.entries.first?.inputCalibrationArgs?.type, .float, "the static scale is absmax / 448")
        let dynamic = try decode("recipe: {QuantizationModifier: {scheme: fp8_dynamic}}")
        let d = try XCTUnwrap(dynamic.recipe.modifier!.weightGroups.first)
        XCTAssertEqual(d.weights, WeightArgsConfig(numBits: 8, type: .float, symmetric: true, strategy: .channel))
        XCTAssertEqual(d.inputActivations?.scheme, InputActivationScheme(strategy: .token, dynamic: true, type: .float))
        XCTAssertFalse(try QuantizationPlan(recipe: dynamic.recipe, config: config, format: .compressedTensors).needsCalibration,
                       "FP8_DYNAMIC is calibration-free")
        XCTAssertTrue(SchemePresets.names.contains("FP8_DYNAMIC"))
    }

    /// `TERNARY`: BitNet b1.58's absmean ternary weights (2-bit symmetric, one scale per tensor)
    /// with int8 dynamic per-token inputs; absmean anywhere else is a one-line error.
    func testTernaryPresetIsAbsmeanTwoBitWeightsWithInt8PerTokenInputs() throws {
        let g = try XCTUnwrap(try decode("recipe: {QuantizationModifier: {scheme: TERNARY}}").recipe.modifier!.weightGroups.first)
        XCTAssertEqual(g.weights, WeightArgsConfig(numBits: 2, symmetric: true, strategy: .tensor, observer: .absmean))
        XCTAssertEqual(g.inputActivations?.scheme, .int8DynamicPerToken)
        let perChannel = try decode(group("{dynamic: true}", weights: "{num_bits: 2, strategy: channel, observer: absmean}"))
        XCTAssertEqual(perChannel.recipe.modifier!.weightGroups.first?.weights.observer, .absmean)
        assertError(group("{dynamic: true}", weights: "{num_bits: 4, strategy: channel, observer: absmean}"),
                    contains: ["weights.observer", "num_bits 2"])
        assertError(group("{num_bits: 8, observer: absmean}"), contains: ["input_activations.observer", "ternary"])
    }

    func testStaticAndDynamicGroupsDecode() throws {
        let staticGroup = try decode(group("{num_bits: 8, type: int, symmetric: false, strategy: tensor, dynamic: false, observer: percentile}"))
        let s = try XCTUnwrap(staticGroup.recipe.modifier!.weightGroups.first?.inputActivations)
        XCTAssertEqual(s, ActivationArgsConfig(symmetric: false, strategy: .tensor, dynamic: false, observer: .percentile))
        XCTAssertEqual(s.scheme.observer, "percentile")
        // compressed-tensors' defaults: static unless told; static means per tensor, minmax.
        let defaults = try XCTUnwrap(try decode(group("{num_bits: 8}")).recipe.modifier!.weightGroups.first?.inputActivations)
        XCTAssertEqual(defaults, ActivationArgsConfig(strategy: .tensor, dynamic: false, observer: .minmax))
        let dynamicTensor = try XCTUnwrap(try decode(group("{strategy: tensor, dynamic: true}")).recipe.modifier!.weightGroups.first?.inputActivations)
        XCTAssertEqual(dynamicTensor.scheme, InputActivationScheme(strategy: .tensor, dynamic: true))
        XCTAssertNil(dynamicTensor.scheme.observer)
    }

    func testNonsensicalCombinationsAreOneLineErrorsNamingTheKey() {
        assertError(group("{num_bits: 8, strategy: token, dynamic: false}"), contains: ["r.yaml:7", "input_activations.strategy", "dynamic: true"])
        assertError(group("{num_bits: 8, strategy: token}"), contains: ["input_activations.strategy", "static per-token"])
        assertError(group("{num_bits: 8, dynamic: true, observer: minmax}"), contains: ["input_activations.observer", "dynamic"])
        assertError(group("{num_bits: 4, dynamic: true}"), contains: ["input_activations.num_bits", "8"])
        assertError(group("{num_bits: 8, type: float, dynamic: true}"), contains: ["g0.input_activations", "fp8 activations need fp8 weights"])
        assertError(group("{num_bits: 8, type: float, symmetric: false}", weights: "{num_bits: 8, type: float}"),
                    contains: ["input_activations.symmetric", "FP8"])
        assertError(group("{num_bits: 8}", weights: "{num_bits: 8, type: float}"), contains: ["g0.input_activations", "8-bit int weights"])
        assertError("recipe: {QuantizationModifier: {config_groups: {g: {weights: {num_bits: 8, type: float, symmetric: false}}}}}",
                    contains: ["weights.symmetric", "FP8"])
        assertError("recipe: {QuantizationModifier: {config_groups: {g: {weights: {num_bits: 8, type: float, strategy: group, group_size: 32}}}}}",
                    contains: ["weights.strategy", "tensor or channel"])
        assertError("format: gptq\nrecipe: {QuantizationModifier: {scheme: FP8_DYNAMIC}}", contains: ["gptq", "activations"])
        assertError(group("{num_bits: 8, observer: mse}"), contains: ["input_activations.observer", "mse"])
        assertError(group("{num_bits: 8, strategy: channel}"), contains: ["input_activations.strategy", "channel"])
        assertError(group("{num_bits: 8, dynamc: true}"), contains: ["r.yaml:7", "input_activations.dynamc", "unknown key"])
        assertError(group("{dynamic: true}", weights: "{num_bits: 4, strategy: group, group_size: 64}"),
                    contains: ["g0.input_activations", "8-bit int weights"])
        assertError("format: gptq\nrecipe: {QuantizationModifier: {scheme: W8A8}}", contains: ["r.yaml:1", "format", "gptq", "activations"])
    }

    func testPlanCarriesSchemesAndCalibrationArguments() throws {
        let config = ModelConfiguration(hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2, numAttentionHeads: 4,
                                        numKeyValueHeads: 2, vocabSize: 512)
        let staticJob = try decode(group("{symmetric: false, observer: kl}"))
        let plan = try QuantizationPlan(recipe: staticJob.recipe, config: config, format: .compressedTensors)
        XCTAssertTrue(plan.needsCalibration, "round-to-nearest with a static input scale must calibrate")
        let args = try XCTUnwrap(plan.entries.first?.inputCalibrationArgs)
        XCTAssertEqual(args.observer, .kl)
        XCTAssertEqual(args.strategy, .tensor)
        XCTAssertFalse(args.symmetric)
        let dynamicPlan = try QuantizationPlan(recipe: try decode("recipe: {QuantizationModifier: {scheme: W8A8}}").recipe,
                                               config: config, format: .compressedTensors)
        XCTAssertFalse(dynamicPlan.needsCalibration, "dynamic W8A8 round-to-nearest needs no calibration data")
        XCTAssertNil(dynamicPlan.entries.first?.inputCalibrationArgs)
        XCTAssertEqual(dynamicPlan.entries.first?.inputActivations, .int8DynamicPerToken)
        XCTAssertThrowsError(try QuantizationPlan(recipe: staticJob.recipe, config: config, format: .gptq)) { error in
            XCTAssertTrue("\(error)".contains("gptq format cannot carry quantized activations"), "\(error)")
        }
    }
}
