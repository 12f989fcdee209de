/// The `recipe:` section: modifiers applied in order to each block, named as llm-compressor
/// names them (`ModifierRegistry`). Either one modifier as a mapping,
///
/// ```yaml
/// recipe:
///   GPTQModifier: {targets: [Linear], ignore: [lm_head], scheme: W4A16}
/// ```
///
/// or an ordered list, smoothing first:
///
/// ```yaml
/// recipe:
///   - SmoothQuantModifier: {smoothing_strength: 0.5}
///   - GPTQModifier: {targets: [Linear], ignore: [lm_head], scheme: W8A8}
/// ```
///
/// At most one modifier quantizes (the last one with a scheme or config groups); the ones before
/// it smooth or prune. A recipe may only prune (`SparseGPTModifier` or `WandaPruningModifier`
/// alone): its output is the float model with exact zeros. A modifier after the quantizing one,
/// a repeated modifier or a recipe that neither quantizes nor prunes is an error naming the problem.
public struct RecipeConfig: Decodable, Sendable {
    /// The modifiers, in recipe order.
    public var modifiers: [any RecipeModifier]
    /// Index in `modifiers` of the one that quantizes; nil when the recipe only prunes.
    public let quantizerIndex: Int?

    public init(modifiers: [any RecipeModifier]) throws {
        self.modifiers = modifiers
        quantizerIndex = try Self.validate(modifiers)
    }

    /// The quantizing modifier's weight quantization (targets, ignore, scheme or groups); nil
    /// when the recipe only prunes.
    public var modifier: ModifierConfig? {
        get { quantizerIndex.flatMap { modifiers[$0].quantization } }
        set { if let i = quantizerIndex, let newValue { modifiers[i].quantization = newValue } }
    }

    /// The quantizing modifier's solver (round-to-nearest's when nothing quantizes: it is never
    /// called then).
    public var solver: any LinearSolver { quantizerIndex.flatMap { modifiers[$0].solver } ?? RoundToNearestSolver() }

    /// The smoothings before the quantizer, in order.
    public var smoothings: [any BlockSmoothing] { modifiers.compactMap(\.smoothing) }

    /// The recipe's pruning step (at most one pruning modifier).
    public var pruning: (any LinearPruning)? { modifiers.compactMap(\.pruning).first }

    /// `SmoothQuantModifier+GPTQModifier`: the recipe's shape, for reports.
    public var name: String { modifiers.map { type(of: $0).recipeKey }.joined(separator: "+") }

    public init(from decoder: Decoder) throws {
        var list: [any RecipeModifier] = []
        if var items = try? decoder.unkeyedContainer() {
            while !items.isAtEnd {
                let entry = try items.superDecoder()
                list.append(try Self.decodeOne(entry, single: true))
            }
        } else {
            list = [try Self.decodeOne(decoder, single: false)]
        }
        modifiers = list
        do { quantizerIndex = try Self.validate(list) } catch let e as QuantizePlanError {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: e.description))
        }
    }

    /// One `{ModifierName: {...}}` mapping.
    static func decodeOne(_ decoder: Decoder, single: Bool) throws -> any RecipeModifier {
        let c = try decoder.container(keyedBy: AnyCodingKey.self)
        let known = ModifierRegistry.modifiers.map { $0.recipeKey }
        guard c.allKeys.count == 1, let key = c.allKeys.first else {
            let message = c.allKeys.isEmpty
                ? "give a modifier (\(known.joined(separator: ", ")))"
                : "several modifiers in one mapping: write recipe: as a list (- SmoothQuantModifier: …, - GPTQModifier: …) so their order is explicit"
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: message))
        }
        guard let type = ModifierRegistry.modifier(named: key.stringValue) else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [key],
                debugDescription: "unknown modifier (known: \(known.joined(separator: ", ")))"))
        }
        return try type.init(from: try c.superDecoder(forKey: key))
    }

    /// The quantizer's index (nil for a recipe that only prunes), or the reason the order
    /// cannot work.
    static func validate(_ modifiers: [any RecipeModifier]) throws -> Int? {
        let names = modifiers.map { type(of: $0).recipeKey }
        if let twice = names.first(where: { n in names.filter { $0 == n }.count > 1 }) {
            throw QuantizePlanError(description: "\(twice) appears twice; give each modifier once")
        }
        let pruners = modifiers.filter { $0.pruning != nil }.map { type(of: $0).recipeKey }
        if pruners.count > 1 {
            throw QuantizePlanError(description: "\(pruners.joined(separator: " and ")) both prune: give one pruning modifier")
        }
        let quantizing = modifiers.indices.filter { modifiers[$0].quantization != nil }
        guard let last = quantizing.last else {
            if modifiers.isEmpty { throw QuantizePlanError(description: "the recipe has no modifier") }
            // Pruning alone: the float model with zeros (no smoothing: it would change the
            // float weights for nothing).
            if pruners.count == 1, modifiers.count == 1 { return nil }
            throw QuantizePlanError(description: "no modifier quantizes: add a QuantizationModifier or GPTQModifier with a scheme or config_groups after \(names.joined(separator: ", ")) (a pruning modifier may also stand alone)")
        }
        if quantizing.count > 1 {
            throw QuantizePlanError(description: "\(quantizing.map { names[$0] }.joined(separator: " and ")) both set a scheme: exactly one modifier quantizes (a smoothing modifier takes the quantizer's scheme)")
        }
        if !pruners.isEmpty, modifiers[last].solver?.keepsZeros == false {
            throw QuantizePlanError(description: "\(names[last]) after \(pruners[0]) cannot keep the pruned zeros (its zero points are floats): follow pruning with QuantizationModifier or GPTQModifier")
        }
        if last < modifiers.count - 1 {
            throw QuantizePlanError(description: "\(names[last + 1]) comes after the quantizing \(names[last]): smoothing and pruning modifiers go before it")
        }
        return last
    }
}
