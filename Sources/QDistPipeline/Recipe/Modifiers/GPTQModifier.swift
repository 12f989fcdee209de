import QDistQuant

/// `GPTQModifier`: error-compensating quantization against each linear group's calibration
/// Hessian (`block_size` columns at a time, `dampening_frac` of the mean diagonal added), in
/// activation order (`actorder`, default `static` for grouped weights).
public struct GPTQModifier: RecipeModifier {
    public static let recipeKey = "GPTQModifier"
    public static let summary = "GPTQ against calibration Hessians (block_size 128, dampening_frac 0.01, actorder static|group|null)"
    public var quantization: ModifierConfig?
    public var blockSize: Int
    public var dampeningFrac: Double
    public var solver: (any LinearSolver)? { GPTQLinearSolver(blockSize: blockSize, dampening: dampeningFrac) }
    public var smoothing: (any BlockSmoothing)? { nil }

    public init(quantization: ModifierConfig, blockSize: Int = 128, dampeningFrac: Double = 0.01) {
        (self.quantization, self.blockSize, self.dampeningFrac) = (quantization, blockSize, dampeningFrac)
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(keys: ModifierConfig.keys + ["actorder", "block_size", "dampening_frac"], modifier: Self.recipeKey)
        quantization = try ModifierConfig(from: decoder, allowsActOrder: true)
        let c = try decoder.container(keyedBy: AnyCodingKey.self)
        let blockKey = AnyCodingKey(stringValue: "block_size"), dampKey = AnyCodingKey(stringValue: "dampening_frac")
        blockSize = try c.decodeIfPresent(Int.self, forKey: blockKey) ?? 128
        dampeningFrac = try c.decodeIfPresent(Double.self, forKey: dampKey) ?? 0.01
        if blockSize < 1 {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [blockKey], debugDescription: "must be positive"))
        }
        if !(dampeningFrac > 0 && dampeningFrac < 1) {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [dampKey], debugDescription: "must be in (0, 1)"))
        }
    }
}

extension Decoder {
    /// Throws at the first key outside `keys`; a key that belongs to another modifier says which.
    func rejectUnknownKeys(keys: [String], modifier: String, elsewhere: [String: String] = [:]) throws {
        let container = try self.container(keyedBy: AnyCodingKey.self)
        for key in container.allKeys where !keys.contains(key.stringValue) {
            let hint = elsewhere[key.stringValue].map { "\(key.stringValue) is a \($0) setting; \(modifier) takes: " } ?? "unknown key (expected one of: "
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath + [key],
                debugDescription: hint + keys.joined(separator: ", ") + (elsewhere[key.stringValue] == nil ? ")" : "")))
        }
    }
}
