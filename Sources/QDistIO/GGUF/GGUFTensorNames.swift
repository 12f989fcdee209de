/// The one table between GGUF tensor names and Hugging Face names for the Llama family
/// (FORMATS.md §2.4), with the row permutation each tensor carries.
///
/// Both directions read the same rows, so a reader (GGUF → HF) and a later writer (HF → GGUF)
/// cannot drift apart. Per-layer names are `blk.N.<stem>.<weight|bias>` ↔
/// `model.layers.N.<hf stem>.<weight|bias>`. Names outside the table (`rope_freqs.weight`,
/// MoE experts, vision towers) map to nil: they have no Hugging Face Llama counterpart and
/// stay reachable through `GGUFFile` under their GGUF names.
public enum GGUFTensorNames {
    /// How a tensor's rows were reordered by convert_hf_to_gguf (see `GGUFRopePermutation`).
    public enum RowPermutation: Sendable, Equatable {
        /// Rows as in Hugging Face.
        case none
        /// Q projection (weight or bias): rotary pairs interleaved per query head.
        case queryHeads
        /// K projection: rotary pairs interleaved per key/value head.
        case keyValueHeads
    }

    /// One row of the table: GGUF stem, Hugging Face stem, and the permutation it carries.
    public struct Entry: Sendable, Equatable {
        public let gguf: String
        public let huggingFace: String
        public let permutation: RowPermutation
    }

    /// Tensors outside the decoder layers.
    public static let global: [Entry] = [
        Entry(gguf: "token_embd", huggingFace: "model.embed_tokens", permutation: .none),
        Entry(gguf: "output_norm", huggingFace: "model.norm", permutation: .none),
        Entry(gguf: "output", huggingFace: "lm_head", permutation: .none),
    ]

    /// Tensors of decoder layer N (`blk.N.` ↔ `model.layers.N.`).
    public static let perLayer: [Entry] = [
        Entry(gguf: "attn_norm", huggingFace: "input_layernorm", permutation: .none),
        Entry(gguf: "attn_q", huggingFace: "self_attn.q_proj", permutation: .queryHeads),
        Entry(gguf: "attn_k", huggingFace: "self_attn.k_proj", permutation: .keyValueHeads),
        Entry(gguf: "attn_v", huggingFace: "self_attn.v_proj", permutation: .none),
        Entry(gguf: "attn_output", huggingFace: "self_attn.o_proj", permutation: .none),
        Entry(gguf: "ffn_norm", huggingFace: "post_attention_layernorm", permutation: .none),
        Entry(gguf: "ffn_gate", huggingFace: "mlp.gate_proj", permutation: .none),
        Entry(gguf: "ffn_up", huggingFace: "mlp.up_proj", permutation: .none),
        Entry(gguf: "ffn_down", huggingFace: "mlp.down_proj", permutation: .none),
    ]

    /// A name resolved through the table.
    public struct Match: Sendable, Equatable {
        /// The name on the other side.
        public let name: String
        /// The permutation the GGUF tensor's rows carry (for the llama architecture).
        public let permutation: RowPermutation
    }

    private static let suffixes = ["weight", "bias"]
    private static let ggufPrefix = "blk.", hfPrefix = "model.layers."

    /// The Hugging Face name for GGUF `name`, e.g. "blk.3.attn_q.weight" →
    /// "model.layers.3.self_attn.q_proj.weight"; nil outside the table.
    public static func huggingFace(fromGGUF name: String) -> Match? {
        guard let (stem, suffix) = splitSuffix(name) else { return nil }
        if let (layer, rest) = splitLayer(stem, prefix: ggufPrefix),
           let e = perLayer.first(where: { $0.gguf == rest }) {
            return Match(name: "\(hfPrefix)\(layer).\(e.huggingFace).\(suffix)", permutation: e.permutation)
        }
        guard let e = global.first(where: { $0.gguf == stem }) else { return nil }
        return Match(name: "\(e.huggingFace).\(suffix)", permutation: e.permutation)
    }

    /// The GGUF name for Hugging Face `name`, e.g. "lm_head.weight" → "output.weight"; nil
    /// outside the table.
    public static func gguf(fromHuggingFace name: String) -> Match? {
        guard let (stem, suffix) = splitSuffix(name) else { return nil }
        if let (layer, rest) = splitLayer(stem, prefix: hfPrefix),
           let e = perLayer.first(where: { $0.huggingFace == rest }) {
            return Match(name: "\(ggufPrefix)\(layer).\(e.gguf).\(suffix)", permutation: e.permutation)
        }
        guard let e = global.first(where: { $0.huggingFace == stem }) else { return nil }
        return Match(name: "\(e.gguf).\(suffix)", permutation: e.permutation)
    }

    /// "a.b.weight" → ("a.b", "weight") for the two parameter suffixes.
    private static func splitSuffix(_ name: String) -> (String, String)? {
        guard let dot = name.lastIndex(of: ".") else { return nil }
        let suffix = String(name[name.index(after: dot)...])
        guard suffixes.contains(suffix) else { return nil }
        return (String(name[..<dot]), suffix)
    }

    /// "blk.12.attn_q" with prefix "blk." → (12, "attn_q"); the layer is canonical decimal.
    private static func splitLayer(_ stem: String, prefix: String) -> (Int, String)? {
        guard stem.hasPrefix(prefix) else { return nil }
        let rest = stem.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]), layer >= 0,
              String(layer) == rest[..<dot] else { return nil }
        return (layer, String(rest[rest.index(after: dot)...]))
    }
}
