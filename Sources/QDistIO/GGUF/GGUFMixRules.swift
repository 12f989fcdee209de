// port of llama.cpp src/llama-quant.cpp (llama_tensor_get_type, llama_tensor_get_type_impl,
// tensor_allows_quantization, tensor_type_fallback), llama_cpp_python 0.3.36 vendor tree,
// restricted to the llama architecture without experts and to the mixes GGUFMix offers.

extension GGUFMix {
    /// The model facts llama.cpp's rules read besides the tensor list: the layer count (which
    /// `ffn_down` layers get more bits), the head counts (grouped-query factor `n_gqa`, which
    /// lifts `attn_v` in Q2_K/Q2_K_S when ≥ 4) and whether llama.cpp classes the model as
    /// LLM_TYPE_70B (which lifts Q3_K/Q4_K `attn_v` to Q5_K).
    public struct Model: Sendable, Equatable {
        /// `llama.block_count`; llama.cpp takes it from the metadata, not from the tensors.
        public var layerCount: Int
        /// `llama.attention.head_count` (of layer 0).
        public var headCount: Int
        /// `llama.attention.head_count_kv`; equal to `headCount` without grouped-query attention.
        public var kvHeadCount: Int
        /// llama.cpp's LLM_TYPE_70B class.
        public var is70B: Bool

        /// Facts from the hyper-parameters. `is70B` defaults to llama.cpp's own rule for the
        /// llama architecture (`load_arch_hparams`): 80 layers and grouped-query attention.
        public init(layerCount: Int, headCount: Int, kvHeadCount: Int, is70B: Bool? = nil) {
            self.layerCount = layerCount
            self.headCount = headCount
            self.kvHeadCount = kvHeadCount
            self.is70B = is70B ?? (layerCount == 80 && headCount != kvHeadCount)
        }

        /// Facts from a model configuration (config.json or GGUF metadata).
        public init(configuration c: ModelConfiguration) {
            self.init(layerCount: c.numHiddenLayers, headCount: c.numAttentionHeads, kvHeadCount: c.numKeyValueHeads)
        }

        /// Query heads per key/value head, as llama.cpp's `n_gqa()` computes it (0 without KV heads).
        public var groupedQueryFactor: Int { kvHeadCount == 0 ? 0 : headCount / kvHeadCount }
    }

    /// llama-quantize's flags that change the type choice.
    public struct Options: Sendable, Equatable {
        /// An importance matrix is given (`--imatrix`). Only its presence matters here: with
        /// one, Q4_0/Q5_0 give the first eighth of `ffn_down` layers Q4_1/Q5_1.
        public var hasImportanceMatrix: Bool
        /// `--pure`: every quantizable tensor gets the default type (row-length fallbacks still apply).
        public var pure: Bool
        /// `--output-tensor-type`: the type of `output.weight`, and of tied token embeddings.
        public var outputType: GGMLType?
        /// `--token-embedding-type`: the type of `token_embd.weight`, taken as given.
        public var tokenEmbeddingType: GGMLType?
        /// False for `--leave-output-tensor`: `output.weight` keeps its stored type.
        public var quantizeOutput: Bool

        /// llama-quantize's defaults: no imatrix, the mix's rules, no overrides, output quantized.
        public init(hasImportanceMatrix: Bool = false, pure: Bool = false, outputType: GGMLType? = nil,
                    tokenEmbeddingType: GGMLType? = nil, quantizeOutput: Bool = true) {
            self.hasImportanceMatrix = hasImportanceMatrix
            self.pure = pure
            self.outputType = outputType
            self.tokenEmbeddingType = tokenEmbeddingType
            self.quantizeOutput = quantizeOutput
        }
    }

    /// The ggml type llama-quantize gives each of `tensors` (GGUF names, ggml dims innermost
    /// first, stored type), in the order given.
    ///
    /// llama.cpp walks the tensors sorted by layer number and then by name (`blk.2` before
    /// `blk.10`), not in file order, and counts `attn_v` and `ffn_down` tensors as it goes; the
    /// counts pick which layers get more bits. This function sorts the same way, so any order
    /// in works. Tensors that are not quantized (1-D, norms, names not ending in "weight") keep
    /// their stored type. Throws for duplicate names and for mixture-of-experts tensors (the
    /// rules then read `n_expert`, which this port does not model).
    public func tensorTypes(for tensors: [GGUFWriter.TensorSpec], model: Model, options: Options = Options()) throws(GGUFMixError) -> [GGMLType] {
        var seen = Set<String>()
        for t in tensors {
            guard seen.insert(t.name).inserted else {
                throw GGUFMixError(.unsupportedTensors, "tensor \(JSONSerializer.quoted(t.name)) is listed twice")
            }
            if t.name.contains("_exps") || t.name.contains("ffn_gate_inp") {
                throw GGUFMixError(.unsupportedTensors, "tensor \(JSONSerializer.quoted(t.name)) belongs to a mixture-of-experts model; qdist's mix rules cover dense llama models only")
            }
        }
        var state = Pass(mix: self, model: model, options: options,
                             attentionVCount: tensors.filter { TensorCategory($0.name).isAttentionV }.count,
                             tiedEmbeddings: !tensors.contains { $0.name == "output.weight" })
        var types = tensors.map(\.type)
        for i in Self.quantizationOrder(tensors.map(\.name)) {
            types[i] = try state.type(of: tensors[i])
        }
        return types
    }

    /// `tensorTypes(for:)` for entries read from a GGUF file.
    public func tensorTypes(for infos: [GGUFTensorInfo], model: Model, options: Options = Options()) throws(GGUFMixError) -> [GGMLType] {
        try tensorTypes(for: infos.map { GGUFWriter.TensorSpec(name: $0.name, dims: $0.dims, type: $0.type) }, model: model, options: options)
    }

    /// Indices of `names` in llama.cpp's `weight_name_comparer` order: layer number from a
    /// `blk.N.` prefix (-1 without one, so global tensors come first), then the bytes of the name.
    static func quantizationOrder(_ names: [String]) -> [Int] {
        let layers = names.map(layerNumber)
        return names.indices.sorted { a, b in
            layers[a] != layers[b] ? layers[a] < layers[b] : names[a].utf8.lexicographicallyPrecedes(names[b].utf8)
        }
    }

    /// `sscanf(name, "blk.%d.", &layer)` with -1 when it matches nothing.
    static func layerNumber(_ name: String) -> Int {
        guard name.hasPrefix("blk.") else { return -1 }
        var rest = Substring(name.dropFirst(4)).drop { $0 == " " || $0 == "\t" || $0 == "\n" }
        var sign = 1
        if let first = rest.first, first == "-" || first == "+" {
            sign = first == "-" ? -1 : 1
            rest = rest.dropFirst()
        }
        let digits = rest.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let value = Int32(digits) else { return -1 }
        return sign * Int(value)
    }
}

extension GGUFMix {
    /// llama.cpp's broad tensor categories (`tensor_get_category`): the first matching test wins,
    /// so `attn_qkv` is never `attn_q`.
    enum TensorCategory: Equatable {
        case tokenEmbedding, attentionQ, attentionV, attentionK, attentionQKV, attentionKVB, attentionOutput
        case ffnUp, ffnGate, ffnDown, output, other

        init(_ name: String) {
            if name == "output.weight" { self = .output }
            else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" { self = .tokenEmbedding }
            else if name.contains("attn_qkv.weight") { self = .attentionQKV }
            else if name.contains("attn_kv_b.weight") { self = .attentionKVB }
            else if name.contains("attn_v.weight") { self = .attentionV }
            else if name.contains("attn_k.weight") { self = .attentionK }
            else if name.contains("attn_q.weight") { self = .attentionQ }
            else if name.contains("attn_output.weight") { self = .attentionOutput }
            else if name.contains("ffn_up") { self = .ffnUp }
            else if name.contains("ffn_gate") { self = .ffnGate }
            else if name.contains("ffn_down") { self = .ffnDown }
            else { self = .other }
        }

        /// The value-projection-like tensors that share the `attn_v` rules and counter. This
        /// includes a fused `attn_qkv`, so llama.cpp's separate QKV branch is never reached.
        var isAttentionV: Bool { self == .attentionV || self == .attentionQKV || self == .attentionKVB }
    }

    /// The running state of one pass over a model: the counters llama.cpp's rules read.
    struct Pass {
        let mix: GGUFMix
        let model: Model
        let options: Options
        let attentionVCount: Int
        let tiedEmbeddings: Bool
        private var attentionVIndex = 0
        private var ffnDownIndex = 0

        init(mix: GGUFMix, model: Model, options: Options, attentionVCount: Int, tiedEmbeddings: Bool) {
            self.mix = mix
            self.model = model
            self.options = options
            self.attentionVCount = attentionVCount
            self.tiedEmbeddings = tiedEmbeddings
        }

        /// `llama_tensor_get_type`: the outer checks, the mix rules, then the row-length fallback.
        mutating func type(of t: GGUFWriter.TensorSpec) throws(GGUFMixError) -> GGMLType {
            guard allowsQuantization(t) else { return t.type }
            let category = TensorCategory(t.name)
            // The flag types are returned as given, before any rule or fallback looks at them.
            if let forced = options.tokenEmbeddingType, category == .tokenEmbedding { return forced }
            if let forced = options.outputType, category == .output { return forced }
            var chosen = mix.defaultType
            guard chosen.traits.isQuantized else { return chosen }
            if !options.pure {
                chosen = rules(chosen, t, category)
            }
            return try Self.fallback(chosen, rowLength: t.dims.first ?? 1, name: t.name)
        }

        /// `tensor_allows_quantization` for the llama architecture: 2-D and 3-D weights only, and
        /// not the small or positional tensors llama.cpp keeps in full precision.
        func allowsQuantization(_ t: GGUFWriter.TensorSpec) -> Bool {
            // ggml_n_dims: the index of the last dimension that is not 1, plus one.
            let dimensionCount = (t.dims.lastIndex { $0 != 1 } ?? 0) + 1
            guard dimensionCount >= 2 else { return false }
            let name = t.name
            // llama.cpp tests `rfind("weight") == size() - 6` with unsigned arithmetic, which also
            // holds for a 5-byte name (both sides are npos); kept so the port agrees everywhere.
            guard name.hasSuffix("weight") || name.utf8.count == 5 else { return false }
            if name.contains("_norm.weight") { return false }
            if !options.quantizeOutput && name == "output.weight" { return false }
            if name == "position_embd.weight" || name == "token_types.weight" { return false }
            return !Self.keptNameParts.contains { name.contains($0) }
        }

        /// Substrings that keep a tensor unquantized in every architecture
        /// (`tensor_allows_quantization`; the GLM5-next list is left out, it is not llama).
        private static let keptNameParts = [
            "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
            "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
            "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
            "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
            "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
            "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
            "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos",
            ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
        ]

        /// llama.cpp's layer-sensitivity pattern: the first and last eighth of the layers and
        /// every third layer between them get more bits.
        static func useMoreBits(_ layer: Int, _ layers: Int) -> Bool {
            layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2
        }

        /// `llama_tensor_get_type_impl` without the IQ*, Falcon, MoE and MXFP4 branches (none of
        /// them can fire for a dense llama model in an offered mix).
        private mutating func rules(_ base: GGMLType, _ t: GGUFWriter.TensorSpec, _ category: TensorCategory) -> GGMLType {
            var chosen = base
            let gqa = model.groupedQueryFactor
            if category == .output || (tiedEmbeddings && category == .tokenEmbedding) {
                // The output projection is the most sensitive matrix: Q6_K unless rows forbid it.
                if let forced = options.outputType {
                    chosen = forced
                } else if (t.dims.first ?? 1) % chosen.traits.blockSize != 0 {
                    chosen = .q8_0
                } else if chosen != .q8_0 {
                    chosen = .q6_K
                }
            } else if category == .tokenEmbedding {
                if mix == .tq1_0 || mix == .tq2_0 { chosen = .q4_K }
            } else if category.isAttentionV {
                switch mix {
                case .q2_K: chosen = gqa >= 4 ? .q4_K : .q3_K
                case .q2_K_S where gqa >= 4: chosen = .q4_K
                case .q3_K_M: chosen = attentionVIndex < 2 ? .q5_K : .q4_K
                case .q3_K_L: chosen = .q5_K
                case .q4_K_M, .q5_K_M: if Self.useMoreBits(attentionVIndex, attentionVCount) { chosen = .q6_K }
                case .q4_K_S where attentionVIndex < 4: chosen = .q5_K
                default: break
                }
                // A 70B shares each attn_v among 8 query heads: it is small, so more bits are cheap.
                if model.is70B && (chosen == .q3_K || chosen == .q4_K) { chosen = .q5_K }
                attentionVIndex += 1
            } else if category == .ffnDown {
                let layer = ffnDownIndex, layers = model.layerCount
                switch mix {
                case .q2_K: chosen = .q3_K
                case .q2_K_S: if layer < layers / 8 { chosen = .q4_K }
                case .q3_K_M: chosen = layer < layers / 16 ? .q5_K : .q4_K
                case .q3_K_L: chosen = .q5_K
                case .q4_K_M, .q5_K_M: if Self.useMoreBits(layer, layers) { chosen = .q6_K }
                case .q4_K_S: if layer < layers / 8 { chosen = .q5_K }
                case .q4_0, .q5_0:
                    // With an imatrix the first ffn_down layers of Q4_0/Q5_0 can still blow up.
                    if options.hasImportanceMatrix && layer < layers / 8 { chosen = mix == .q4_0 ? .q4_1 : .q5_1 }
                default: break
                }
                ffnDownIndex += 1
            } else if category == .attentionOutput {
                switch mix {
                case .q2_K: chosen = .q3_K
                case .q3_K_M: chosen = .q4_K
                case .q3_K_L: chosen = .q5_K
                default: break
                }
            }
            return chosen
        }

        /// `tensor_type_fallback`: a type whose block does not divide the row length becomes the
        /// nearest 32-element type, and F16 when even that does not fit.
        static func fallback(_ type: GGMLType, rowLength: Int, name: String) throws(GGUFMixError) -> GGMLType {
            let block = type.traits.blockSize
            guard rowLength % block != 0 else { return type }
            var replacement: GGMLType
            switch type {
            case .iq1_S, .iq1_M, .iq2_XXS, .iq2_XS, .iq2_S, .iq3_XXS, .iq3_S, .iq4_XS: replacement = .iq4_NL
            case .q2_K, .q3_K, .tq1_0, .tq2_0: replacement = .q4_0
            case .q4_K: replacement = .q5_0
            case .q5_K: replacement = .q5_1
            case .q6_K: replacement = .q8_0
            default:
                guard block <= 32 else {
                    throw GGUFMixError(.unsupportedTensors, "tensor \(JSONSerializer.quoted(name)): rows of \(rowLength) are not a multiple of \(type.traits.name)'s block of \(block), and llama.cpp defines no fallback type for \(type.traits.name)")
                }
                replacement = type
            }
            if rowLength % replacement.traits.blockSize != 0 { replacement = .f16 }
            return replacement
        }
    }
}
