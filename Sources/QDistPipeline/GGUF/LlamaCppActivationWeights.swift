import QDistIO
import QDistModel
import QDistTensor

/// A GGUF checkpoint whose linears (and output head) round their inputs as llama.cpp's CPU
/// kernels do before multiplying (`GGMLActivationRounding`, from each weight's stored type):
/// `qdist eval --llamacpp-activations`. The default view of a GGUF multiplies the dequantized
/// weights by Float32 inputs — the file's own quality; this one shows what llama-perplexity
/// measures on the same file, so the two tools' numbers can be matched to the last few 0.01 %
/// and any larger gap points at a real difference (weights, tokenizer, protocol).
///
/// Tensors pass through unchanged; only `inputQuantizer(forLinear:)` differs. Every input width
/// is a whole number of the rounding's blocks: a weight's activation block (32 or 256) is its own
/// block size, which `GGUFFile` checks row lengths against when it opens the file.
public struct LlamaCppActivationWeights: WeightSource {
    public let checkpoint: GGUFCheckpoint

    public init(_ checkpoint: GGUFCheckpoint) { self.checkpoint = checkpoint }

    public func contains(_ name: String) -> Bool { checkpoint.contains(name) }

    public func tensor(_ name: String) throws -> Tensor { try checkpoint.tensor(name) }

    /// llama.cpp's rounding for `module` (`model.layers.3.mlp.down_proj`, or `lm_head`, which
    /// with tied embeddings is the token embedding); nil for a module with no stored weight or
    /// an F32 one (llama.cpp multiplies those in Float32).
    public func inputQuantizer(forLinear module: String) throws -> InputQuantizer? {
        var weight = module + ".weight"
        if module == "lm_head", !checkpoint.contains(weight) { weight = "model.embed_tokens.weight" }
        guard let rounding = try rounding(ofWeight: weight), rounding != .none else { return nil }
        return InputQuantizer(numBits: 8, symmetric: true, mode: .ggml(rounding))
    }

    /// The rounding for the stored type of HF tensor `name`, nil when the file lacks it.
    func rounding(ofWeight name: String) throws -> GGMLActivationRounding? {
        guard let gguf = checkpoint.ggufName(for: name) else { return nil }
        return GGMLActivationRounding(weightType: try checkpoint.file.info(gguf).type)
    }
}
