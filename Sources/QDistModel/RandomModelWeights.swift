import Foundation
import QDistIO
import QDistTensor

/// Seeded random weights for any `ModelConfiguration`: the tiny models that tests, the README's
/// first command and `qdist tiny-model` run, so every path works without downloading anything.
///
/// Scales keep activations O(1) through the blocks (linear weights ~ N(0, 1/in)), so logits are
/// neither flat nor saturated and numerical comparisons mean something.
public enum RandomModelWeights {
    /// A small Llama-family configuration with the given sizes.
    public static func configuration(arch: String = "llama", layers: Int = 2, hidden: Int = 64, heads: Int = 4,
                                     kvHeads: Int = 2, intermediate: Int? = nil, vocab: Int = 512,
                                     tied: Bool = false) -> ModelConfiguration {
        ModelConfiguration(modelType: arch, hiddenSize: hidden, intermediateSize: intermediate ?? hidden * 8 / 3 / 8 * 8,
                           numHiddenLayers: layers, numAttentionHeads: heads, numKeyValueHeads: kvHeads,
                           vocabSize: vocab, rmsNormEps: 1e-5, ropeTheta: 10000, maxPositionEmbeddings: 2048,
                           tieWordEmbeddings: tied,
                           architectures: [arch == "qwen2" ? "Qwen2ForCausalLM" : arch == "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM"])
    }

    /// Every tensor `config` implies, drawn from a generator seeded with `seed`.
    public static func make(for config: ModelConfiguration, seed: UInt64) -> [String: Tensor] {
        var rng = SeededGenerator(seed: seed)
        var out: [String: Tensor] = [:]
        for (name, shape) in config.tensorShapes {
            let n = shape.reduce(1, *)
            let values: [Float]
            if name.hasSuffix("norm.weight") {
                values = (0..<n).map { _ in 1 + 0.1 * rng.normal() }
            } else if name.hasSuffix(".bias") {
                values = (0..<n).map { _ in 0.1 * rng.normal() }
            } else if name == "model.embed_tokens.weight" {
                values = (0..<n).map { _ in rng.normal() }
            } else {
                let sigma = 1 / Float(shape[1]).squareRoot()
                values = (0..<n).map { _ in sigma * rng.normal() }
            }
            out[name] = Tensor(shape: shape, scalars: values)
        }
        return out
    }
}
