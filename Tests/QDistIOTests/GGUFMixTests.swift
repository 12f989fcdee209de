import Foundation
import QDistIO
import QDistTensor
import XCTest

/// `GGUFMix` against llama.cpp itself: `Fixtures/gguf_mix_expected.json` holds what
/// `llama-quantize --dry-run` chose for every tensor of four models (real SmolLM2-135M with
/// rows that force the fallbacks, a small untied model with 256-multiple rows, an 80-layer
/// model llama.cpp classes as 70B, and one whose rows are not even a multiple of 32), for every
/// offered mix, with and without an imatrix and with the override flags.
/// `Tests/Reference/gguf_mix_expected.py` regenerates it; CI has no llama.cpp, so the fixture
/// is the reference.
final class GGUFMixTests: XCTestCase {
    private struct Fixture: Decodable {
        let llama_cpp: String
        let models: [FixtureModel]
    }

    private struct FixtureModel: Decodable {
        let name: String
        let layers: Int
        let heads: Int
        let kv_heads: Int
        let tensors: [FixtureTensor]
        let cases: [FixtureCase]

        var model: GGUFMix.Model { GGUFMix.Model(layerCount: layers, headCount: heads, kvHeadCount: kv_heads) }
    }

    /// `[name, [dims…], "TYPE"]`, as the script writes it.
    private struct FixtureTensor: Decodable {
        let spec: GGUFWriter.TensorSpec

        init(from decoder: Decoder) throws {
            var c = try decoder.unkeyedContainer()
            let name = try c.decode(String.self)
            let dims = try c.decode([Int].self)
            let typeName = try c.decode(String.self)
            guard let type = GGMLType(name: typeName) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "unknown ggml type \(typeName)")
            }
            spec = GGUFWriter.TensorSpec(name: name, dims: dims, type: type)
        }
    }

    private struct FixtureCase: Decodable {
        let mix: String
        let imatrix: Bool
        let pure: Bool
        let leave_output: Bool
        let output_type: String?
        let token_embedding_type: String?
        let types: String

        var label: String {
            var parts = [mix]
            if imatrix { parts.append("--imatrix") }
            if pure { parts.append("--pure") }
            if leave_output { parts.append("--leave-output-tensor") }
            if let t = output_type { parts.append("--output-tensor-type \(t)") }
            if let t = token_embedding_type { parts.append("--token-embedding-type \(t)") }
            return parts.joined(separator: " ")
        }

        func options() throws -> GGUFMix.Options {
            func type(_ name: String?) throws -> GGMLType? {
                guard let name else { return nil }
                return try XCTUnwrap(GGMLType(name: name), "fixture names unknown type \(name)")
            }
            return GGUFMix.Options(hasImportanceMatrix: imatrix, pure: pure, outputType: try type(output_type),
                                   tokenEmbeddingType: try type(token_embedding_type), quantizeOutput: !leave_output)
        }
    }

    private static func loadFixture() throws -> Fixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/gguf_mix_expected.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    private func model(_ name: String, in fixture: Fixture) throws -> FixtureModel {
        try XCTUnwrap(fixture.models.first { $0.name == name }, "fixture lacks model \(name)")
    }

    // MARK: - Agreement with llama-quantize

    func testEveryMixPicksLlamaQuantizesTypeForEveryTensorOfEveryFixtureModel() throws {
        let fixture = try Self.loadFixture()
        var compared = 0
        for m in fixture.models {
            let specs = m.tensors.map(\.spec)
            for c in m.cases {
                let expected = c.types.split(separator: " ").map(String.init)
                XCTAssertEqual(expected.count, specs.count, "\(m.name) \(c.label): fixture row length")
                let mix = try GGUFMix(name: c.mix)
                let got = try mix.tensorTypes(for: specs, model: m.model, options: try c.options()).map(\.traits.name)
                let wrong = zip(specs.indices, zip(got, expected)).filter { $0.1.0 != $0.1.1 }
                XCTAssertTrue(wrong.isEmpty, "\(m.name) \(c.label) (\(fixture.llama_cpp)): \(wrong.count) tensors differ, e.g. "
                    + wrong.prefix(5).map { "\(specs[$0.0].name) qdist \($0.1.0) llama.cpp \($0.1.1)" }.joined(separator: "; "))
                compared += specs.count
            }
        }
        XCTAssertGreaterThanOrEqual(compared, 25_000, "the fixture should cover every model × run (25,009 tensor decisions when generated)")
    }

    func testFixtureCoversEveryOfferedMixWithAndWithoutImatrix() throws {
        let fixture = try Self.loadFixture()
        for name in ["smollm2-135m", "tiny-untied"] {
            let cases = try model(name, in: fixture).cases
            for mix in GGUFMix.allCases {
                for imatrix in [false, true] {
                    XCTAssertTrue(cases.contains { $0.mix == mix.name && $0.imatrix == imatrix && !$0.pure && $0.output_type == nil },
                                  "\(name): no llama-quantize run for \(mix.name) imatrix=\(imatrix); rerun gguf_mix_expected.py")
                }
            }
        }
    }

    func testTensorOrderInTheListDoesNotChangeTheChoice() throws {
        // llama.cpp sorts by layer number before counting attn_v/ffn_down, so the file order
        // (SmolLM2's is blk.0, blk.1, blk.10, …) must not matter.
        let m = try model("tiny-untied", in: Self.loadFixture())
        let specs = m.tensors.map(\.spec)
        var generator = SeededGenerator(seed: 20261207)
        let shuffled = specs.shuffled(using: &generator)
        for mix in [GGUFMix.q4_K_M, .q3_K_M, .q4_K_S, .q5_K_M] {
            let inOrder = Dictionary(uniqueKeysWithValues: zip(specs.map(\.name), try mix.tensorTypes(for: specs, model: m.model)))
            let reordered = Dictionary(uniqueKeysWithValues: zip(shuffled.map(\.name), try mix.tensorTypes(for: shuffled, model: m.model)))
            XCTAssertEqual(inOrder, reordered, "\(mix.name)")
        }
    }

    func testEightyLayerGroupedQueryModelIsClassedAs70B() {
        XCTAssertTrue(GGUFMix.Model(layerCount: 80, headCount: 64, kvHeadCount: 8).is70B)
        XCTAssertFalse(GGUFMix.Model(layerCount: 80, headCount: 64, kvHeadCount: 64).is70B, "llama.cpp calls that 65B")
        XCTAssertFalse(GGUFMix.Model(layerCount: 32, headCount: 32, kvHeadCount: 8).is70B)
    }

    func testGGUFTensorInfosGiveTheSameTypesAsSpecs() throws {
        let m = try model("smollm2-135m", in: Self.loadFixture())
        let specs = m.tensors.map(\.spec)
        let infos = specs.map { GGUFTensorInfo(name: $0.name, dims: $0.dims, type: $0.type, offset: 0) }
        XCTAssertEqual(try GGUFMix.q4_K_M.tensorTypes(for: infos, model: m.model),
                       try GGUFMix.q4_K_M.tensorTypes(for: specs, model: m.model))
    }

    // MARK: - Names and numbers

    func testMixNamesParseCaseInsensitivelyWithAliasesAndFileTypeNumbers() throws {
        XCTAssertEqual(try GGUFMix(name: "q4_k_m"), .q4_K_M)
        XCTAssertEqual(try GGUFMix(name: "Q4_K"), .q4_K_M)
        XCTAssertEqual(try GGUFMix(name: "q3_k"), .q3_K_M)
        XCTAssertEqual(try GGUFMix(name: "Q5_K"), .q5_K_M)
        XCTAssertEqual(try GGUFMix(name: "bf16"), .bf16)
        XCTAssertEqual(try GGUFMix(name: "15"), .q4_K_M)
        for mix in GGUFMix.allCases {
            XCTAssertEqual(try GGUFMix(name: mix.name.lowercased()), mix)
            XCTAssertEqual(GGUFMix(fileType: mix.fileType), mix)
        }
        XCTAssertNil(GGUFMix(fileType: 30), "IQ4_XS is not offered")
    }

    func testFileTypesAndDefaultTypesAreLlamaCpps() {
        // include/llama.h `llama_ftype` and llama-quant.cpp `llama_ftype_get_default_type`.
        let expected: [GGUFMix: (UInt32, GGMLType)] = [
            .f32: (0, .f32), .f16: (1, .f16), .q4_0: (2, .q4_0), .q4_1: (3, .q4_1), .q8_0: (7, .q8_0),
            .q5_0: (8, .q5_0), .q5_1: (9, .q5_1), .q2_K: (10, .q2_K), .q3_K_S: (11, .q3_K), .q3_K_M: (12, .q3_K),
            .q3_K_L: (13, .q3_K), .q4_K_S: (14, .q4_K), .q4_K_M: (15, .q4_K), .q5_K_S: (16, .q5_K),
            .q5_K_M: (17, .q5_K), .q6_K: (18, .q6_K), .q2_K_S: (21, .q2_K), .bf16: (32, .bf16),
            .tq1_0: (36, .tq1_0), .tq2_0: (37, .tq2_0),
        ]
        XCTAssertEqual(expected.count, GGUFMix.allCases.count)
        for (mix, (fileType, type)) in expected {
            XCTAssertEqual(mix.fileType, fileType, mix.name)
            XCTAssertEqual(mix.defaultType, type, mix.name)
        }
    }

    // MARK: - Errors

    func testUnknownMixNameThrowsListingTheValidNames() {
        XCTAssertThrowsError(try GGUFMix(name: "Q4_K_X")) { error in
            let e = error as? GGUFMixError
            XCTAssertEqual(e?.kind, .unknownMix)
            let text = e?.description ?? ""
            XCTAssertTrue(text.contains("\"Q4_K_X\""), text)
            for mix in GGUFMix.allCases { XCTAssertTrue(text.contains(mix.name), "\(mix.name) missing from: \(text)") }
        }
        XCTAssertThrowsError(try GGUFMix(name: "")) { XCTAssertEqual(($0 as? GGUFMixError)?.kind, .unknownMix) }
        XCTAssertThrowsError(try GGUFMix(name: "99")) { XCTAssertEqual(($0 as? GGUFMixError)?.kind, .unknownMix) }
    }

    func testIQAndOtherLlamaMixesQdistCannotEncodeAreRefusedNotApproximated() {
        for name in ["IQ4_XS", "iq2_xxs", "IQ3_M", "MXFP4_MOE", "COPY", "Q1_0"] {
            XCTAssertThrowsError(try GGUFMix(name: name), name) { error in
                XCTAssertEqual((error as? GGUFMixError)?.kind, .unsupportedMix, name)
                XCTAssertTrue("\(error)".contains("not offered"), "\(error)")
            }
        }
    }

    func testDuplicateAndMixtureOfExpertsTensorsAreRefused() {
        let model = GGUFMix.Model(layerCount: 1, headCount: 4, kvHeadCount: 4)
        let q = GGUFWriter.TensorSpec(name: "blk.0.attn_q.weight", dims: [256, 256], type: .f32)
        XCTAssertThrowsError(try GGUFMix.q4_K_M.tensorTypes(for: [q, q], model: model)) {
            XCTAssertEqual(($0 as? GGUFMixError)?.kind, .unsupportedTensors)
        }
        let experts = GGUFWriter.TensorSpec(name: "blk.0.ffn_down_exps.weight", dims: [256, 256, 8], type: .f32)
        XCTAssertThrowsError(try GGUFMix.q4_K_M.tensorTypes(for: [experts], model: model)) {
            XCTAssertEqual(($0 as? GGUFMixError)?.kind, .unsupportedTensors)
            XCTAssertTrue("\($0)".contains("mixture-of-experts"), "\($0)")
        }
    }

    func testOutputTypeWithoutAFallbackForTheRowLengthThrowsInsteadOfWritingAnImpossibleTensor() {
        // Tied embeddings take --output-tensor-type through llama.cpp's rules and then the
        // fallback, which has no entry for Q8_K (256-blocks) on rows of 576.
        let model = GGUFMix.Model(layerCount: 1, headCount: 9, kvHeadCount: 3)
        let embedding = GGUFWriter.TensorSpec(name: "token_embd.weight", dims: [576, 1000], type: .f32)
        XCTAssertThrowsError(try GGUFMix.q4_K_M.tensorTypes(for: [embedding], model: model, options: .init(outputType: .q8_K))) {
            XCTAssertEqual(($0 as? GGUFMixError)?.kind, .unsupportedTensors)
            XCTAssertTrue("\($0)".contains("no fallback"), "\($0)")
        }
    }

    func testOnlyQ2KTensorsOfQ2KSNeedAnImportanceMatrix() {
        XCTAssertTrue(GGUFMix.q2_K_S.requiresImportanceMatrix(tensorName: "blk.3.ffn_up.weight", type: .q2_K))
        XCTAssertFalse(GGUFMix.q2_K_S.requiresImportanceMatrix(tensorName: "blk.3.ffn_down.weight", type: .q4_K))
        XCTAssertFalse(GGUFMix.q2_K_S.requiresImportanceMatrix(tensorName: "output.weight", type: .q2_K))
        XCTAssertFalse(GGUFMix.q2_K.requiresImportanceMatrix(tensorName: "blk.3.ffn_up.weight", type: .q2_K))
    }
}
