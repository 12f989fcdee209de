import QDistIO
import QDistModel
import QDistQuant
import QDistTensor

/// One decoder block of a QLoRA frozen base: its seven linear weights in 4-bit (NF4 with
/// double-quantized absmax, as `bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True`),
/// its two norms and any biases in float32 — what `Linear4bit` quantizes and what it leaves.
///
/// `dequantized(config:)` expands it into ordinary `LlamaBlockWeights` for one pass of the training
/// graph (or for eval); `payload()` / `init(payload:)` turn it into one flat `[UInt8]` and back,
/// exactly, for ZeRO-3 to shard and all-gather.
public struct NF4FrozenBlock: Sendable, Equatable {
    /// The block's linears by HF suffix, in the order a payload stores them.
    public static let linearNames = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                     "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]

    public var inputNorm: Tensor  // (hidden)
    public var postAttentionNorm: Tensor  // (hidden)
    /// The 4-bit (out, in) weight of each linear, by HF suffix.
    public var weights: [String: FourBitTensor]
    /// Float32 biases (out) of the linears that have one (Qwen2's q/k/v), by HF suffix.
    public var biases: [String: Tensor]

    public init(inputNorm: Tensor, postAttentionNorm: Tensor, weights: [String: FourBitTensor], biases: [String: Tensor]) {
        self.inputNorm = inputNorm
        self.postAttentionNorm = postAttentionNorm
        self.weights = weights
        self.biases = biases
    }

    /// Quantizes a float32 block's linear weights; norms and biases are kept as they are.
    public init(quantizing block: LlamaBlockWeights, type: FourBitQuantType = .nf4,
                blockSize: Int = FourBitTensor.defaultBlockSize, doubleQuantize: Bool = true) {
        let linears = block.linears
        var weights: [String: FourBitTensor] = [:], biases: [String: Tensor] = [:]
        for name in Self.linearNames {
            let layer = linears[name]!
            weights[name] = FourBitTensor(quantizing: layer.weight, type: type, blockSize: blockSize, doubleQuantize: doubleQuantize)
            if let b = layer.bias { biases[name] = b }
        }
        self.init(inputNorm: block.inputNorm, postAttentionNorm: block.postAttentionNorm, weights: weights, biases: biases)
    }

    /// Float32 weights for one pass: every linear dequantized (`codeBook[code] · absmax`), and
    /// every shape checked against `config` (a payload from another rank could be for another
    /// model).
    public func dequantized(config: ModelConfiguration) throws -> LlamaBlockWeights {
        try LlamaBlockWeights.load(block: 0, from: DequantizingBlockSource(block: self), config: config)
    }

    /// The whole block as one flat byte string (`FourBitPayload` layout; entries named
    /// `input_layernorm.weight`, `<linear>.weight`, `<linear>.bias`, `post_attention_layernorm.weight`).
    public func payload() -> [UInt8] {
        var entries: [(name: String, entry: FourBitPayload.Entry)] = [("input_layernorm.weight", .float32(inputNorm))]
        for name in Self.linearNames {
            entries.append((name + ".weight", .fourBit(weights[name]!)))
            if let b = biases[name] { entries.append((name + ".bias", .float32(b))) }
        }
        entries.append(("post_attention_layernorm.weight", .float32(postAttentionNorm)))
        return FourBitPayload.encode(entries)
    }

    /// Rebuilds a block from `payload()`'s bytes; a malformed or incomplete payload is a
    /// one-line error naming `subject`, the entry and the byte offset.
    public init(payload: [UInt8], subject: String = "NF4 block payload") throws(QuantizedFormatError) {
        var norms: [String: Tensor] = [:], weights: [String: FourBitTensor] = [:], biases: [String: Tensor] = [:]
        for (name, entry) in try FourBitPayload.decode(payload, subject: subject) {
            switch (name, entry) {
            case ("input_layernorm.weight", .float32(let t)), ("post_attention_layernorm.weight", .float32(let t)):
                norms[name] = t
            case (_, .fourBit(let q)) where name.hasSuffix(".weight") && Self.linearNames.contains(String(name.dropLast(7))):
                guard q.shape.count == 2 else { throw QuantizedFormatError(subject, "\(name): weight of shape \(q.shape) is not a matrix") }
                weights[String(name.dropLast(7))] = q
            case (_, .float32(let t)) where name.hasSuffix(".bias") && Self.linearNames.contains(String(name.dropLast(5))):
                biases[String(name.dropLast(5))] = t
            default:
                throw QuantizedFormatError(subject, "unexpected entry \(name) in a decoder block")
            }
        }
        guard let inputNorm = norms["input_layernorm.weight"], let postNorm = norms["post_attention_layernorm.weight"] else {
            throw QuantizedFormatError(subject, "missing input_layernorm.weight or post_attention_layernorm.weight")
        }
        if let missing = Self.linearNames.first(where: { weights[$0] == nil }) {
            throw QuantizedFormatError(subject, "missing \(missing).weight")
        }
        for (name, b) in biases where b.count != weights[name]!.shape[0] {
            throw QuantizedFormatError(subject, "\(name).bias has \(b.count) values for \(weights[name]!.shape[0]) outputs")
        }
        self.init(inputNorm: inputNorm, postAttentionNorm: postNorm, weights: weights, biases: biases)
    }

    /// Bytes held: 4-bit payloads (codes + absmax storage) plus float32 norms and biases.
    public var bytesHeld: Int {
        weights.values.reduce(0) { $0 + $1.storageBytes }
            + 4 * (inputNorm.count + postAttentionNorm.count + biases.values.reduce(0) { $0 + $1.count })
    }

    /// Bytes the same block takes in float32.
    public var float32Bytes: Int {
        4 * (weights.values.reduce(0) { $0 + $1.count } + inputNorm.count + postAttentionNorm.count
             + biases.values.reduce(0) { $0 + $1.count })
    }
}

/// Block 0 of a one-block checkpoint whose linears dequantize on request, so
/// `LlamaBlockWeights.load` builds (and shape-checks) the float32 block.
private struct DequantizingBlockSource: WeightSource {
    let block: NF4FrozenBlock
    static let prefix = "model.layers.0."

    func contains(_ name: String) -> Bool { lookup(name) != nil }
    func tensor(_ name: String) throws -> Tensor {
        guard let t = lookup(name) else { throw ModelLoadError("NF4 block: missing tensor \(name)") }
        return t()
    }

    /// How to produce `name`, without dequantizing anything yet (`contains` asks first).
    private func lookup(_ name: String) -> (() -> Tensor)? {
        guard name.hasPrefix(Self.prefix) else { return nil }
        let local = String(name.dropFirst(Self.prefix.count))
        switch local {
        case "input_layernorm.weight": return { block.inputNorm }
        case "post_attention_layernorm.weight": return { block.postAttentionNorm }
        default:
            if local.hasSuffix(".weight"), let q = block.weights[String(local.dropLast(7))] { return { q.dequantized() } }
            if local.hasSuffix(".bias"), let b = block.biases[String(local.dropLast(5))] { return { b } }
            return nil
        }
    }
}
