import QDistModel
import QDistQuant
import QDistTensor

/// `AWQModifier`: activation-aware scaling (llm-compressor's, FORMATS.md 10.1). For each of the
/// Llama mappings (input_layernorm → q/k/v, v → o without GQA, post_attention_layernorm →
/// gate/up, up → down) it tries `n_grid` scale vectors drawn from the input's mean |x| and the
/// weights' group-normalised mean |W| (`duo_scaling`), measures the parent module's output MSE
/// with every balance weight replaced by Q(W·s)/s, and folds the best into the block.
///
/// As in llm-compressor, the weight quantizer comes from the quantizing modifier after it
/// (`[AWQModifier, QuantizationModifier]`, `[AWQModifier, GPTQModifier]`); as a qdist extension
/// AWQModifier may carry `scheme`/`config_groups` itself and then quantizes round-to-nearest,
/// and `apply_clip: true` adds the original AWQ's clip search (`AWQClipSearch`) after scaling.
public struct AWQModifier: RecipeModifier {
    public static let recipeKey = "AWQModifier"
    public static let summary = "AWQ scale search before quantization (duo_scaling true|false|both, n_grid 20, apply_clip false; scheme optional)"
    public var quantization: ModifierConfig?
    public var solver: (any LinearSolver)? { quantization == nil ? nil : RoundToNearestSolver() }
    public var smoothing: (any BlockSmoothing)? { search }
    public var search: AWQSmoothing

    public init(search: AWQSmoothing = AWQSmoothing(), quantization: ModifierConfig? = nil) {
        (self.search, self.quantization) = (search, quantization)
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(keys: ModifierConfig.keys + ["duo_scaling", "n_grid", "apply_clip"], modifier: Self.recipeKey)
        let c = try decoder.container(keyedBy: AnyCodingKey.self)
        let duoKey = AnyCodingKey(stringValue: "duo_scaling"), gridKey = AnyCodingKey(stringValue: "n_grid")
        var duo = AWQScales.DuoScaling.on
        if let text = try? c.decodeIfPresent(String.self, forKey: duoKey), text == "both" {
            duo = .both
        } else if let flag = try c.decodeIfPresent(Bool.self, forKey: duoKey) {
            duo = flag ? .on : .off
        }
        let grid = try c.decodeIfPresent(Int.self, forKey: gridKey) ?? 20
        guard (2...1000).contains(grid) else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [gridKey], debugDescription: "must be between 2 and 1000, got \(grid)"))
        }
        let ignore = try c.decodeIfPresent([String].self, forKey: AnyCodingKey(stringValue: "ignore")) ?? []
        let clip = try c.decodeIfPresent(Bool.self, forKey: AnyCodingKey(stringValue: "apply_clip")) ?? false
        search = AWQSmoothing(duoScaling: duo, gridPoints: grid, ignore: ignore, applyClip: clip)
        let quantizes = ["targets", "scheme", "config_groups"].contains { c.contains(AnyCodingKey(stringValue: $0)) }
        quantization = quantizes ? try ModifierConfig(from: decoder, allowsActOrder: false) : nil
    }
}

/// AWQ's grid of candidate scales (`AWQScales`) as a `BlockSmoothing`.
public struct AWQSmoothing: BlockSmoothing, Equatable {
    public var duoScaling: AWQScales.DuoScaling
    public var gridPoints: Int
    public var ignore: [String]
    /// The original AWQ's clip search after scaling (`apply_clip`; not in llm-compressor).
    public var applyClip: Bool

    public init(duoScaling: AWQScales.DuoScaling = .on, gridPoints: Int = 20, ignore: [String] = [], applyClip: Bool = false) {
        (self.duoScaling, self.gridPoints, self.ignore, self.applyClip) = (duoScaling, gridPoints, ignore, applyClip)
    }

    public var weightClip: (any SmoothingWeightClip)? { applyClip ? AWQWeightClip() : nil }

    public var name: String { AWQModifier.recipeKey }
    public var mappings: [SmoothingMapping] { SmoothingMapping.allCases }
    public var statistic: SmoothingStatistic { .meanAbsolute }

    public func candidates(statistic: [Double], balance: [LinearLayer], args: [QuantizationArgs?]) throws -> [[Float]] {
        let chunks = zip(balance, args).map { layer, a -> Int in
            guard let a else { return layer.inFeatures }
            switch a.strategy {
            case .group: return a.groupSize ?? layer.inFeatures
            case .tensor: return layer.weight.count
            default: return layer.inFeatures
            }
        }
        if duoScaling != .off, args.contains(where: { $0?.strategy == .tensor }) {
            throw QuantizePlanError(description: "AWQModifier: duo_scaling needs per-channel or per-group weights, not strategy tensor (set duo_scaling: false)")
        }
        let wMean = AWQScales.weightMean(balance.map(\.weight), chunkSizes: chunks)
        return AWQScales.grid(points: gridPoints, duo: duoScaling).map {
            AWQScales.scales(xMean: statistic, wMean: wMean, ratio: $0.ratio, duo: $0.duo)
        }
    }
}

/// The original AWQ's clip search (`AWQClipSearch`) on every quantized linear except q_proj and
/// k_proj, whose errors attention amplifies (llm-awq skips them too).
public struct AWQWeightClip: SmoothingWeightClip {
    public var skippedLinears: Set<String> { ["self_attn.q_proj", "self_attn.k_proj"] }

    public func clipped(_ weight: Tensor, hessian: Tensor, args: QuantizationArgs) throws -> Tensor {
        try AWQClipSearch.clipped(weight, hessian: hessian, args: args)
    }
}
