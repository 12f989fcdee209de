import Foundation
import QDistIO
import QDistQuant

/// Which decoder linears a recipe quantizes and with what arguments, resolved against one
/// model's shapes — with every shape problem found before any work starts.
///
/// A recipe's `targets` are `Linear` (every decoder linear), an exact module name, a name
/// suffix (`q_proj`) or a regex `re:…`; `ignore` uses the same forms. `lm_head` is never a
/// target (it stays in full precision, as llm-compressor leaves it).
public struct QuantizationPlan: Sendable {
    /// The entry for the linear `name`, if the plan quantizes it.
    public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

    /// One linear to quantize.
    public struct Entry: Sendable {
        public var block: Int
        /// HF suffix inside the block, e.g. `self_attn.q_proj`.
        public var suffix: String
        public var inFeatures: Int
        public var outFeatures: Int
        public var args: QuantizationArgs
        /// How the linear's input is quantized (W8A8); nil for weight-only recipes.
        public var inputActivations: InputActivationScheme? = nil
        /// The recipe's pruning step targets it (pruned just before it is quantized).
        public var pruned: Bool = false
        public var name: String { "model.layers.\(block).\(suffix)" }

        /// The grid and observer that calibrate a static input scale; nil when the input is not
        /// quantized or is quantized dynamically.
        public var inputCalibrationArgs: QuantizationArgs? {
            guard let a = inputActivations, !a.dynamic else { return nil }
            return QuantizationArgs(numBits: a.numBits, type: a.type, symmetric: a.symmetric, strategy: .tensor,
                                    observer: a.observer.flatMap(WeightArgsConfig.Observer.init(rawValue:))?.kind ?? .minmax)
        }
    }

    public var entries: [Entry]
    /// Decoder linears the recipe leaves in float (ignored or not targeted), by module name.
    public var unquantizedLinears: [String] = []
    /// How each linear is solved (the quantizing modifier's solver).
    public var solver: any LinearSolver
    /// The smoothings applied to each block before it is quantized, in recipe order.
    public var smoothings: [any BlockSmoothing]
    /// The pruning applied to the entries marked `pruned`, before they are quantized.
    public var pruning: (any LinearPruning)?
    /// The recipe's modifiers joined by `+`, for reports and the resume fingerprint.
    public var recipeName: String
    /// GPTQ's dampening, for formats that record one.
    public var dampening: Double { solver.dampening }

    /// True when some linear has a static input scale to calibrate.
    public var calibratesActivations: Bool { entries.contains { $0.inputCalibrationArgs != nil } }
    /// True when the job must forward calibration data: GPTQ's Hessians or static input scales.
    public var needsCalibration: Bool { needsHessians || calibratesActivations || !smoothings.isEmpty }
    /// True when the linears' input Hessians are collected: for the solver (GPTQ) or a pruning step.
    public var needsHessians: Bool { solver.needsHessian || (pruning != nil && entries.contains { $0.pruned }) }

    /// Entries of one block, keyed by suffix.
    public func entries(inBlock b: Int) -> [String: Entry] {
        Dictionary(uniqueKeysWithValues: entries.filter { $0.block == b }.map { ($0.suffix, $0) })
    }

    public init(recipe: RecipeConfig, config: ModelConfiguration, format: QuantizeJobConfig.OutputFormat) throws {
        let modifier = recipe.modifier
        solver = recipe.solver
        smoothings = recipe.smoothings
        pruning = recipe.pruning
        recipeName = recipe.name
        // The solver's default act-order (GPTQ: `static`) unless the modifier says otherwise.
        let defaultActOrder: WeightArgsConfig.ActOrder? = modifier.actorderGiven ? nil : solver.defaultActOrder
        var entries: [Entry] = []
        for shape in config.linearLayers {
            guard !Self.matches(shape.name, modifier.ignore) else { continue }
            guard let group = modifier.weightGroups.first(where: { Self.matches(shape.name, $0.targets) }) else { continue }
            let parts = shape.name.split(separator: ".")
            guard parts.count >= 5, let block = Int(parts[2]) else { continue }
            entries.append(Entry(block: block, suffix: parts[3...].joined(separator: "."), inFeatures: shape.inFeatures,
                                 outFeatures: shape.outFeatures,
                                 args: try Self.arguments(group.weights, defaultActOrder: defaultActOrder),
                                 inputActivations: group.inputActivations?.scheme,
                                 pruned: recipe.pruning.map { Self.matches(shape.name, $0.targets) && !Self.matches(shape.name, $0.ignore) } ?? false))
        }
        let planned = Set(entries.map(\.name))
        unquantizedLinears = config.linearLayers.map(\.name).filter { !planned.contains($0) }
        guard !entries.isEmpty else {
            throw QuantizePlanError(description: "the recipe's targets minus ignore match no linear layer of this model")
        }
        self.entries = entries
        if let p = pruning, !entries.contains(where: \.pruned) {
            throw QuantizePlanError(description: "\(p.name)'s targets minus ignore match none of the quantized linears")
        }
        try format.row.validate(self)
    }

    /// Recipe weight arguments → the quantizer's.
    static func arguments(_ w: WeightArgsConfig, defaultActOrder: WeightArgsConfig.ActOrder? = nil) throws -> QuantizationArgs {
        var a = QuantizationArgs(numBits: w.numBits, type: w.type, symmetric: w.symmetric, strategy: w.strategy, groupSize: w.groupSize)
        a.observer = w.observer.kind
        a.doubleQuantize = w.doubleQuant
        a.actorder = w.actorder ?? (w.strategy == .group ? defaultActOrder : nil)
        do { try a.validateStructure() } catch { throw QuantizePlanError(description: error.description) }
        return a
    }

    /// `Linear`, an exact name, a dotted suffix, or `re:<regex>` (matched against the whole name).
    static func matches(_ name: String, _ patterns: [String]) -> Bool {
        patterns.contains { p in
            if p == "Linear" { return true }
            if p.hasPrefix("re:") {
                guard let re = try? NSRegularExpression(pattern: "^(?:" + p.dropFirst(3) + ")$") else { return false }
                return re.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
            }
            return name == p || name.hasSuffix("." + p)
        }
    }
}

/// A recipe that does not fit the model (one line, names the layers).
public struct QuantizePlanError: Error, CustomStringConvertible, Equatable {
    public let description: String
}
