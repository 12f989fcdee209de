import QDistModel
import QDistQuant
import QDistTensor

/// One modifier of a recipe, named as llm-compressor names it: its strict config and what it
/// adds to the block step of the quantize pipeline — a function-preserving smoothing applied
/// before quantization (`smoothing`), and/or the weight quantization itself (`quantization`
/// with its `solver`). A new algorithm is one type conforming to this plus its line in
/// `ModifierRegistry.modifiers`; the pipeline never asks which modifier it runs.
public protocol RecipeModifier: Sendable {
    /// The recipe key (`GPTQModifier`).
    static var recipeKey: String { get }
    /// One line for `qdist quantize --help` and error messages.
    static var summary: String { get }
    /// Strict decoding of the modifier's mapping (an unknown key is an error).
    init(from decoder: Decoder) throws
    /// The weight quantization it applies; nil for a modifier that only transforms.
    var quantization: ModifierConfig? { get set }
    /// How it solves each linear when it is the recipe's quantizing modifier.
    var solver: (any LinearSolver)? { get }
    /// The smoothing it applies to each block before quantization; nil when none.
    var smoothing: (any BlockSmoothing)? { get }
    /// The pruning it applies to each targeted linear before quantization; nil when none.
    var pruning: (any LinearPruning)? { get }
}

extension RecipeModifier {
    public var pruning: (any LinearPruning)? { nil }
}

/// Every modifier a recipe may name, in the order `--help` lists them.
public enum ModifierRegistry {
    public static let modifiers: [any RecipeModifier.Type] = [
        QuantizationModifier.self,
        GPTQModifier.self,
        SmoothQuantModifier.self,
        AWQModifier.self,
        HQQModifier.self,
        SparseGPTModifier.self,
        WandaPruningModifier.self,
    ]

    /// The modifier type for a recipe key.
    public static func modifier(named key: String) -> (any RecipeModifier.Type)? {
        modifiers.first { $0.recipeKey == key }
    }

    /// `key — summary` lines, for `--help`.
    public static var helpLines: [String] { modifiers.map { "\($0.recipeKey): \($0.summary)" } }
}

/// Which per-channel statistic of a mapping's input a smoothing reads.
public enum SmoothingStatistic: Sendable {
    /// max − min over the calibration tokens (SmoothQuant).
    case range
    /// mean |x| over the calibration tokens (AWQ).
    case meanAbsolute
}

/// A per-channel smoothing of each block's linear-group inputs, applied before quantization
/// (SmoothQuant, AWQ). It proposes candidate scale vectors from the combined statistics and the
/// float balance weights; with more than one candidate the pipeline measures each one's output
/// loss under the recipe's weight quantizer, summed over every rank's windows in window order,
/// and keeps the first minimum. The pipeline folds the chosen scales (`LlamaBlockWeights.smoothed`).
public protocol BlockSmoothing: Sendable {
    /// The modifier's recipe key, for reports.
    var name: String { get }
    /// The mappings it applies, in block order (those absent from a block are skipped).
    var mappings: [SmoothingMapping] { get }
    /// Layers whose mapping it skips: a mapping is skipped when all its balance layers match.
    var ignore: [String] { get }
    /// The statistic it reads.
    var statistic: SmoothingStatistic { get }
    /// A weight clip it applies after the block's scales are folded (nil: none).
    var weightClip: (any SmoothingWeightClip)? { get }
    /// Candidate scales for one mapping, given its input statistic (per channel), the balance
    /// layers' float weights and their quantization arguments (nil: not quantized).
    func candidates(statistic: [Double], balance: [LinearLayer], args: [QuantizationArgs?]) throws -> [[Float]]
}

extension BlockSmoothing {
    public var weightClip: (any SmoothingWeightClip)? { nil }
}

/// A per-linear weight transform run on the smoothed block, group by group along the staged
/// forward (each group seeing the earlier ones clipped), judged against the group's exact input
/// Hessian summed over every rank (AWQ's `apply_clip`).
public protocol SmoothingWeightClip: Sendable {
    /// Block linears (HF suffixes) it leaves alone.
    var skippedLinears: Set<String> { get }
    /// `weight` (rows, in) transformed; `args` is the recipe's grid for the linear.
    func clipped(_ weight: Tensor, hessian: Tensor, args: QuantizationArgs) throws -> Tensor
}
