import QDistQuant

/// `SparseGPTModifier`: one-shot pruning against each linear's calibration Hessian (FORMATS.md
/// §12.1; llm-compressor 0.14's keys and defaults), before the recipe's quantizing modifier:
///
/// ```yaml
/// recipe:
///   - SparseGPTModifier: {sparsity: 0.5, mask_structure: "2:4"}
///   - QuantizationModifier: {config_groups: {g: {targets: [Linear], weights: {num_bits: 4, symmetric: false, strategy: group, group_size: 64}}}}
/// ```
/// Keys: `sparsity` (the fraction pruned, required for unstructured, ignored for N:M, as in
/// llm-compressor), `mask_structure` ("0:0" unstructured, or "N:M": N zeros per M inputs),
/// `block_size` (128, a multiple of M), `dampening_frac` (0.01), `targets`, `ignore`,
/// `preserve_sparsity_mask` (false; true keeps a partly pruned weight's zeros and adds to them).
/// `QuantizationModifier` or `GPTQModifier`
/// (whose updates are then masked) may follow.
///
/// With `scheme` or `config_groups` it also quantizes, in the same pass (the original
/// IST-DASLab code): each targeted linear is pruned and quantized together by
/// `SparseGPTJointSolver`, and no quantizing modifier may follow.
public struct SparseGPTModifier: RecipeModifier {
    public static let recipeKey = "SparseGPTModifier"
    public static let summary = "SparseGPT pruning against the calibration Hessian, alone or before quantization (sparsity, mask_structure \"0:0\" or \"N:M\", block_size 128, dampening_frac 0.01, preserve_sparsity_mask); with scheme or config_groups it also quantizes in the same pass"
    public var quantization: ModifierConfig?
    public var solver: (any LinearSolver)? { quantization == nil ? nil : SparseGPTJointSolver(settings: rule.settings) }
    public var smoothing: (any BlockSmoothing)? { nil }
    public var pruning: (any LinearPruning)? { rule }
    var rule: SparseGPTPruning

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(keys: ["sparsity", "mask_structure", "block_size", "dampening_frac", "targets", "ignore",
                                             "preserve_sparsity_mask", "scheme", "config_groups"], modifier: Self.recipeKey)
        let c = try decoder.container(keyedBy: AnyCodingKey.self)
        // A scheme makes it the quantizer too (targets and ignore then serve both).
        let quantizes = c.contains(AnyCodingKey(stringValue: "scheme")) || c.contains(AnyCodingKey(stringValue: "config_groups"))
        quantization = quantizes ? try ModifierConfig(from: decoder, allowsActOrder: false) : nil
        let (structure, sparsity, targets, ignore) = try PruningKeys.decode(c, modifier: Self.recipeKey)
        var settings = SparseGPT.Settings(sparsity: sparsity, n: structure.n, m: structure.m)
        settings.blockSize = try c.decodeIfPresent(Int.self, forKey: AnyCodingKey(stringValue: "block_size")) ?? 128
        settings.dampening = try c.decodeIfPresent(Double.self, forKey: AnyCodingKey(stringValue: "dampening_frac")) ?? 0.01
        settings.preserveMask = try c.decodeIfPresent(Bool.self, forKey: AnyCodingKey(stringValue: "preserve_sparsity_mask")) ?? false
        if settings.preserveMask && quantization != nil {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [AnyCodingKey(stringValue: "preserve_sparsity_mask")],
                debugDescription: "is for pruning alone or before a quantizing modifier, not with a scheme in the same pass"))
        }
        if settings.blockSize <= 0 || (structure.m > 0 && settings.blockSize % structure.m != 0) {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [AnyCodingKey(stringValue: "block_size")],
                debugDescription: "must be positive and a multiple of M (\(structure.m)): N:M groups start at block-local multiples of M"))
        }
        if !(settings.dampening >= 0) {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [AnyCodingKey(stringValue: "dampening_frac")], debugDescription: "must be 0 or more"))
        }
        rule = SparseGPTPruning(settings: settings, targets: targets, ignore: ignore)
    }
}

/// `WandaPruningModifier`: prune by |W|·‖x‖ per output row, no update (FORMATS.md §12.2), alone
/// or before the recipe's quantizing modifier. Keys: `sparsity`, `mask_structure`, `targets`,
/// `ignore`.
public struct WandaPruningModifier: RecipeModifier {
    public static let recipeKey = "WandaPruningModifier"
    public static let summary = "Wanda pruning by |W|·‖x‖ per row, no update, alone or before quantization (sparsity, mask_structure \"0:0\" or \"N:M\")"
    public var quantization: ModifierConfig? { get { nil } set {} }
    public var solver: (any LinearSolver)? { nil }
    public var smoothing: (any BlockSmoothing)? { nil }
    public var pruning: (any LinearPruning)? { rule }
    var rule: WandaPruning

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(keys: ["sparsity", "mask_structure", "targets", "ignore"], modifier: Self.recipeKey)
        let c = try decoder.container(keyedBy: AnyCodingKey.self)
        let (structure, sparsity, targets, ignore) = try PruningKeys.decode(c, modifier: Self.recipeKey)
        rule = WandaPruning(sparsity: sparsity, structure: structure, targets: targets, ignore: ignore)
    }
}

/// The keys both pruning modifiers share.
enum PruningKeys {
    static func decode(_ c: KeyedDecodingContainer<AnyCodingKey>, modifier: String) throws
        -> (structure: MaskStructure, sparsity: Double, targets: [String], ignore: [String])
    {
        func key(_ k: String) -> AnyCodingKey { AnyCodingKey(stringValue: k) }
        func fail(_ k: String, _ message: String) -> DecodingError {
            .dataCorrupted(.init(codingPath: c.codingPath + [key(k)], debugDescription: message))
        }
        let text = try c.decodeIfPresent(String.self, forKey: key("mask_structure")) ?? "0:0"
        let structure: MaskStructure
        do { structure = try MaskStructure(parsing: text) } catch { throw fail("mask_structure", "\(error)") }
        let sparsity = try c.decodeIfPresent(Double.self, forKey: key("sparsity"))
        if structure.unstructured {
            guard let p = sparsity else { throw fail("sparsity", "\(modifier) needs sparsity (the fraction pruned) for unstructured pruning") }
            guard p >= 0 && p < 1 else { throw fail("sparsity", "must be in [0, 1), got \(p)") }
        }
        return (structure, sparsity ?? 0, try c.decodeIfPresent([String].self, forKey: key("targets")) ?? ["Linear"],
                try c.decodeIfPresent([String].self, forKey: key("ignore")) ?? [])
    }
}
