import QDistModel
import QDistQuant

/// `SmoothQuantModifier`: folds per-channel scales into each block's RMSNorm weights and the
/// q/k/v and gate/up columns (llm-compressor's Llama mappings) so that int8 activations lose
/// less to outlier channels. It only smooths; a quantizing modifier (W8A8) must follow it.
///
/// `smoothing_strength` (α, default 0.5) balances the migration; `auto` measures each mapping's
/// block-output loss for α ∈ {0.3, 0.4, …, 0.9} under the recipe's weight quantizer and the
/// static input scale the smoothed range implies, and keeps the best (as AWQ chooses its ratio).
public struct SmoothQuantModifier: RecipeModifier {
    public static let recipeKey = "SmoothQuantModifier"
    public static let summary = "SmoothQuant smoothing before W8A8 (smoothing_strength 0.5 or auto; ignore)"
    public var quantization: ModifierConfig? { get { nil } set {} }
    public var solver: (any LinearSolver)? { nil }
    public var smoothing: (any BlockSmoothing)? { rule }
    public var rule: SmoothQuantSmoothing

    public init(strength: SmoothQuantSmoothing.Strength = .fixed(0.5), ignore: [String] = []) {
        rule = SmoothQuantSmoothing(strength: strength, ignore: ignore)
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(keys: ["smoothing_strength", "ignore"], modifier: Self.recipeKey)
        let c = try decoder.container(keyedBy: AnyCodingKey.self)
        let key = AnyCodingKey(stringValue: "smoothing_strength")
        var strength = SmoothQuantSmoothing.Strength.fixed(0.5)
        if let text = try? c.decodeIfPresent(String.self, forKey: key), text == "auto" {
            strength = .auto
        } else if let a = try c.decodeIfPresent(Double.self, forKey: key) {
            guard a >= 0 && a <= 1 else {
                throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [key], debugDescription: "must be in [0, 1] or auto, got \(a)"))
            }
            strength = .fixed(a)
        }
        rule = SmoothQuantSmoothing(strength: strength, ignore: try c.decodeIfPresent([String].self, forKey: AnyCodingKey(stringValue: "ignore")) ?? [])
    }
}

/// SmoothQuant's rule as a `BlockSmoothing`: the activation range of the norm's output against
/// the balance layers' largest weights (`SmoothQuantScales`).
public struct SmoothQuantSmoothing: BlockSmoothing {
    /// α, or a searched α per mapping.
    public enum Strength: Sendable, Equatable {
        case fixed(Double)
        case auto
        /// The α grid `auto` searches.
        public static let autoGrid: [Double] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    }

    public var strength: Strength
    public var ignore: [String]
    public var name: String { SmoothQuantModifier.recipeKey }
    public var mappings: [SmoothingMapping] { [.inputNormToQKV, .postAttentionNormToGateUp] }
    public var statistic: SmoothingStatistic { .range }

    public func candidates(statistic: [Double], balance: [LinearLayer], args: [QuantizationArgs?]) throws -> [[Float]] {
        let w = SmoothQuantScales.weightScale(balance.map(\.weight))
        switch strength {
        case .fixed(let a): return [SmoothQuantScales.scales(activationRange: statistic, weightScale: w, alpha: a)]
        case .auto: return Strength.autoGrid.map { SmoothQuantScales.scales(activationRange: statistic, weightScale: w, alpha: $0) }
        }
    }
}
