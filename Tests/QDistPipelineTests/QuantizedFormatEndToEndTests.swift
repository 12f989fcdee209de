import Foundation
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// A real `qdist tiny-model` folder, quantized by round-to-nearest and written as
/// compressed-tensors and GPTQ folders through `ModelFolderWriter`; then an independent numpy
/// reader written from FORMATS.md (Tests/Reference/quantized_reader.py) and our own
/// `QuantizedWeightSource` must both get back exactly the weights `dequantize()` gives.
final class QuantizedFormatEndToEndTests: XCTestCase {
    /// How one variant quantizes linear number `k` (q, k, v, o, gate, up, down per layer).
    private struct Variant {
        var name: String
        var gptq: GPTQFormat.CheckpointFormat?
        var scaleDType: DType
        var maxShardSize = ShardedCheckpointWriter.defaultMaxShardSize
        var scheme: (Int) -> (bits: Int, group: Int?, symmetric: Bool, actOrder: Bool)
    }

    private let variants: [Variant] = [
        Variant(name: "ct-w4a16", gptq: nil, scaleDType: .bf16) { _ in (4, 32, true, false) },
        Variant(name: "ct-mixed", gptq: nil, scaleDType: .f16, maxShardSize: 40_000) { k in
            k % 7 < 4 ? (4, 16, false, true) : (8, nil, k % 2 == 0, false)
        },
        Variant(name: "ct-w2-w3", gptq: nil, scaleDType: .bf16) { k in k % 2 == 0 ? (2, 32, false, false) : (3, 32, true, false) },
        Variant(name: "gptq-v1-actorder", gptq: .v1, scaleDType: .f16) { _ in (4, 32, true, true) },
        Variant(name: "gptq-v1-asym-2bit", gptq: .v1, scaleDType: .f16) { _ in (2, nil, false, false) },
        Variant(name: "gptq-v2-3bit-short-group", gptq: .v2, scaleDType: .f16, maxShardSize: 60_000) { _ in (3, 48, false, false) },
        Variant(name: "gptq-v1-8bit", gptq: .v1, scaleDType: .f16) { _ in (8, 64, false, true) },
    ]

    func testQuantizedFoldersReadIdenticallyByNumpyReferenceAndQuantizedWeightSource() throws {
        let root = try QdistProcess.temporaryDirectory(self)
        let tiny = root.appendingPathComponent("tiny")
        let made = try QdistProcess.run(["tiny-model", tiny.path, "--arch", "qwen2", "--layers", "2", "--hidden", "64",
                                         "--heads", "4", "--kv-heads", "2", "--intermediate", "128", "--seed", "5"])
        XCTAssertEqual(made.status, 0, made.stderr)
        let config = try ModelConfiguration.load(from: tiny)
        let float = try CheckpointFolder(url: tiny)
        XCTAssertNil(try QuantizedWeightSource.open(folder: float, config: config), "an unquantized folder needs no wrapper")
        let tokenizerJSON = try JSONParser.parseFile(at: tiny.appendingPathComponent("tokenizer.json"))
        let tokenizerConfig = try JSONParser.parseFile(at: tiny.appendingPathComponent("tokenizer_config.json"))
        let script = QdistProcess.repositoryRoot.appendingPathComponent("Tests/Reference/quantized_reader.py").path
        let tokens = try BPETokenizer(folder: tiny).encode("Weights are stored with fewer bits.")

        for variant in variants {
            var rng = SeededGenerator(state: 42)
            var linears: [QuantizedLinearWeights] = []
            var quantizedNames = Set<String>()
            for (k, layer) in config.linearLayers.enumerated() {
                let s = variant.scheme(k)
                var gIdx: [Int32]?
                if s.actOrder, let group = s.group {
                    let perm = Array(0..<layer.inFeatures).shuffled(using: &rng)
                    var g = [Int32](repeating: 0, count: layer.inFeatures)
                    for (position, column) in perm.enumerated() { g[column] = Int32(position / group) }
                    gIdx = g
                }
                let bias = layer.hasBias ? try float.tensor("\(layer.name).bias") : nil
                linears.append(try QuantizedLinearWeights.referenceRoundToNearest(
                    name: layer.name, weight: float.tensor("\(layer.name).weight"), numBits: s.bits, groupSize: s.group,
                    symmetric: s.symmetric, gIdx: gIdx, bias: bias, scaleDType: variant.scaleDType,
                    minimumZero: variant.gptq == .v1 ? 1 : 0).roundingScales(to: variant.scaleDType))
                quantizedNames.formUnion(["\(layer.name).weight", "\(layer.name).bias"])
            }
            var others: [String: StoredTensor] = [:]
            for name in float.tensorNames where !quantizedNames.contains(name) { others[name] = try float.storedTensor(name) }
            let written = try variant.gptq.map {
                try GPTQFormat.write(linears, otherTensors: others, options: .init(checkpointFormat: $0, scaleDType: variant.scaleDType))
            } ?? CompressedTensorsFormat.write(linears, otherTensors: others, options: .init(scaleDType: variant.scaleDType))
            let out = root.appendingPathComponent(variant.name)
            try ModelFolderWriter(destination: out, maxShardSize: variant.maxShardSize).write(
                config: written.configuration(updating: config), tensors: written.entries, load: { written.tensors[$0]! },
                tokenizerJSON: tokenizerJSON, tokenizerConfig: tokenizerConfig, generationConfig: nil)
            var expected: [String: StoredTensor] = [:]
            for linear in linears { expected["\(linear.name).weight"] = StoredTensor(linear.dequantize(), as: .f32) }
            let expectedURL = root.appendingPathComponent("\(variant.name)-expected.safetensors")
            try SafetensorsWriter.write(expected, to: expectedURL)

            // 1. numpy, from the format description only.
            let py = try QdistProcess.runProcess(try QdistProcess.python(), [script, out.path, expectedURL.path],
                                                 environment: [:], timeout: 120)
            XCTAssertEqual(py.status, 0, "\(variant.name): \(py.stderr)")
            let summary = try QdistProcess.jsonObject(py)
            XCTAssertEqual(summary["linears"] as? Int, linears.count, variant.name)
            XCTAssertEqual(summary["max_abs_diff"] as? Double, 0, "\(variant.name): fp16/bf16 scale × small integer is exact")
            // The comparison is not vacuous: one weight off by a quantization step is caught.
            let victim = linears[linears.count / 2]
            var off = victim.dequantize()
            off.scalars[5] += victim.scales[0]
            expected["\(victim.name).weight"] = StoredTensor(off, as: .f32)
            try SafetensorsWriter.write(expected, to: expectedURL)
            let caught = try QdistProcess.runProcess(try QdistProcess.python(), [script, out.path, expectedURL.path],
                                                     environment: [:], timeout: 120)
            XCTAssertEqual(caught.status, 1, variant.name)
            XCTAssertTrue(caught.stderr.contains("\(victim.name): max |numpy − qdist|"), "\(variant.name): \(caught.stderr)")

            // 2. Our own reader, as `qdist eval/generate` will load the folder.
            let folder = try CheckpointFolder(url: out)
            if variant.maxShardSize < ShardedCheckpointWriter.defaultMaxShardSize { XCTAssertNotNil(folder.index, variant.name) }
            let reloaded = try ModelConfiguration.load(from: out)
            let source = try XCTUnwrap(QuantizedWeightSource.open(folder: folder, config: reloaded))
            for linear in linears {
                XCTAssertTrue(source.contains("\(linear.name).weight"))
                XCTAssertEqual(try source.tensor("\(linear.name).weight"), linear.dequantize(), "\(variant.name) \(linear.name)")
                if let bias = linear.bias { XCTAssertEqual(try source.tensor("\(linear.name).bias"), bias) }
            }
            XCTAssertEqual(try source.tensor("model.norm.weight"), try float.tensor("model.norm.weight"))
            var dequantized: [String: Tensor] = [:]
            for name in float.tensorNames { dequantized[name] = try float.tensor(name) }
            for linear in linears {
                dequantized["\(linear.name).weight"] = linear.dequantize()
                if let bias = linear.bias { dequantized["\(linear.name).bias"] = bias }
            }
            let viaSource = try LlamaModel.load(config: reloaded, from: source).logits(tokens)
            let viaMemory = try LlamaModel.load(config: config, from: InMemoryWeights(dequantized)).logits(tokens)
            XCTAssertEqual(viaSource, viaMemory, variant.name)
            XCTAssertTrue(viaSource.scalars.allSatisfy(\.isFinite))
            XCTAssertNoThrow(try ModelBundle.open(out.path), "the quantized folder is a complete model folder")
        }
    }

    func testUnsupportedQuantizationConfigInAFolderIsOneLineNamingItsConfigJSON() throws {
        let root = try QdistProcess.temporaryDirectory(self)
        let tiny = root.appendingPathComponent("tiny")
        XCTAssertEqual(try QdistProcess.run(["tiny-model", tiny.path, "--seed", "1"]).status, 0)
        var config = try ModelConfiguration.load(from: tiny)
        let configURL = tiny.appendingPathComponent("config.json")
        for (quantization, key) in [(["quant_method": "awq", "bits": 4] as JSONValue, "quant_method"),
                                    (["quant_method": "gptq", "bits": 6, "group_size": 128, "desc_act": false], "bits"),
                                    (["quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized", "config_groups": [:]], "format")] {
            config.quantizationConfig = quantization
            try config.write(to: configURL)
            XCTAssertThrowsError(try QuantizedWeightSource.open(folder: CheckpointFolder(url: tiny), config: ModelConfiguration.load(from: tiny))) { error in
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix("\(configURL.path): key \"quantization_config.\(key)\""), message)
                XCTAssertFalse(message.contains("\n"), message)
            }
        }
    }
}
