import QDistQuant

/// `QuantizationModifier`: round-to-nearest of the targeted linears with each config group's
/// observer (minmax, mse, percentile, kl); W8A8 groups also quantize their input activations.
public struct QuantizationModifier: RecipeModifier {
    public static let recipeKey = "QuantizationModifier"
    public static let summary = "round-to-nearest weights (scheme or config_groups; observers minmax, mse, percentile, kl), W8A8 activations"
    public var quantization: ModifierConfig?
    public var solver: (any LinearSolver)? { RoundToNearestSolver() }
    public var smoothing: (any BlockSmoothing)? { nil }

    public init(quantization: ModifierConfig) { self.quantization = quantization }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(keys: ModifierConfig.keys + ["actorder"], modifier: Self.recipeKey,
                                      elsewhere: ["block_size": GPTQModifier.recipeKey, "dampening_frac": GPTQModifier.recipeKey])
        quantization = try ModifierConfig(from: decoder, allowsActOrder: true)
    }
}
