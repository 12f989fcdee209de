import Foundation

/// A `qdist quantize` job as its YAML file states it: which model, where to write, in what
/// format, which calibration text, and the recipe (llm-compressor's modifiers).
///
/// ```yaml
/// model: /path/to/smollm2
/// output: out/smollm2-w4a16-gptq
/// format: compressed-tensors        # or gptq
/// calibration: {data: ../shared/data/wikitext-2/valid.txt, samples: 128, seq_len: 512, seed: 0, sampler: splitmix64}
/// sequential: block                 # block | linear | none
/// gguf: {type: Q4_K_M}              # with format: gguf (and the recipe's scheme: GGUF)
/// budget: {bits_per_weight: 3.5}     # mixed precision: one candidate scheme per linear (BudgetConfig)
/// recipe:
///   GPTQModifier: {targets: [Linear], ignore: [lm_head], scheme: W4A16, block_size: 128, dampening_frac: 0.01}
/// ```
/// Every key is checked: an unknown one is an error naming the file, line and key.
public struct QuantizeJobConfig: Decodable, Sendable {
    public var model: String?
    public var output: String?
    public var format: OutputFormat
    public var calibration: CalibrationConfig
    public var sequential: SequentialMode
    public var recipe: RecipeConfig
    /// The mix and importance source of `format: gguf`.
    public var gguf: GGUFOutputConfig?
    /// Mixed precision under a bits-per-weight budget (`BudgetConfig`).
    public var budget: BudgetConfig?

    /// The checkpoint layout the quantized model is written in: a row of
    /// `CheckpointFormatTable`, named as `--format` names it.
    public struct OutputFormat: Decodable, Sendable, Equatable, CustomStringConvertible {
        public let rawValue: String
        /// The table row.
        public var row: any CheckpointFormatRow { CheckpointFormatTable.row(named: rawValue)! }

        public init?(rawValue: String) {
            guard CheckpointFormatTable.row(named: rawValue) != nil else { return nil }
            self.rawValue = rawValue
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            let text = try c.decode(String.self)
            guard let f = OutputFormat(rawValue: text) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "unknown format '\(text)' (known: \(CheckpointFormatTable.names))")
            }
            self = f
        }

        public var description: String { rawValue }
        /// compressed-tensors `pack-quantized` / `int-quantized` (vLLM, transformers).
        public static let compressedTensors = OutputFormat(rawValue: "compressed-tensors")!
        /// AutoGPTQ / GPTQModel `qweight, qzeros, scales, g_idx` (transformers, vLLM).
        public static let gptq = OutputFormat(rawValue: "gptq")!
        /// One llama.cpp GGUF file in a llama-quantize mix.
        public static let gguf = OutputFormat(rawValue: "gguf")!
    }

    /// How calibration activations flow between layers.
    public enum SequentialMode: String, Decodable, Sendable, CaseIterable {
        /// Block b+1 is calibrated on the outputs of the already-quantized block b.
        case block
        /// Also inside a block: q/k/v, then o, then gate/up, then down, each seeing the
        /// quantized outputs of the ones before.
        case linear
        /// Every block sees the full-precision model's activations.
        case none
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, output, format, calibration, sequential, recipe, gguf, budget
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        output = try c.decodeIfPresent(String.self, forKey: .output)
        format = try c.decodeIfPresent(OutputFormat.self, forKey: .format) ?? .compressedTensors
        calibration = try c.decodeIfPresent(CalibrationConfig.self, forKey: .calibration) ?? CalibrationConfig()
        sequential = try c.decodeIfPresent(SequentialMode.self, forKey: .sequential) ?? .block
        recipe = try c.decode(RecipeConfig.self, forKey: .recipe)
        gguf = try c.decodeIfPresent(GGUFOutputConfig.self, forKey: .gguf)
        budget = try c.decodeIfPresent(BudgetConfig.self, forKey: .budget)
        if !format.row.carriesActivations && recipe.modifier?.quantizesActivations == true {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.format],
                debugDescription: "the \(format) format cannot carry quantized activations (W8A8): use format: compressed-tensors"))
        }
    }

    /// Reads and strictly decodes a job file.
    public static func load(_ url: URL) throws -> QuantizeJobConfig {
        try StrictYAML.decode(QuantizeJobConfig.self, contentsOf: url)
    }
}

/// Calibration text and how much of it: `samples` windows of `seq_len` tokens from seeded
/// random offsets of a .txt file (or `text` fields of a .jsonl file).
public struct CalibrationConfig: Decodable, Sendable, Equatable {
    public var data: String?
    public var samples: Int = 128
    public var seqLen: Int = 512
    public var seed: UInt64 = 0
    public var sampler: CalibrationSampler = .splitmix64

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case data, samples, seqLen = "seq_len", seed, sampler
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        data = try c.decodeIfPresent(String.self, forKey: .data)
        samples = try c.decodeIfPresent(Int.self, forKey: .samples) ?? 128
        seqLen = try c.decodeIfPresent(Int.self, forKey: .seqLen) ?? 512
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0
        sampler = try c.decodeIfPresent(CalibrationSampler.self, forKey: .sampler) ?? .splitmix64
        if samples < 1 {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.samples], debugDescription: "must be at least 1"))
        }
        if seqLen < 2 {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.seqLen], debugDescription: "must be at least 2"))
        }
    }
}
