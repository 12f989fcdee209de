import Foundation
import QDistIO
import QDistModel
import QDistTensor

/// Autoregressive generation with a KV cache: the prompt in one batched forward, then one token
/// per step, handing each new piece of text to `emit` as soon as it forms whole UTF-8.
public enum TextGeneration {
    /// What a generation produced and how fast.
    public struct Result: Sendable {
        public var tokens: [Int]
        public var text: String
        public var promptTokens: Int
        public var promptSeconds: Double
        public var generationSeconds: Double
        public var stoppedAtEndOfSequence: Bool
        /// Generated tokens per second, after the prompt.
        public var tokensPerSecond: Double {
            generationSeconds > 0 ? Double(max(tokens.count - 1, 0)) / generationSeconds : 0
        }
    }

    public static func run(model: LlamaModel, tokenizer: BPETokenizer, promptTokens: [Int], maxTokens: Int,
                           sampler: inout TokenSampler, stopTokens: Set<Int>,
                           emit: (String) -> Void) -> Result {
        precondition(!promptTokens.isEmpty, "generation needs at least one prompt token")
        var cache: KVCache? = model.makeCache()
        var decoder = tokenizer.makeStreamingDecoder(skipSpecialTokens: true)
        let start = Date()
        var logits = model.logits(promptTokens, cache: &cache)
        let promptSeconds = Date().timeIntervalSince(start)
        var generated: [Int] = [], text = "", stopped = false
        let genStart = Date()
        while generated.count < maxTokens {
            let next = logits.withUnsafeBufferPointer { p in
                sampler.next(UnsafeBufferPointer(rebasing: p[(logits.rows - 1) * logits.columns..<logits.rows * logits.columns]))
            }
            if stopTokens.contains(next) { stopped = true; break }
            generated.append(next)
            let piece = decoder.append(next)
            if !piece.isEmpty { text += piece; emit(piece) }
            if generated.count == maxTokens || (cache?.length ?? 0) >= model.config.maxPositionEmbeddings { break }
            logits = model.logits([next], cache: &cache)
        }
        let tail = decoder.finish()
        if !tail.isEmpty { text += tail; emit(tail) }
        return Result(tokens: generated, text: text, promptTokens: promptTokens.count, promptSeconds: promptSeconds,
                      generationSeconds: Date().timeIntervalSince(genStart), stoppedAtEndOfSequence: stopped)
    }
}
