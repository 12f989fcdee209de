import Foundation

/// The architecture facts of a Llama-family model, read from its Hugging Face `config.json`.
///
/// Covers `model_type` `llama` (Llama 2/3/3.1/3.2, SmolLM2, TinyLlama), `mistral` and `qwen2`,
/// which share one decoder layout and differ only in defaults (Qwen2 has q/k/v biases). Keys
/// qdist does not use are ignored; a missing required key, a value of the wrong type, an
/// impossible head count or an unsupported `model_type` is a one-line `QDistIOError` naming
/// the file and key, because a wrong head count would otherwise surface as a shape trap deep
/// inside a quantizer. `quantization_config` is kept verbatim (key order included) for the
/// formats that own it. Both transformers 4 (`rope_theta`, `rope_scaling`, `torch_dtype`) and
/// transformers 5 (`rope_parameters`, `dtype`) spellings are read; the 4 spelling is written.
public struct ModelConfiguration: Sendable, Equatable, Codable {
    /// The `model_type` values qdist can load.
    public static let supportedModelTypes = ["llama", "mistral", "qwen2"]

    public var modelType: String
    public var architectures: [String]?
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    /// Defaults to `numAttentionHeads` (no grouped-query attention).
    public var numKeyValueHeads: Int
    /// Defaults to `hiddenSize / numAttentionHeads`.
    public var headDim: Int
    public var vocabSize: Int
    /// Defaults to 1e-6 (the transformers default for all three model types).
    public var rmsNormEps: Double
    /// Defaults to 10000.
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling?
    /// Defaults to 2048 (llama), 131072 (mistral), 32768 (qwen2), as transformers does.
    public var maxPositionEmbeddings: Int
    /// When true, `lm_head` reuses `embed_tokens` and has no tensor of its own.
    public var tieWordEmbeddings: Bool
    /// Biases on the attention projections: q/k/v/o for llama and mistral, q/k/v only for qwen2
    /// (whose default is true). See `hasQKVBias` and `hasOutputProjectionBias`.
    public var attentionBias: Bool
    /// Biases on gate/up/down (llama only; default false).
    public var mlpBias: Bool
    /// Attention window as written in the file (qwen2 applies it only with `useSlidingWindow`).
    public var slidingWindow: Int?
    public var useSlidingWindow: Bool?
    public var bosTokenId: Int?
    /// One id or several (Llama 3.1 Instruct lists three).
    public var eosTokenIds: [Int]?
    public var torchDtype: String?
    /// The `quantization_config` object as written (nil when the model is not quantized).
    public var quantizationConfig: JSONValue?

    /// Rotary-embedding scaling (`rope_scaling`), e.g. Llama 3.1's
    /// `{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    /// "original_max_position_embeddings": 8192}`.
    public struct RopeScaling: Sendable, Equatable {
        /// `rope_type` (or the older `type`): `linear`, `dynamic`, `yarn`, `llama3`, …
        public var ropeType: String
        public var factor: Double?
        public var lowFreqFactor: Double?
        public var highFreqFactor: Double?
        public var originalMaxPositionEmbeddings: Int?

        public init(ropeType: String, factor: Double? = nil, lowFreqFactor: Double? = nil,
                    highFreqFactor: Double? = nil, originalMaxPositionEmbeddings: Int? = nil) {
            self.ropeType = ropeType
            self.factor = factor
            self.lowFreqFactor = lowFreqFactor
            self.highFreqFactor = highFreqFactor
            self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
        }
    }

    /// A configuration from its parts; defaults follow transformers for `modelType`.
    public init(modelType: String = "llama", hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int,
                numAttentionHeads: Int, numKeyValueHeads: Int? = nil, headDim: Int? = nil, vocabSize: Int,
                rmsNormEps: Double = 1e-6, ropeTheta: Double = 10000, ropeScaling: RopeScaling? = nil,
                maxPositionEmbeddings: Int? = nil, tieWordEmbeddings: Bool = false, attentionBias: Bool? = nil,
                mlpBias: Bool = false, architectures: [String]? = nil) {
        self.modelType = modelType
        self.architectures = architectures
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads ?? numAttentionHeads
        self.headDim = headDim ?? hiddenSize / max(numAttentionHeads, 1)
        self.vocabSize = vocabSize
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.maxPositionEmbeddings = maxPositionEmbeddings ?? Self.defaultMaxPositions(modelType)
        self.tieWordEmbeddings = tieWordEmbeddings
        self.attentionBias = attentionBias ?? (modelType == "qwen2")
        self.mlpBias = mlpBias
    }

    static func defaultMaxPositions(_ modelType: String) -> Int {
        switch modelType {
        case "mistral": return 131_072
        case "qwen2": return 32_768
        default: return 2048
        }
    }

    /// Reads `config.json` from a model folder, or the JSON file at `url`.
    public static func load(from url: URL) throws(QDistIOError) -> ModelConfiguration {
        var isFolder: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder)
        let file = exists && isFolder.boolValue ? url.appendingPathComponent("config.json") : url
        return try ModelConfiguration(json: JSONParser.parseFile(at: file), path: file.path)
    }

    /// Decodes a parsed `config.json`; `path` names the file in errors.
    public init(json: JSONValue, path: String) throws(QDistIOError) {
        let f = try JSONFields(json, path: path)
        modelType = try f.string("model_type")
        guard Self.supportedModelTypes.contains(modelType) else {
            throw f.error("model_type", "unsupported model type \(JSONSerializer.quoted(modelType)) (qdist supports \(Self.supportedModelTypes.joined(separator: ", ")))")
        }
        func positive(_ key: String, _ value: Int) throws(QDistIOError) -> Int {
            guard value > 0 else { throw f.error(key, "must be positive, found \(value)") }
            return value
        }
        architectures = try f.optionalStringArray("architectures")
        hiddenSize = try positive("hidden_size", f.int("hidden_size"))
        intermediateSize = try positive("intermediate_size", f.int("intermediate_size"))
        numHiddenLayers = try positive("num_hidden_layers", f.int("num_hidden_layers"))
        numAttentionHeads = try positive("num_attention_heads", f.int("num_attention_heads"))
        let kvHeads = try f.optionalInt("num_key_value_heads")
        numKeyValueHeads = try positive("num_key_value_heads", kvHeads ?? numAttentionHeads)
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw f.error("num_key_value_heads", "\(numKeyValueHeads) does not divide num_attention_heads \(numAttentionHeads)")
        }
        if let explicit = try f.optionalInt("head_dim") {
            headDim = try positive("head_dim", explicit)
        } else {
            guard hiddenSize % numAttentionHeads == 0 else {
                throw f.error("head_dim", "absent, and hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
            }
            headDim = hiddenSize / numAttentionHeads
        }
        // Rotary embeddings rotate pairs of dimensions.
        guard headDim % 2 == 0 else { throw f.error("head_dim", "must be even for rotary embeddings, found \(headDim)") }
        vocabSize = try positive("vocab_size", f.int("vocab_size"))
        rmsNormEps = try f.optionalDouble("rms_norm_eps") ?? 1e-6
        let ropeParameters = try f.optionalObject("rope_parameters")
        let nestedTheta = try ropeParameters?.optionalDouble("rope_theta")
        ropeTheta = try f.optionalDouble("rope_theta") ?? nestedTheta ?? 10000
        if let scaling = try f.optionalObject("rope_scaling") {
            ropeScaling = try RopeScaling(scaling)
        } else if let parameters = ropeParameters, let type = try parameters.optionalString("rope_type"), type != "default" {
            ropeScaling = try RopeScaling(parameters)
        } else {
            ropeScaling = nil
        }
        maxPositionEmbeddings = try f.optionalInt("max_position_embeddings") ?? Self.defaultMaxPositions(modelType)
        tieWordEmbeddings = try f.optionalBool("tie_word_embeddings") ?? false
        attentionBias = try f.optionalBool("attention_bias") ?? (modelType == "qwen2")
        mlpBias = try f.optionalBool("mlp_bias") ?? false
        slidingWindow = try f.optionalInt("sliding_window")
        useSlidingWindow = try f.optionalBool("use_sliding_window")
        bosTokenId = try f.optionalInt("bos_token_id")
        eosTokenIds = try f.optionalIntOrIntArray("eos_token_id")
        let newDtypeKey = try f.optionalString("dtype")
        torchDtype = try f.optionalString("torch_dtype") ?? newDtypeKey
        quantizationConfig = f.value("quantization_config")
    }

    /// The configuration as `config.json` content with snake_case keys (optional values that
    /// are nil are left out; a single EOS id is written as a number, several as an array).
    public var jsonValue: JSONValue {
        var pairs: [(key: String, value: JSONValue)] = [(key: "model_type", value: .string(modelType))]
        func put(_ key: String, _ value: JSONValue?) { if let value { pairs.append((key: key, value: value)) } }
        put("architectures", architectures.map { .array($0.map(JSONValue.string)) })
        put("hidden_size", .integer(hiddenSize))
        put("intermediate_size", .integer(intermediateSize))
        put("num_hidden_layers", .integer(numHiddenLayers))
        put("num_attention_heads", .integer(numAttentionHeads))
        put("num_key_value_heads", .integer(numKeyValueHeads))
        put("head_dim", .integer(headDim))
        put("vocab_size", .integer(vocabSize))
        put("rms_norm_eps", .number(rmsNormEps))
        put("rope_theta", .number(ropeTheta))
        put("rope_scaling", ropeScaling?.jsonValue)
        put("max_position_embeddings", .integer(maxPositionEmbeddings))
        put("tie_word_embeddings", .bool(tieWordEmbeddings))
        put("attention_bias", .bool(attentionBias))
        put("mlp_bias", .bool(mlpBias))
        put("sliding_window", slidingWindow.map { .integer($0) })
        put("use_sliding_window", useSlidingWindow.map(JSONValue.bool))
        put("bos_token_id", bosTokenId.map { .integer($0) })
        put("eos_token_id", eosTokenIds.map { $0.count == 1 ? .integer($0[0]) : .array($0.map { .integer($0) }) })
        put("torch_dtype", torchDtype.map(JSONValue.string))
        put("quantization_config", quantizationConfig)
        return .object(pairs)
    }

    /// `config.json` bytes as transformers writes them (indented, keys sorted, final newline).
    public func serialized() -> [UInt8] {
        jsonValue.serialized(.pretty(sortKeys: true)) + [0x0A]
    }

    /// Writes `config.json` content to `url` atomically.
    public func write(to url: URL) throws(QDistIOError) {
        try AtomicFileWriter.write(serialized(), to: url)
    }

    /// Decodes through any `Decoder` (for example `JSONDecoder`), with the same rules as
    /// `init(json:path:)`; errors are `QDistIOError`s naming the key.
    public init(from decoder: Decoder) throws {
        try self.init(json: JSONValue(from: decoder), path: "config.json")
    }

    /// Encodes the same keys as `jsonValue`.
    public func encode(to encoder: Encoder) throws {
        try jsonValue.encode(to: encoder)
    }
}

extension ModelConfiguration.RopeScaling {
    init(_ f: JSONFields) throws(QDistIOError) {
        let legacyType = try f.optionalString("type")
        guard let type = try f.optionalString("rope_type") ?? legacyType else {
            throw QDistIOError(f.kind, path: f.path, "missing required key \(JSONSerializer.quoted(f.keyPath + ".rope_type"))")
        }
        self.init(ropeType: type, factor: try f.optionalDouble("factor"),
                  lowFreqFactor: try f.optionalDouble("low_freq_factor"),
                  highFreqFactor: try f.optionalDouble("high_freq_factor"),
                  originalMaxPositionEmbeddings: try f.optionalInt("original_max_position_embeddings"))
    }

    /// `rope_scaling` as written to `config.json`.
    public var jsonValue: JSONValue {
        var pairs: [(key: String, value: JSONValue)] = [(key: "rope_type", value: .string(ropeType))]
        if let factor { pairs.append((key: "factor", value: .number(factor))) }
        if let lowFreqFactor { pairs.append((key: "low_freq_factor", value: .number(lowFreqFactor))) }
        if let highFreqFactor { pairs.append((key: "high_freq_factor", value: .number(highFreqFactor))) }
        if let originalMaxPositionEmbeddings {
            pairs.append((key: "original_max_position_embeddings", value: .integer(originalMaxPositionEmbeddings)))
        }
        return .object(pairs)
    }
}
