import Foundation
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// NF4/FP4 export end to end (issue 14): the `NF4`/`FP4` presets and `type: nf4` config groups,
/// the bitsandbytes 4-bit folder `qdist quantize --format bitsandbytes` writes, and its reading
/// back. The reference is `FourBitTensor` — the QLoRA codec already checked bit for bit against
/// bitsandbytes (NF4ReferenceTests, FourBitCodeBookTests) and a separate code path from the
/// quantize grid: every written tensor must be the bytes it gives for the original weight.
final class NF4QuantizeTests: XCTestCase {
    var dir: URL!
    var model: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = try QdistProcess.tinyModel(in: dir, seed: 7)
    }

    /// Equal arrays, or a failure that counts the differing entries (instead of printing both).
    func assertSame<T: Equatable>(_ a: [T], _ b: [T], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let differing = a.count == b.count ? zip(a, b).filter { $0 != $1 }.count : -1
        XCTAssertEqual(differing, 0, "\(what): \(differing < 0 ? "\(a.count) against \(b.count) entries" : "\(differing) of \(a.count) differ")",
                       file: file, line: line)
    }

    func decode(_ yaml: String) throws -> QuantizeJobConfig {
        try StrictYAML.decode(QuantizeJobConfig.self, from: yaml, path: "r.yaml")
    }

    func testPresetsAndConfigGroupsSpellBitsandbytesSettingsAndRejectWhatItCannotStore() throws {
        let nf4 = try XCTUnwrap(try decode("format: bitsandbytes\nrecipe: {QuantizationModifier: {scheme: NF4}}").recipe.modifier!.weightGroups.first)
        XCTAssertEqual(nf4.weights, WeightArgsConfig(numBits: 4, type: .nf4, symmetric: true, strategy: .group, groupSize: 64, doubleQuant: true))
        XCTAssertNil(nf4.inputActivations)
        let fp4 = try XCTUnwrap(try decode("recipe: {QuantizationModifier: {config_groups: {g: {weights: {type: fp4, double_quant: false}}}}}")
            .recipe.modifier!.weightGroups.first)
        XCTAssertEqual(fp4.weights, WeightArgsConfig(numBits: 4, type: .fp4, symmetric: true, strategy: .group, groupSize: 64, doubleQuant: false))
        for (weights, key) in [("{type: nf4, num_bits: 3}", "num_bits"), ("{type: nf4, group_size: 48}", "group_size"),
                               ("{type: nf4, symmetric: false}", "symmetric"), ("{type: fp4, strategy: channel}", "strategy"),
                               ("{num_bits: 4, double_quant: true}", "double_quant"), ("{type: nf4, actorder: group}", "actorder")] {
            XCTAssertThrowsError(try decode("recipe: {QuantizationModifier: {config_groups: {g: {weights: \(weights)}}}}"), weights) {
                XCTAssertTrue("\($0)".contains(key), "\(weights): \($0)")
            }
        }
        XCTAssertThrowsError(try decode("recipe: {QuantizationModifier: {config_groups: {g: {weights: {num_bits: 8}, input_activations: {type: nf4}}}}}")) {
            XCTAssertTrue("\($0)".contains("weight code book"), "\($0)")
        }
    }

    /// Quantizes the tiny model with `recipe` into `name` and opens the folder.
    func quantize(_ recipe: String, _ name: String) throws -> (URL, CheckpointFolder, QuantizedCheckpointReader) {
        let url = dir.appendingPathComponent("\(name).yaml"), out = dir.appendingPathComponent(name)
        try Data("format: bitsandbytes\nrecipe: {QuantizationModifier: \(recipe)}\n".utf8).write(to: url)
        let r = try QdistProcess.run(["quantize", "--config", url.path, "--model", model.path, "--output", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let folder = try CheckpointFolder(url: out)
        let reader = try XCTUnwrap(try QuantizedCheckpointReader.open(folder: folder, config: try ModelConfiguration.load(from: out)))
        return (out, folder, reader)
    }

    func testNF4FolderHoldsExactlyWhatBitsandbytesDoubleQuantizationGivesAndReadsBackBitForBit() throws {
        let (out, folder, reader) = try quantize("{scheme: NF4}", "nf4")
        let config = try JSONParser.parseFile(at: out.appendingPathComponent("config.json"))["quantization_config"]
        XCTAssertEqual(config?["quant_method"], "bitsandbytes")
        XCTAssertEqual(config?["load_in_4bit"], true)
        XCTAssertEqual(config?["load_in_8bit"], false)
        XCTAssertEqual(config?["bnb_4bit_quant_type"], "nf4")
        XCTAssertEqual(config?["bnb_4bit_use_double_quant"], true)
        XCTAssertEqual(config?["llm_int8_skip_modules"], ["lm_head"])
        let original = try CheckpointFolder(url: model)
        XCTAssertEqual(reader.modules.count, 14)
        for module in reader.modules {
            let w = try original.tensor(module + ".weight")
            let reference = FourBitTensor(quantizing: w, type: .nf4, blockSize: 64, doubleQuantize: true)
            guard case .doubleQuantized(let dq) = reference.absmax else { return XCTFail("reference is not double-quantized") }
            let weight = try folder.storedTensor(module + ".weight")
            XCTAssertEqual(weight.dtype, .u8)
            XCTAssertEqual(weight.shape, [w.count / 2, 1])
            assertSame(weight.bytes, reference.packed, "\(module): packed codes")
            assertSame(try folder.storedTensor(module + ".weight.absmax").bytes, dq.codes, "\(module): 8-bit absmax codes")
            XCTAssertEqual(try folder.tensor(module + ".weight.nested_absmax").scalars, dq.secondLevelAbsmax)
            XCTAssertEqual(try folder.tensor(module + ".weight.nested_quant_map").scalars, DynamicQuantizationMap.signed8Bit)
            XCTAssertEqual(try folder.tensor(module + ".weight.quant_map").scalars, FourBitQuantType.nf4Values)
            let state = try JSONParser.parse(String(decoding: try folder.storedTensor(module + ".weight.quant_state.bitsandbytes__nf4").bytes, as: UTF8.self))
            XCTAssertEqual(state.objectValue?.map(\.key), ["quant_type", "blocksize", "dtype", "shape", "nested_blocksize", "nested_dtype", "nested_offset"],
                           "bitsandbytes' as_dict order")
            XCTAssertEqual(state["shape"], .array([.integer(w.rows), .integer(w.columns)]))
            XCTAssertEqual(state["nested_offset"]?.doubleValue.map(Float.init), dq.offset)
            XCTAssertEqual(state["blocksize"], .integer(64))
            // Read back: the weight eval runs is the reference's dequantization, bit for bit.
            let back = try reader.linear(module).dequantize()
            assertSame(back.scalars.map(\.bitPattern), reference.dequantized().scalars.map(\.bitPattern), "\(module): dequantized")
        }
        let e = try QdistProcess.run(["eval", "--model", out.path, "--data", QdistProcess.wikitext("test").path, "--seq-len", "64", "--windows", "2", "--json"])
        XCTAssertEqual(e.status, 0, e.stderr)
    }

    func testFP4WithoutDoubleQuantizationStoresFloatAbsmaxAndTheSignedZeroCode() throws {
        let (_, folder, reader) = try quantize("{config_groups: {g: {weights: {type: fp4, double_quant: false}}}}", "fp4")
        let original = try CheckpointFolder(url: model)
        var negativeZeros = 0
        for module in reader.modules {
            let w = try original.tensor(module + ".weight")
            let reference = FourBitTensor(quantizing: w, type: .fp4, blockSize: 64, doubleQuantize: false)
            assertSame(try folder.storedTensor(module + ".weight").bytes, reference.packed, "\(module): packed codes")
            let absmax = try folder.storedTensor(module + ".weight.absmax")
            XCTAssertEqual(absmax.dtype, .f32)
            assertSame(absmax.toTensor().scalars, reference.blockAbsmax(), "\(module): absmax")
            XCTAssertFalse(folder.contains(module + ".weight.nested_absmax"))
            XCTAssertTrue(folder.contains(module + ".weight.quant_state.bitsandbytes__fp4"))
            assertSame(try reader.linear(module).dequantize().scalars.map(\.bitPattern), reference.dequantized().scalars.map(\.bitPattern), "\(module): dequantized")
            negativeZeros += reference.packed.reduce(0) { $0 + ($1 >> 4 == 8 ? 1 : 0) + ($1 & 0x0F == 8 ? 1 : 0) }
        }
        XCTAssertGreaterThan(negativeZeros, 0, "small negative weights take FP4's −0 (code 8), as bitsandbytes' CUDA kernel stores them")
    }

    func testOtherFormatsRefuseNF4AndBitsandbytesRefusesGroupsThatStraddleRows() throws {
        for (format, recipe, message) in [("compressed-tensors", "{scheme: NF4}", "--format bitsandbytes"),
                                          ("gptq", "{scheme: FP4}", "--format bitsandbytes"),
                                          ("bitsandbytes", "{config_groups: {g: {weights: {type: nf4, group_size: 128}}}}", "must divide the row")] {
            let url = dir.appendingPathComponent("\(format).yaml"), out = dir.appendingPathComponent(format)
            try Data("format: \(format)\nrecipe: {QuantizationModifier: \(recipe)}\n".utf8).write(to: url)
            let r = try QdistProcess.run(["quantize", "--config", url.path, "--model", model.path, "--output", out.path])
            XCTAssertEqual(r.status, 1, format)
            XCTAssertTrue(r.stderr.contains(message), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        }
    }

    /// GPTQ runs on the NF4 grid too (its error feedback rounds onto the code book), and the
    /// result is still a bitsandbytes folder; on calibration data it beats round-to-nearest's
    /// output error.
    func testGPTQOnTheNF4GridWritesABitsandbytesFolder() throws {
        let (_, _, reader) = try quantize("{scheme: NF4}", "rtn")
        let url = dir.appendingPathComponent("gptq.yaml"), out = dir.appendingPathComponent("gptq")
        try Data("""
            format: bitsandbytes
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 4, seq_len: 64, seed: 1}
            recipe: {GPTQModifier: {scheme: NF4}}
            """.utf8).write(to: url)
        let r = try QdistProcess.run(["quantize", "--config", url.path, "--model", model.path, "--output", out.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let gptq = try XCTUnwrap(try QuantizedCheckpointReader.open(folder: try CheckpointFolder(url: out), config: try ModelConfiguration.load(from: out)))
        XCTAssertEqual(gptq.modules, reader.modules)
        var differing = 0
        for m in reader.modules where try gptq.linear(m).codes != reader.linear(m).codes { differing += 1 }
        XCTAssertGreaterThan(differing, 0, "GPTQ's error feedback changes codes")
        let report = try JSONParser.parseFile(at: out.appendingPathComponent("quantization_report.json"))
        XCTAssertNotNil(report["layers"]?.arrayValue?.first?["gptq_loss"]?.doubleValue, "GPTQ ran on every layer")
    }
}
