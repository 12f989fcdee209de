import QDistIO
import QDistTensor
import XCTest
@testable import QDistQuant

/// compressed-tensors' legacy sparse layouts byte for byte: FORMATS.md §12.4's worked example
/// (checked there against compressed-tensors 0.14 itself) in both formats, the round trip back to
/// the dense bytes, and the one-line refusals of damaged parts.
final class CompressedTensorsSparsityTests: XCTestCase {
    /// bf16 W of the worked example, (2, 12).
    let example: [Float] = [0, 1.5, 0, -2, 3, 0, 0, 4, 0, 0, 5, 6,
                            7, 0, 8, 0, 0, 0, -1, 2, 9, 0, 0, 0]
    var weight: StoredTensor { StoredTensor(Tensor(shape: [2, 12], scalars: example), as: .bf16) }

    func bf16(_ values: [Float], _ shape: [Int]) -> StoredTensor { StoredTensor(Tensor(shape: shape, scalars: values), as: .bf16) }
    func i64(_ values: [Int64], _ shape: [Int]) -> StoredTensor { .int64(values, shape: shape) }
    func u8(_ values: [UInt8], _ shape: [Int]) -> StoredTensor { StoredTensor(dtype: .u8, shape: shape, bytes: values) }

    func testTheWorkedExampleCompressesToTheDocumentedSparse24BitmaskBytes() throws {
        let t = try CompressedTensorsSparsity.compress(weight, module: "m", format: .twoOfFour)
        XCTAssertEqual(Set(t.keys), ["m.shape", "m.compressed", "m.bitmask"])
        // Row 1's last group [9,0,0,0] keeps column 10 as its second value (the tie), stored +0.0.
        XCTAssertEqual(t["m.compressed"], bf16([1.5, -2, 3, 4, 5, 6, 7, 8, -1, 2, 9, 0], [2, 6]))
        XCTAssertEqual(t["m.compressed"]?.bytes.suffix(2), [0, 0], "+0.0, never −0.0")
        XCTAssertEqual(t["m.bitmask"], u8([154, 12, 197, 5], [2, 2]))
        XCTAssertEqual(t["m.shape"], i64([2, 12], [2, 1]))
    }

    func testTheWorkedExampleCompressesToTheDocumentedSparseBitmaskBytes() throws {
        let t = try CompressedTensorsSparsity.compress(weight, module: "m", format: .bitmask)
        XCTAssertEqual(Set(t.keys), ["m.shape", "m.compressed", "m.bitmask", "m.row_offsets"])
        XCTAssertEqual(t["m.compressed"], bf16([1.5, -2, 3, 4, 5, 6, 7, 8, -1, 2, 9], [11]))
        XCTAssertEqual(t["m.bitmask"], u8([154, 12, 197, 1], [2, 2]))
        XCTAssertEqual(t["m.row_offsets"], i64([0, 6], [2]))
        XCTAssertEqual(t["m.shape"], i64([2, 12], [2]))
    }

    func testBothFormatsDecompressToTheDenseBytesAndNegativeZeroComesBackPositive() throws {
        var signed = example
        signed[0] = -0.0  // compressed-tensors' `!= 0` counts −0.0 as a zero: it is not stored
        for format in [CompressedTensorsSparsity.Format.bitmask, .twoOfFour] {
            let t = try CompressedTensorsSparsity.compress(bf16(signed, [2, 12]), module: "m", format: format)
            let parts = CompressedTensorsSparsity.CompressedWeight(shape: t["m.shape"]!, compressed: t["m.compressed"]!,
                                                                   bitmask: t["m.bitmask"]!, rowOffsets: t["m.row_offsets"])
            let dense = try CompressedTensorsSparsity.decompress(parts, format: format) { QDistIOError(.config, path: "f", "\($0): \($1)") }
            XCTAssertEqual(dense, weight, format.rawValue)
        }
    }

    func testGroupsWithFewerThanTwoNonzerosKeepTheZerosTorchsCPUTopkKeeps() throws {
        // Each row holds one group: all zeros, then a single nonzero at inputs 0, 1, 2, 3.
        let rows: [Float] = [0, 0, 0, 0, 5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 5]
        let t = try CompressedTensorsSparsity.compress(bf16(rows, [5, 4]), module: "m", format: .twoOfFour)
        XCTAssertEqual(t["m.bitmask"]?.bytes, [0b1100, 0b0101, 0b1010, 0b1100, 0b1100])
        XCTAssertEqual(t["m.compressed"], bf16([0, 0, 5, 0, 5, 0, 5, 0, 0, 5], [5, 2]))
    }

    func testInt8CodesCompressAsTheyAreAndTheTwoOfFourPatternIsNeverForced() throws {
        let codes: [Int8] = [0, -3, 0, 127, -128, 0, 0, 1]
        let w = StoredTensor(dtype: .i8, shape: [1, 8], bytes: codes.map { UInt8(bitPattern: $0) })
        let t = try CompressedTensorsSparsity.compress(w, module: "m", format: .twoOfFour)
        XCTAssertEqual(t["m.compressed"]?.bytes, [-3, 127, -128, 1].map { UInt8(bitPattern: Int8($0)) })
        XCTAssertEqual(t["m.compressed"]?.dtype, .i8)
        XCTAssertThrowsError(try CompressedTensorsSparsity.compress(bf16([1, 2, 3, 0], [1, 4]), module: "model.layers.0.mlp.up_proj", format: .twoOfFour)) {
            XCTAssertEqual("\($0)", "model.layers.0.mlp.up_proj: row 0, inputs 0…3 hold 3 nonzero values; sparse-24-bitmask keeps 2 of every 4 (the weight is not 2:4)")
        }
        XCTAssertThrowsError(try CompressedTensorsSparsity.compress(bf16([0, 0, 0, 0, 0, 0], [1, 6]), module: "m", format: .twoOfFour))
    }

    /// The example's parts in `format`, with `edit` applied, read back from a source named like
    /// a checkpoint file.
    func read(_ format: CompressedTensorsSparsity.Format, prefix: String = "model.layers.0.mlp.up_proj",
              edit: (inout [String: StoredTensor]) -> Void = { _ in }) throws -> StoredTensor {
        var parts: [String: StoredTensor] = [:]
        for (k, v) in try CompressedTensorsSparsity.compress(weight, module: "m", format: format) {
            parts[prefix + k.dropFirst(1)] = v
        }
        edit(&parts)
        let source = try SparseDecompressedTensors(base: InMemoryStoredTensors(parts, sourcePath: "/ckpt/model.safetensors"), format: format)
        return try source.storedTensor("model.layers.0.mlp.up_proj.weight")
    }

    func testTheDecompressingSourceShowsTheDenseWeightUnderBothNamingGenerationsAndHidesTheParts() throws {
        for format in [CompressedTensorsSparsity.Format.bitmask, .twoOfFour] {
            for prefix in ["model.layers.0.mlp.up_proj", "model.layers.0.mlp.up_proj.weight"] {
                XCTAssertEqual(try read(format, prefix: prefix), weight, "\(format.rawValue) \(prefix)")
            }
        }
        var parts = try CompressedTensorsSparsity.compress(weight, module: "a", format: .twoOfFour)
        parts["a.weight_scale"] = bf16([1, 1], [2, 1])
        let source = try SparseDecompressedTensors(base: InMemoryStoredTensors(parts), format: .twoOfFour)
        XCTAssertEqual(source.tensorNames, ["a.weight_scale", "a.weight"])
        XCTAssertFalse(source.contains("a.bitmask"))
        XCTAssertEqual(source.compressedWeights, ["a.weight"])
    }

    /// A damaged part is one line naming the checkpoint file and the tensor.
    func assertRefused(_ format: CompressedTensorsSparsity.Format, _ expected: String,
                       file: StaticString = #filePath, line: UInt = #line, edit: (inout [String: StoredTensor]) -> Void) {
        XCTAssertThrowsError(try read(format, edit: edit), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("/ckpt/model.safetensors: tensor \"model.layers.0.mlp.up_proj."), text, file: file, line: line)
            XCTAssertTrue(text.contains(expected), text, file: file, line: line)
            XCTAssertFalse(text.contains("\n"), file: file, line: line)
        }
    }

    func testDamagedPartsAreRefusedInOneLineNamingTheFileAndTensor() {
        let m = "model.layers.0.mlp.up_proj"
        // One bit too many: the popcount no longer matches the stored values.
        assertRefused(.bitmask, "up_proj.compressed\": expected [12] values (the bitmask sets 12 bits), found [11]") {
            $0["\(m).bitmask"] = self.u8([155, 12, 197, 1], [2, 2])
        }
        assertRefused(.bitmask, "up_proj.bitmask\": expected U8 [2, 2]") { $0["\(m).bitmask"] = self.u8([154, 12, 197, 1], [1, 4]) }
        assertRefused(.bitmask, "past column 11") { $0["\(m).bitmask"] = self.u8([154, 12, 197, 0x11], [2, 2]) }
        assertRefused(.bitmask, "row 1 starts at 5") { $0["\(m).row_offsets"] = self.i64([0, 5], [2]) }
        assertRefused(.bitmask, "row_offsets\" is missing") { $0["\(m).row_offsets"] = nil }
        assertRefused(.bitmask, "up_proj.shape\": expected the dense shape") { $0["\(m).shape"] = self.i64([2, 12, 1], [3]) }
        assertRefused(.twoOfFour, "up_proj.shape\": expected the dense shape") { $0["\(m).shape"] = self.i64([2, .max], [2, 1]) }
        assertRefused(.twoOfFour, "inputs 8…11 keep 1 values") { $0["\(m).bitmask"] = self.u8([154, 12, 197, 1], [2, 2]) }
        assertRefused(.twoOfFour, "up_proj.bitmask\": expected U8 [2, 2]") { $0["\(m).bitmask"] = self.u8([154, 12], [1, 2]) }
        assertRefused(.twoOfFour, "expected [2, 6] (two values kept of every four), found [12]") {
            $0["\(m).compressed"] = self.bf16([Float](repeating: 1, count: 12), [12])
        }
        assertRefused(.twoOfFour, "U8 values") { $0["\(m).compressed"] = self.u8([UInt8](repeating: 1, count: 12), [2, 6]) }
        assertRefused(.twoOfFour, "stores \"model.layers.0.mlp.up_proj.weight\" dense") { $0["\(m).weight"] = self.weight }
        assertRefused(.twoOfFour, "compressed values without a bitmask") { $0["\(m).bitmask"] = nil }
    }

    func testTheSparsityConfigIsReadStrictlyAndWrittenAsCompressedTensors014Did() throws {
        func config(_ sparsity: JSONValue, groups: JSONValue? = nil) -> JSONValue {
            var pairs: [(key: String, value: JSONValue)] = [(key: "quant_method", value: "compressed-tensors"), (key: "sparsity_config", value: sparsity)]
            if let groups { pairs.append((key: "config_groups", value: groups)) }
            return .object(pairs)
        }
        let read = { (v: JSONValue) in try CompressedTensorsSparsityConfig.storedFormat(quantizationConfig: v, configPath: "config.json") }
        XCTAssertEqual(try read(config(["format": "sparse-24-bitmask"])), .twoOfFour)
        XCTAssertEqual(try read(config(["format": "sparse-bitmask"])), .bitmask)
        XCTAssertNil(try read(config(["format": "dense"])))
        XCTAssertNil(try read(config([:])))
        XCTAssertThrowsError(try read(config(["format": "marlin-24"]))) {
            XCTAssertTrue("\($0)".hasPrefix("config.json: key \"quantization_config.sparsity_config.format\""), "\($0)")
        }
        XCTAssertTrue(CompressedTensorsSparsityConfig.describesOnlySparsity(config(["format": "dense"])))
        XCTAssertFalse(CompressedTensorsSparsityConfig.describesOnlySparsity(config(["format": "dense"], groups: ["g": [:]])))
        XCTAssertNil(try QuantizedCheckpointReader(quantizationConfig: config(["format": "sparse-bitmask"]), configPath: "config.json",
                                                   source: InMemoryStoredTensors([:])), "a sparse-only config quantizes nothing")

        let linears = (0..<2).flatMap { b in ["q_proj", "down_proj"].map { "model.layers.\(b).\($0)" } } + ["lm_head"]
        let most = CompressedTensorsSparsityConfig.targetsAndIgnore(linears: linears, sparse: Set(linears.filter { $0.hasSuffix("q_proj") || $0.contains("1.down") }))
        XCTAssertEqual(most.targets, ["Linear"])
        XCTAssertEqual(most.ignore, ["model.layers.0.down_proj", "lm_head"])
        let few = CompressedTensorsSparsityConfig.targetsAndIgnore(linears: linears, sparse: ["model.layers.1.q_proj"])
        XCTAssertEqual(few.targets, ["model.layers.1.q_proj"])
        XCTAssertEqual(few.ignore.count, 4)

        let written = CompressedTensorsSparsityConfig(format: .bitmask, globalSparsity: 0.25, structure: "0:0", targets: ["Linear"], ignore: ["lm_head"])
        XCTAssertEqual(String(decoding: written.sparsityOnlyQuantizationConfig.serialized(), as: UTF8.self),
                       #"{"version":"0.14.0","quant_method":"compressed-tensors","sparsity_config":{"format":"sparse-bitmask","global_sparsity":0.25,"ignore":["lm_head"],"registry_requires_subclass":false,"sparsity_structure":"0:0","targets":["Linear"]},"transform_config":{}}"#)
    }
}
