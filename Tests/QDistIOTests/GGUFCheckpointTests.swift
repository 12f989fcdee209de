import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest

/// `GGUFCheckpoint`: Hugging Face names, layout and configuration from tiny models written by
/// gguf-py, with the Q/K permutation applied by a verbatim copy of convert_hf_to_gguf's
/// `LlamaModel.permute` (Tests/Reference/gguf_reference.py).
final class GGUFCheckpointTests: XCTestCase {
    /// Writes the `arch` model; returns it opened and the HF-layout tensors it must give back.
    private func model(_ arch: String) throws -> (GGUFCheckpoint, SafetensorsReader) {
        let dir = try QdistProcess.temporaryDirectory(self)
        try GGUFReference.run(["model", dir.path, arch])
        return (try GGUFCheckpoint(url: dir.appendingPathComponent("model.gguf")),
                try SafetensorsReader(url: dir.appendingPathComponent("expected.safetensors")))
    }

    func testLlamaTensorsComeBackInHuggingFaceNamesLayoutAndRowOrder() throws {
        let (checkpoint, expected) = try model("llama")
        XCTAssertEqual(Set(checkpoint.tensorNames), Set(expected.tensorNames))
        XCTAssertEqual(checkpoint.unmappedTensorNames, ["rope_freqs.weight"])
        for name in expected.tensorNames {
            XCTAssertTrue(checkpoint.contains(name), name)
            let ours = try checkpoint.tensor(name), reference = try expected.tensor(name)
            XCTAssertEqual(ours.shape, reference.shape, name)
            // F32 tensors round-trip exactly; quantized ones equal gguf-py's dequantization of
            // the unpermuted weight (rows quantize independently), also exactly.
            GGUFDequantizeTests.assertBitIdentical(ours.scalars, reference.scalars, name)
        }
        XCTAssertEqual(try checkpoint.tensor("model.layers.0.self_attn.q_proj.weight").shape, [256, 256])
        XCTAssertEqual(try checkpoint.tensor("model.layers.0.self_attn.k_proj.weight").shape, [128, 256])
        XCTAssertEqual(checkpoint.ggufName(for: "lm_head.weight"), "output.weight")
        XCTAssertFalse(checkpoint.contains("model.layers.2.self_attn.q_proj.weight"))
        XCTAssertThrowsError(try checkpoint.tensor("rope_freqs.weight")) { error in
            XCTAssertEqual((error as? QDistIOError)?.kind, .notFound)
        }
    }

    func testLlamaWithoutUnpermutingWouldDifferSoThePermutationIsReallyExercised() throws {
        let (checkpoint, expected) = try model("llama")
        let stored = try checkpoint.file.tensor("blk.0.attn_q.weight")
        let original = try expected.tensor("model.layers.0.self_attn.q_proj.weight")
        XCTAssertNotEqual(stored, original)
        XCTAssertEqual(GGUFRopePermutation.toGGUF(original, heads: 2), stored, "Swift forward permute = converter's")
    }

    func testLlamaConfigurationComesFromMetadataAndTensors() throws {
        let (checkpoint, _) = try model("llama")
        let c = checkpoint.config
        XCTAssertEqual(c.modelType, "llama")
        XCTAssertEqual(c.architectures, ["LlamaForCausalLM"])
        XCTAssertEqual(c.hiddenSize, 256)
        XCTAssertEqual(c.intermediateSize, 320)
        XCTAssertEqual(c.numHiddenLayers, 2)
        XCTAssertEqual(c.numAttentionHeads, 2)
        XCTAssertEqual(c.numKeyValueHeads, 1)
        XCTAssertEqual(c.headDim, 128)
        XCTAssertEqual(c.vocabSize, 64, "from the token list")
        XCTAssertEqual(c.maxPositionEmbeddings, 4096)
        XCTAssertEqual(c.ropeTheta, 500000)
        XCTAssertEqual(c.rmsNormEps, 1e-5, "float32 1e-5 comes back as the decimal the converter wrote")
        XCTAssertFalse(c.tieWordEmbeddings)
        XCTAssertFalse(c.attentionBias)
        XCTAssertEqual(c.bosTokenId, 1)
        XCTAssertEqual(c.eosTokenIds, [2])
        XCTAssertEqual(c.ropeScaling, ModelConfiguration.RopeScaling(
            ropeType: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192),
            "recovered from rope_freqs.weight")
    }

    func testQwen2IsStoredUnpermutedWithBiasesAndTiedEmbeddings() throws {
        let (checkpoint, expected) = try model("qwen2")
        XCTAssertEqual(Set(checkpoint.tensorNames), Set(expected.tensorNames))
        for name in expected.tensorNames {
            GGUFDequantizeTests.assertBitIdentical(try checkpoint.tensor(name).scalars, try expected.tensor(name).scalars, name)
        }
        let c = checkpoint.config
        XCTAssertEqual(c.modelType, "qwen2")
        XCTAssertEqual([c.hiddenSize, c.numAttentionHeads, c.numKeyValueHeads, c.headDim, c.vocabSize], [128, 4, 2, 32, 48])
        XCTAssertTrue(c.tieWordEmbeddings, "no output.weight")
        XCTAssertFalse(checkpoint.contains("lm_head.weight"))
        XCTAssertTrue(c.attentionBias)
        XCTAssertEqual(c.ropeTheta, 1_000_000)
        XCTAssertEqual(c.rmsNormEps, 1e-6)
        XCTAssertNil(c.ropeScaling)
        XCTAssertTrue(checkpoint.contains("model.layers.1.self_attn.k_proj.bias"))
    }

    func testTokenizerMetadataIsTyped() throws {
        let (checkpoint, _) = try model("llama")
        let t = checkpoint.tokenizer
        XCTAssertEqual(t.model, "gpt2")
        XCTAssertEqual(t.preTokenizer, "smollm")
        XCTAssertEqual(t.tokens.count, 64)
        XCTAssertEqual(t.tokens[5], "tok5")
        XCTAssertEqual(t.merges, ["t o", "to k"])
        XCTAssertEqual(Array(t.tokenTypes.prefix(3)), [3, 3, 1])
        XCTAssertEqual(t.bosTokenId, 1)
        XCTAssertEqual(t.eosTokenId, 2)
        XCTAssertNil(t.unknownTokenId)
        XCTAssertEqual(t.addBosToken, false)
        XCTAssertEqual(t.chatTemplate, "{{ messages }}")
    }

    func testUnpermutingInvertsTheConverterPermutationForWeightsAndBiases() {
        for (rows, heads) in [(8, 1), (24, 3), (64, 4)] {
            let cols = 5
            let w = Tensor(shape: [rows, cols], scalars: (0..<rows * cols).map(Float.init))
            let permuted = GGUFRopePermutation.toGGUF(w, heads: heads)
            XCTAssertEqual(GGUFRopePermutation.toHuggingFace(permuted, heads: heads), w)
            // Index form of FORMATS.md §2.5: GGUF row h·hd + 2j + p = HF row h·hd + p·hd/2 + j.
            let hd = rows / heads
            for h in 0..<heads { for j in 0..<hd / 2 { for p in 0..<2 {
                XCTAssertEqual(permuted[h * hd + 2 * j + p, 0], w[h * hd + p * hd / 2 + j, 0])
            } } }
            let bias = Tensor(shape: [rows], scalars: (0..<rows).map(Float.init))
            XCTAssertEqual(GGUFRopePermutation.toHuggingFace(GGUFRopePermutation.toGGUF(bias, heads: heads), heads: heads), bias)
        }
    }

    func testNameTableMapsBothWaysAndLeavesOthersOut() {
        let pairs = [
            ("token_embd.weight", "model.embed_tokens.weight"), ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"), ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"),
            ("blk.12.attn_q.weight", "model.layers.12.self_attn.q_proj.weight"),
            ("blk.3.attn_k.bias", "model.layers.3.self_attn.k_proj.bias"),
            ("blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj.weight"),
            ("blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"),
            ("blk.3.ffn_norm.weight", "model.layers.3.post_attention_layernorm.weight"),
            ("blk.3.ffn_gate.weight", "model.layers.3.mlp.gate_proj.weight"),
            ("blk.3.ffn_up.weight", "model.layers.3.mlp.up_proj.weight"),
            ("blk.3.ffn_down.weight", "model.layers.3.mlp.down_proj.weight"),
        ]
        for (g, hf) in pairs {
            XCTAssertEqual(GGUFTensorNames.huggingFace(fromGGUF: g)?.name, hf)
            XCTAssertEqual(GGUFTensorNames.gguf(fromHuggingFace: hf)?.name, g)
        }
        XCTAssertEqual(GGUFTensorNames.huggingFace(fromGGUF: "blk.0.attn_q.weight")?.permutation, .queryHeads)
        XCTAssertEqual(GGUFTensorNames.huggingFace(fromGGUF: "blk.0.attn_k.weight")?.permutation, .keyValueHeads)
        XCTAssertEqual(GGUFTensorNames.huggingFace(fromGGUF: "blk.0.attn_v.weight")?.permutation, GGUFTensorNames.RowPermutation.none)
        for unmapped in ["rope_freqs.weight", "blk.0.ffn_gate_exps.weight", "blk.x.attn_q.weight", "blk.01.attn_q.weight", "output.scale"] {
            XCTAssertNil(GGUFTensorNames.huggingFace(fromGGUF: unmapped), unmapped)
        }
        XCTAssertNil(GGUFTensorNames.gguf(fromHuggingFace: "model.layers.0.self_attn.rotary_emb.inv_freq"))
    }

    func testLlama3ScalingIsRecoveredFromLlama31AndLlama32Divisors() {
        // Divisors as the converter computes them (its float32 frequencies included).
        func divisors(factor: Double, headDim: Int = 128, theta: Double = 500000) -> [Float] {
            (0..<headDim / 2).map { i -> Float in
                let freq = Double(Float(1 / pow(Float(theta), Float(2 * i) / Float(headDim))))
                let wavelength = 2 * Double.pi / freq
                if wavelength < 8192 / 4 { return 1 }
                if wavelength > 8192 / 1 { return Float(factor) }
                let smooth = (8192 / wavelength - 1) / (4 - 1)
                return Float(1 / ((1 - smooth) / factor + smooth))
            }
        }
        for factor in [8.0, 32.0] {
            let s = GGUFRopeScaling.llama3(factors: divisors(factor: factor), headDim: 128, theta: 500000, originalContext: 8192)
            XCTAssertEqual(s, ModelConfiguration.RopeScaling(ropeType: "llama3", factor: factor, lowFreqFactor: 1,
                                                             highFreqFactor: 4, originalMaxPositionEmbeddings: 8192))
        }
        var scrambled = divisors(factor: 8)
        scrambled.swapAt(10, 60)
        XCTAssertNil(GGUFRopeScaling.llama3(factors: scrambled, headDim: 128, theta: 500000, originalContext: 8192))
    }
}
