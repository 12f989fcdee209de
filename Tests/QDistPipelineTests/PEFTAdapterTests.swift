import Foundation
import QDistIO
import QDistModel
import QDistTensor
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// PEFT adapter folders in and out (FORMATS.md §8): the writer's files read back exactly, the
/// reader refuses what it cannot apply with one line naming the file, and merging gives
/// W + scaling·B·A.
final class PEFTAdapterTests: XCTestCase {
    let config = RandomModelWeights.configuration(layers: 2, hidden: 64, heads: 4, kvHeads: 2)

    func writeAdapter(_ lora: LoRAConfig, seed: UInt64 = 1, to url: URL) throws -> PEFTAdapter {
        let adapter = PEFTAdapter.random(config: config, lora: lora, seed: seed)
        try PEFTAdapterWriter.write(config: lora, layout: adapter.layout, parameters: adapter.parameters.values,
                                    baseModel: "HuggingFaceTB/SmolLM2-135M-Instruct", to: url)
        return adapter
    }

    func testWriterThenReaderRoundTripsEveryTensorAndSetting() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let url = dir.appendingPathComponent("adapter")
        let lora = LoRAConfig(rank: 4, alpha: 8, dropout: 0.05, targets: [.q, .v, .down], useRSLoRA: true)
        let written = try writeAdapter(lora, to: url)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: url.path).sorted(),
                       ["adapter_config.json", "adapter_model.safetensors"])
        let read = try PEFTAdapterReader.read(url, baseConfig: config)
        XCTAssertEqual(read.lora, lora)
        XCTAssertEqual(read.baseModel, "HuggingFaceTB/SmolLM2-135M-Instruct")
        XCTAssertEqual(read.parameters, written.parameters, "F32 on disk: bit-exact")
        XCTAssertEqual(read.scaling, Float(8 / 2.0), "rsLoRA: α/√r")

        let file = try SafetensorsReader(url: url.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertEqual(file.metadata, ["format": "pt"])
        XCTAssertEqual(file.tensorNames.count, 2 * 3 * 2)
        XCTAssertEqual(try file.info("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight").shape, [64, 4])
        XCTAssertEqual(try file.info("base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight").shape, [4, 64])
        XCTAssertEqual(try file.info("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight").shape, [32, 4], "GQA: kv heads × head dim")

        // The key set PEFT 0.21.2 writes for a LoraConfig, checked against peft's save_pretrained.
        let json = try JSONParser.parseFile(at: url.appendingPathComponent("adapter_config.json"))
        XCTAssertEqual(json.objectValue?.map(\.key), PEFTAdapterConfigFile.knownKeys.subtracting(["runtime_config"]).sorted())
        XCTAssertEqual(json["r"], 4)
        XCTAssertEqual(json["lora_alpha"], 8)
        XCTAssertEqual(json["use_rslora"], true)
        XCTAssertEqual(json["task_type"], "CAUSAL_LM")
        XCTAssertEqual(json["target_modules"], ["q_proj", "v_proj", "down_proj"])
        let text = try String(contentsOf: url.appendingPathComponent("adapter_config.json"), encoding: .utf8)
        XCTAssertTrue(text.contains("\n  \"lora_dropout\": 0.05,\n") && !text.hasSuffix("\n"), "json.dumps(indent=2, sort_keys=True)")
    }

    func testWriterReplacesAnAdapterFolderButNeverAnotherFolderAndLeavesNoStaging() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let url = dir.appendingPathComponent("adapter")
        let lora = LoRAConfig(rank: 2, alpha: 4, targets: [.q])
        _ = try writeAdapter(lora, seed: 1, to: url)
        let second = try writeAdapter(lora, seed: 2, to: url)
        XCTAssertEqual(try PEFTAdapterReader.read(url, baseConfig: config).parameters, second.parameters)

        let other = dir.appendingPathComponent("notes")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: other.appendingPathComponent("todo.txt"))
        XCTAssertThrowsError(try writeAdapter(lora, to: other)) { e in
            XCTAssertTrue("\(e)".contains("not a PEFT adapter folder"), "\(e)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: other.path), ["todo.txt"])

        var bad = PEFTAdapter.random(config: config, lora: lora, seed: 3)
        bad.parameters.values[5] = .nan
        XCTAssertThrowsError(try PEFTAdapterWriter.write(bad, baseModel: "x", to: dir.appendingPathComponent("nan"))) { e in
            XCTAssertTrue("\(e)".contains("NaN"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("nan").path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["adapter", "notes"], "no staging left")
    }

    /// Writes an adapter, edits its adapter_config.json, and returns the reader's error.
    func readError(editing edit: (inout [(key: String, value: JSONValue)]) -> Void, baseConfig: ModelConfiguration? = nil,
                   file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let url = try QdistProcess.temporaryDirectory(self).appendingPathComponent("adapter")
        _ = try writeAdapter(LoRAConfig(rank: 4, alpha: 8, targets: [.q, .v]), to: url)
        let configURL = url.appendingPathComponent("adapter_config.json")
        var pairs = try XCTUnwrap(JSONParser.parseFile(at: configURL).objectValue)
        edit(&pairs)
        try Data(JSONValue.object(pairs).serialized(.pretty(sortKeys: true))).write(to: configURL)
        do {
            _ = try PEFTAdapterReader.read(url, baseConfig: baseConfig ?? config)
            XCTFail("the reader accepted it", file: file, line: line)
            return ""
        } catch {
            let message = "\(error)"
            XCTAssertFalse(message.contains("\n"), message, file: file, line: line)
            XCTAssertTrue(message.contains(url.path + "/adapter_"), "names the file: \(message)", file: file, line: line)
            return message
        }
    }

    func set(_ key: String, _ value: JSONValue) -> (inout [(key: String, value: JSONValue)]) -> Void {
        { pairs in pairs.removeAll { $0.key == key }; pairs.append((key: key, value: value)) }
    }

    func testReaderRefusesWhatItCannotApplyWithOneLineNamingFileAndProblem() throws {
        let missing = try readError(editing: { $0.removeAll { $0.key == "r" } })
        XCTAssertTrue(missing.hasSuffix("adapter_config.json: missing required key \"r\""), missing)
        let wrongR = try readError(editing: set("r", 8))
        XCTAssertTrue(wrongR.contains("adapter_model.safetensors: tensor base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight has shape [4, 64], expected [r, in_features] = [8, 64]"), wrongR)
        let unknown = try readError(editing: set("target_modules", ["q_proj", "foo_proj"]))
        XCTAssertTrue(unknown.contains("\"foo_proj\" names no module"), unknown)
        let notPresent = try readError(editing: set("target_modules", ["q_proj", "v_proj", "k_proj"]))
        XCTAssertTrue(notPresent.contains("missing tensor base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight"), notPresent)
        let fewer = try readError(editing: set("target_modules", ["q_proj"]))
        XCTAssertTrue(fewer.contains("unexpected tensor base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight"), fewer)
        let head = try readError(editing: set("target_modules", ".*(q_proj|v_proj|lm_head)"))
        XCTAssertTrue(head.contains("selects lm_head"), head)
        let oneLayer = try readError(editing: set("target_modules", ["model.layers.0.self_attn.q_proj", "v_proj"]))
        XCTAssertTrue(oneLayer.contains("layer 1 lacks q_proj"), oneLayer)
        let subset = try readError(editing: set("layers_to_transform", [0]))
        XCTAssertTrue(subset.contains("leaves out layer 1"), subset)
        for (key, value, expected) in [("use_dora", JSONValue.bool(true), "DoRA"), ("bias", "all", "bias must be \"none\""),
                                       ("peft_type", "IA3", "not a LoRA adapter"), ("task_type", "SEQ_CLS", "CAUSAL_LM"),
                                       ("fan_in_fan_out", true, "Conv1D"), ("modules_to_save", ["lm_head"], "modules_to_save"),
                                       ("rank_pattern", ["q_proj": 2], "rank_pattern"), ("init_lora_weights", "pissa", "rewrites the base"),
                                       ("lora_dropout", 1.5, "[0, 1)"), ("some_future_switch", true, "does not know"),
                                       ("r", "4", "expected an integer")] {
            let message = try readError(editing: set(key, value))
            XCTAssertTrue(message.contains(key) && message.contains(expected), "\(key): \(message)")
        }
        var future = try XCTUnwrap(JSONParser.parse(PEFTAdapterConfigFile.text(for: LoRAConfig(rank: 4, alpha: 8, targets: [.q]),
                                                                               baseModel: "b")).objectValue)
        future.append((key: "some_future_default", value: nil))
        XCTAssertEqual(try PEFTAdapterConfigFile.parse(.object(future), path: "a", layers: 2).lora.rank, 4,
                       "a key PEFT adds later is accepted while it is off")
    }

    func testReaderRefusesAnotherBaseModelAndAPickleOnlyFolder() throws {
        let wide = RandomModelWeights.configuration(layers: 2, hidden: 128, heads: 4, kvHeads: 2)
        let other = try readError(editing: { _ in }, baseConfig: wide)
        XCTAssertTrue(other.contains("expected [r, in_features] = [4, 128]"), other)
        let deeper = RandomModelWeights.configuration(layers: 3)
        XCTAssertTrue(try readError(editing: { _ in }, baseConfig: deeper).contains("missing tensor base_model.model.model.layers.2."))

        let url = try QdistProcess.temporaryDirectory(self).appendingPathComponent("adapter")
        _ = try writeAdapter(LoRAConfig(rank: 4, alpha: 8, targets: [.q]), to: url)
        try FileManager.default.moveItem(at: url.appendingPathComponent("adapter_model.safetensors"),
                                         to: url.appendingPathComponent("adapter_model.bin"))
        XCTAssertThrowsError(try PEFTAdapterReader.read(url, baseConfig: config)) { e in
            XCTAssertTrue("\(e)".contains("adapter_model.safetensors: missing; the folder has adapter_model.bin"), "\(e)")
        }
    }

    func testTargetModulesFollowPEFTMatchingRules() throws {
        func targets(_ s: PEFTTargetModules.Selector, exclude: PEFTTargetModules.Selector? = nil) throws -> [LoRATarget] {
            try PEFTTargetModules.resolve(s, exclude: exclude, layersToTransform: nil, layers: 3)
        }
        XCTAssertEqual(try targets(.pattern("all-linear")), LoRATarget.allCases)
        XCTAssertEqual(try targets(.pattern(#"model\.layers\.\d+\.self_attn\.(q|v)_proj"#)), [.q, .v])
        XCTAssertEqual(try targets(.names(["self_attn.o_proj", "down_proj", "k_proj"])), [.k, .o, .down])
        XCTAssertEqual(try targets(.names(["q_proj", "up_proj"]), exclude: .names(["up_proj"])), [.q])
        XCTAssertThrowsError(try targets(.names(["self_attn"]))) { XCTAssertTrue("\($0)".contains("selects model.layers.0.self_attn,"), "\($0)") }
        XCTAssertThrowsError(try targets(.pattern("(unclosed"))) { XCTAssertTrue("\($0)".contains("not a regular expression"), "\($0)") }
    }

    func testMergedWeightsEqualFloat64Recomputation() throws {
        let base = InMemoryWeights(RandomModelWeights.make(for: config, seed: 9))
        for lora in [LoRAConfig(rank: 4, alpha: 16, targets: LoRATarget.allCases),
                     LoRAConfig(rank: 8, alpha: 8, targets: [.k, .up], useRSLoRA: true)] {
            let adapter = PEFTAdapter.random(config: config, lora: lora, seed: 4, bScale: 0.2)
            let merged = AdaptedWeightSource(base: base, adapter: adapter)
            let scaling = lora.useRSLoRA ? 8 / Double(8).squareRoot() : 16.0 / 4
            XCTAssertEqual(Double(adapter.scaling), scaling, accuracy: 1e-7)
            for (name, _) in config.tensorShapes {
                let w = try base.tensor(name), m = try merged.tensor(name)
                guard let (block, target) = adapter.adaptedLinear(forWeight: name) else {
                    XCTAssertEqual(m, w, "\(name) is not adapted")
                    continue
                }
                let a = try XCTUnwrap(adapter.adapter(block: block, target: target))
                let (out, inF, r) = (a.outFeatures, a.inFeatures, a.rank)
                var worst = 0.0, largest = 0.0
                for i in 0..<out {
                    for j in 0..<inF {
                        var ba = 0.0
                        for k in 0..<r { ba += Double(a.b.scalars[i * r + k]) * Double(a.a.scalars[k * inF + j]) }
                        let expected = Double(w.scalars[i * inF + j]) + scaling * ba
                        worst = max(worst, abs(Double(m.scalars[i * inF + j]) - expected))
                        largest = max(largest, abs(scaling * ba))
                    }
                }
                XCTAssertLessThan(worst, 1e-6, "\(name): Float32 merge vs float64")
                XCTAssertGreaterThan(largest, 1e-3, "\(name): the adapter changes the weight")
            }
            XCTAssertEqual(lora.targets.count * config.numHiddenLayers,
                           config.tensorShapes.filter { adapter.adaptedLinear(forWeight: $0.name) != nil }.count)
        }
    }
}
