import QDistIO
import QDistQuant

/// `budget:` of a quantize job: mixed precision under a bits-per-weight budget. Each linear the
/// quantizing modifier targets gets one of `candidates`, chosen by measured sensitivity so that
/// the quantized linears' all-in size (codes, scales, zero points, shape records — what
/// `qdist inspect` reports as `bits_per_weight`) stays within `bits_per_weight`.
///
/// ```yaml
/// budget:
///   bits_per_weight: 3.5
///   candidates: [W2 g64 asym, W3 g64 asym, W4 g64 asym, W8]
///   metric: fisher                # or kl, output_error, gptq_loss (GPTQModifier)
///   samples: 16                   # calibration windows of the sensitivity pass (Hessians)
///   fisher_samples: 8             # of those, the windows of the Fisher's backward pass
/// ```
/// A candidate is `W<bits>` (int, per output channel), then optionally `g<size>` (groups of
/// that many input columns) and `sym` (default) or `asym`; or a weight-only scheme preset
/// (`W4A16_ASYM`), optionally with `g<size>`. With `format: gguf` candidates are ggml block
/// types (`Q4_0`, `Q5_K`, …): the mix still types every other tensor. The quantizing modifier's
/// targets, ignore, observer and act-order stay as the recipe says; its scheme (or the mix's
/// type) is replaced per linear.
public struct BudgetConfig: Decodable, Sendable, Equatable {
    /// What a candidate costs a linear in error, summed over linears by the allocation.
    public enum Metric: String, Decodable, Sendable, CaseIterable {
        /// ‖(W − Ŵ)X‖² on the sensitivity windows: the linear's own output error with the
        /// recipe's solver (GPTQ or round-to-nearest) and the candidate's grid.
        case outputError = "output_error"
        /// GPTQ's own loss for the candidate (GPTQModifier only).
        case gptqLoss = "gptq_loss"
        /// The second-order estimate of the loss the candidate adds: Σ_j F_j·(ΔW·H·ΔWᵀ)_jj, with
        /// F_j the summed squared loss gradient at output j of the float model
        /// (`LinearOutputFisher`, from one backward pass per window over `fisher_samples`
        /// windows). Comparable across linears and blocks, which the plain output error is not.
        case fisher
        /// The same estimate with the float model's true Fisher in place of the empirical one:
        /// the backward pass takes labels sampled from the model's own next-token distribution
        /// (one per position, seeded), so F_j estimates the Gauss–Newton curvature — the second
        /// order term of KL(float model ‖ quantized model) — rather than squared gradients of
        /// the data's loss.
        case kl

        /// Whether the metric weights output rows by a Fisher diagonal (a backward pass first).
        public var weighsByFisher: Bool { self == .fisher || self == .kl }
    }

    public var bitsPerWeight: Double
    /// nil: `defaultCandidates`, or `defaultGGUFCandidates` for `format: gguf`.
    public var candidates: [String]?
    public var metric: Metric
    /// Calibration windows the sensitivity pass forwards for the Hessians (the first of the
    /// job's windows); nil: `min(16, calibration.samples)`.
    public var samples: Int?
    /// Windows of the `fisher` and `kl` metrics' backward pass (the first of those); nil: 8.
    public var fisherSamples: Int?

    /// A spread from 2 to 8 bits at group 64 and 32, where SmolLM2-sized layers (576, 1536
    /// columns) divide, plus per-channel 8 bits.
    public static let defaultCandidates = ["W2 g64 asym", "W3 g64 asym", "W4 g64 asym", "W4 g32 asym", "W8"]
    /// llama.cpp's 32-wide block types (any row that is a multiple of 32) and its k-quants (rows
    /// of 256k): a linear takes only those that divide its rows.
    public static let defaultGGUFCandidates = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]

    public init(bitsPerWeight: Double, candidates: [String]? = nil, metric: Metric = .fisher,
                samples: Int? = nil, fisherSamples: Int? = nil) {
        (self.bitsPerWeight, self.candidates, self.metric, self.samples) = (bitsPerWeight, candidates, metric, samples)
        self.fisherSamples = fisherSamples
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case bitsPerWeight = "bits_per_weight", candidates, metric, samples, fisherSamples = "fisher_samples"
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        bitsPerWeight = try c.decode(Double.self, forKey: .bitsPerWeight)
        candidates = try c.decodeIfPresent([String].self, forKey: .candidates)
        metric = try c.decodeIfPresent(Metric.self, forKey: .metric) ?? .fisher
        samples = try c.decodeIfPresent(Int.self, forKey: .samples)
        fisherSamples = try c.decodeIfPresent(Int.self, forKey: .fisherSamples)
        func fail(_ key: CodingKeys, _ message: String) -> DecodingError {
            .dataCorrupted(.init(codingPath: c.codingPath + [key], debugDescription: message))
        }
        do { try validate() } catch let e as QuantizePlanError {
            let key: CodingKeys = e.description.hasPrefix("bits_per_weight") ? .bitsPerWeight
                : e.description.hasPrefix("samples") ? .samples : e.description.hasPrefix("fisher_samples") ? .fisherSamples : .candidates
            throw fail(key, e.description)
        }
    }

    /// Throws the first problem (one line).
    public func validate() throws {
        guard bitsPerWeight.isFinite, bitsPerWeight > 0, bitsPerWeight <= 32 else {
            throw QuantizePlanError(description: "bits_per_weight must be a number of bits per weight above 0 (e.g. 3.5), not \(bitsPerWeight)")
        }
        if let samples, samples < 1 { throw QuantizePlanError(description: "samples must be at least 1") }
        if let fisherSamples, fisherSamples < 1 { throw QuantizePlanError(description: "fisher_samples must be at least 1") }
        if fisherSamples != nil && !metric.weighsByFisher { throw QuantizePlanError(description: "fisher_samples is for metric: fisher or kl") }
        guard candidates?.isEmpty != true else { throw QuantizePlanError(description: "candidates: give at least one scheme (e.g. [W3 g64 asym, W4 g64 asym])") }
        var seen: Set<String> = []
        for text in candidates ?? [] {
            let key: String
            if let type = GGMLType(name: text) {
                guard type.traits.isQuantized else { throw QuantizePlanError(description: "candidates: '\(text)' is a float type, not a quantized block type") }
                key = type.traits.name
            } else {
                let w = try Self.weights(of: text)
                key = "\(w.numBits) \(w.symmetric) \(w.groupSize ?? 0)"
            }
            if !seen.insert(key).inserted { throw QuantizePlanError(description: "candidates: '\(text)' repeats an earlier candidate") }
        }
    }

    /// The weight arguments a candidate names (`W4 g64 asym`, `W8`, `W4A16_ASYM g64`).
    public static func weights(of text: String) throws -> WeightArgsConfig {
        let words = text.split(separator: " ").map(String.init)
        func bad(_ why: String) -> QuantizePlanError {
            QuantizePlanError(description: "candidates: '\(text)' \(why) (write W<bits> [g<group>] [sym|asym], e.g. 'W3 g64 asym', or a weight-only preset such as W4A16_ASYM)")
        }
        guard let head = words.first else { throw bad("is empty") }
        var w: WeightArgsConfig
        let isPreset = SchemePresets.weights(named: head) != nil
        var symmetryGiven = false
        if let preset = SchemePresets.weights(named: head) {
            guard SchemePresets.inputActivations(named: head) == nil, preset.type == .int, preset.observer == .minmax else {
                throw bad("is not a weight-only integer scheme")
            }
            w = preset
        } else if head.first == "W" || head.first == "w", let bits = Int(head.dropFirst()) {
            guard (2...8).contains(bits) else { throw bad("has \(bits) bits; int weights take 2 to 8") }
            w = WeightArgsConfig(numBits: bits, symmetric: true, strategy: .channel)
        } else {
            throw bad("is not a scheme")
        }
        for word in words.dropFirst() {
            switch word.lowercased() {
            case "sym", "asym":
                if isPreset { throw bad("takes its symmetry from the preset") }
                if symmetryGiven { throw bad("says sym/asym twice") }
                w.symmetric = word.lowercased() == "sym"
                symmetryGiven = true
            case let g where g.hasPrefix("g"):
                guard let size = Int(g.dropFirst()), size > 0 else { throw bad("has a bad group '\(word)'") }
                w.strategy = .group
                w.groupSize = size
            default:
                throw bad("has an unknown word '\(word)'")
            }
        }
        return w
    }
}
