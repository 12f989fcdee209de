// port of https://github.com/huggingface/transformers/blob/main/src/transformers/models/llama/modeling_llama.py
// (also Mistral and Qwen2, which differ only in config: sliding window, q/k/v biases).
import Foundation
import QDistIO
import QDistTensor

/// A Llama-family decoder with all weights in memory, in Float32: token embedding, N blocks,
/// final RMSNorm and the (tied or separate) output head. Forward passes do no I/O.
///
/// Streaming jobs (quantization) instead load `LlamaBlockWeights` one block at a time from a
/// `WeightSource` and call `LlamaBlock.forward` themselves; this type is for eval and generate.
public struct LlamaModel: Sendable {
    public let config: ModelConfiguration
    public var embedding: Tensor  // (vocab, hidden)
    public var blocks: [LlamaBlock]
    public var finalNorm: Tensor  // (hidden)
    /// (vocab, hidden); the embedding itself when `tie_word_embeddings`.
    public var outputHead: Tensor
    /// What the output head does to its input first (`WeightSource.inputQuantizer(forLinear:
    /// "lm_head")`): nil for every checkpoint but a GGUF read with llama.cpp's activation rounding.
    public var outputHeadInputQuantizer: InputQuantizer?

    public init(config: ModelConfiguration, embedding: Tensor, blocks: [LlamaBlock], finalNorm: Tensor, outputHead: Tensor) {
        self.config = config
        self.embedding = embedding
        self.blocks = blocks
        self.finalNorm = finalNorm
        self.outputHead = outputHead
    }

    /// The rotary embedding `config` describes.
    public static func rotary(for config: ModelConfiguration) -> RotaryEmbedding {
        RotaryEmbedding(headDim: config.headDim, theta: config.ropeTheta, scaling: config.ropeScaling)
    }

    /// Loads every tensor `config` implies from `source`, checking names and shapes.
    public static func load(config: ModelConfiguration, from source: any WeightSource) throws -> LlamaModel {
        let rotary = rotary(for: config)
        let embedding = try source.tensor("model.embed_tokens.weight", expectedShape: [config.vocabSize, config.hiddenSize])
        let blocks = try (0..<config.numHiddenLayers).map { i in
            LlamaBlock(index: i, weights: try LlamaBlockWeights.load(block: i, from: source, config: config), config: config, rotary: rotary)
        }
        let head: Tensor
        if config.tieWordEmbeddings || !source.contains("lm_head.weight") {
            head = embedding
        } else {
            head = try source.tensor("lm_head.weight", expectedShape: [config.vocabSize, config.hiddenSize])
        }
        let norm = try source.tensor("model.norm.weight", expectedShape: [config.hiddenSize])
        var model = LlamaModel(config: config, embedding: embedding, blocks: blocks, finalNorm: norm, outputHead: head)
        model.outputHeadInputQuantizer = try source.inputQuantizer(forLinear: "lm_head")
        return model
    }

    /// Gives every decoder linear whose weight is 2:4 or at least half zeros its compressed
    /// kernel when that kernel serves forwards of `inputRows` tokens (1: decode steps;
    /// `LinearLayer.useSparseKernel`), and returns how many got which kind ("2:4",
    /// "unstructured"): what eval and generate report, so a pruned model that runs dense (a
    /// pattern broken by quantization, say, or windows too long for the kernels) shows as none.
    /// The output head stays dense: it is tied to the embedding and never pruned.
    @discardableResult
    public mutating func useSparseKernels(forInputRows inputRows: Int = 1) -> [String: Int] {
        var counts: [String: Int] = [:]
        for b in blocks.indices {
            var linears = blocks[b].weights.linears
            for name in linears.keys {
                if let kind = linears[name]?.useSparseKernel(forInputRows: inputRows)?.kindName { counts[kind, default: 0] += 1 }
            }
            blocks[b].weights.linears = linears
        }
        return counts
    }

    /// Rows of the embedding for `tokens` → (tokens, hidden).
    public func embed(_ tokens: [Int]) -> Tensor { Self.embed(tokens, table: embedding) }

    /// Rows of `table` (vocab, hidden) for `tokens`: what a streaming job uses before it holds
    /// any block.
    public static func embed(_ tokens: [Int], table: Tensor) -> Tensor {
        let (vocab, h) = (table.rows, table.columns)
        var out = [Float](repeating: 0, count: tokens.count * h)
        table.withUnsafeBufferPointer { e in
            out.withUnsafeMutableBufferPointer { o in
                for (t, id) in tokens.enumerated() {
                    precondition(id >= 0 && id < vocab, "token id \(id) outside vocabulary of \(vocab)")
                    (o.baseAddress! + t * h).update(from: e.baseAddress! + id * h, count: h)
                }
            }
        }
        return Tensor(shape: [tokens.count, h], scalars: out)
    }

    /// Final hidden states (tokens, hidden) after the last norm. With a cache, `tokens` continue
    /// the cached sequence.
    public func hiddenStates(_ tokens: [Int], cache: inout KVCache?) -> Tensor {
        var observer: (any BlockInputObserver)? = nil
        return hiddenStates(tokens, cache: &cache, observer: &observer)
    }

    /// The same, showing `observer` the input of every linear group of every block (what an
    /// importance matrix or activation statistics of the whole float model are made from).
    public func hiddenStates(_ tokens: [Int], cache: inout KVCache?, observer: inout (any BlockInputObserver)?) -> Tensor {
        var x = embed(tokens)
        for block in blocks { x = block.forward(x, cache: &cache, observer: &observer) }
        return x.rmsNormalized(weight: finalNorm, epsilon: Float(config.rmsNormEps))
    }

    /// Logits (tokens, vocab) for every position.
    public func logits(_ tokens: [Int], cache: inout KVCache?) -> Tensor {
        let hidden = hiddenStates(tokens, cache: &cache)
        return Tensor.matmul(outputHeadInputQuantizer.map { $0(hidden) } ?? hidden, outputHead, transposeB: true)
    }

    /// Logits without a cache.
    public func logits(_ tokens: [Int]) -> Tensor {
        var cache: KVCache? = nil
        return logits(tokens, cache: &cache)
    }

    /// An empty cache for this model.
    public func makeCache() -> KVCache {
        KVCache(blocks: config.numHiddenLayers, kvWidth: config.numKeyValueHeads * config.headDim)
    }

    /// Sum of −log p(token[t+1] | tokens[...t]) over the window, and how many tokens it
    /// predicted (count − 1): the perplexity protocol's per-window term. With `scoreFrom` k > 0
    /// only positions t ≥ k count (llama-perplexity scores the second half of each window, so
    /// every scored token has at least k tokens of context).
    public func negativeLogLikelihood(_ tokens: [Int], scoreFrom: Int = 0) -> (sum: Double, predicted: Int) {
        guard tokens.count > 1, scoreFrom < tokens.count - 1 else { return (0, 0) }
        var cache: KVCache? = nil
        var hidden = hiddenStates(Array(tokens.dropLast()), cache: &cache)
        if let q = outputHeadInputQuantizer { hidden = q(hidden) }
        // The output head runs 64 rows at a time into one reused buffer: the full
        // (tokens, vocab) logits would be a 100 MB allocation per 512-token window.
        let chunk = 64
        var logits = Tensor.zeros([min(chunk, hidden.rows), config.vocabSize])
        var sum = 0.0
        for r0 in stride(from: max(scoreFrom, 0), to: hidden.rows, by: chunk) {
            let r1 = min(r0 + chunk, hidden.rows)
            if r1 - r0 != logits.rows { logits = Tensor.zeros([r1 - r0, config.vocabSize]) }
            Tensor.gemm(hidden.rows(r0..<r1), outputHead, into: &logits, transposeB: true)
            sum += Self.crossEntropySum(logits: logits, targets: Array(tokens[(r0 + 1)..<(r1 + 1)]))
        }
        return (sum, tokens.count - 1 - max(scoreFrom, 0))
    }

    /// Σ_t (logsumexp(z_t) − z_t[target_t]). Exponentials are summed in Float over runs of 64
    /// (a vectorizable loop) and the runs in Double: a plain Float sum over 49k terms loses the
    /// small terms and biases the perplexity low by ~1e-4.
    public static func crossEntropySum(logits z: Tensor, targets: [Int]) -> Double {
        let v = z.columns
        precondition(z.rows == targets.count, "\(z.rows) logit rows for \(targets.count) targets")
        return z.withUnsafeBufferPointer { p in
            var total = 0.0
            for (t, target) in targets.enumerated() {
                let row = p.baseAddress! + t * v
                var m = -Float.infinity
                for j in 0..<v { m = max(m, row[j]) }
                var s = 0.0
                var j = 0
                while j < v {
                    let end = min(j + 64, v)
                    var run: Float = 0
                    for k in j..<end { run += expf(row[k] - m) }
                    s += Double(run)
                    j = end
                }
                total += Double(m) + log(s) - Double(row[target])
            }
            return total
        }
    }
}
