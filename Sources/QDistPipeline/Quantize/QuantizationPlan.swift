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
        /// The ggml block type it is encoded in (`format: gguf`); nil for every other format.
        public var ggmlType: GGMLType? = nil
        public var name: String { "model.layers.\(block).\(suffix)" }

        /// The grid and observer that calibrate a static input scale; nil when the input is not
        /// quantized or is quantized dynamically.
        public var inputCalibrationArgs: QuantizationArgs? {
            guard let a = inputActivations, !a.dynamic else { return nil }
            return QuantizationArgs(numBits: a.numBits, type: a.type, symmetric: a.symmetric, strategy: .tensor,
                                    observer: a.observer.flatMap(WeightArgsConfig.Observer.init(rawValue:))?.kind ?? .minmax)
        }
    }

    /// A linear the recipe prunes but does not quantize: written in float with its zeros.
    public struct PrunedFloatLinear: Sendable, Equatable {
        public var block: Int
        public var suffix: String
        public var inFeatures: Int
        public var outFeatures: Int
        public var name: String { "model.layers.\(block).\(suffix)" }
    }

    public var entries: [Entry]
    /// Linears pruned and left in float (every pruned linear of a recipe that only prunes).
    public var prunedFloat: [PrunedFloatLinear] = []
    /// Decoder linears the recipe leaves in float (ignored, not targeted, or only pruned), by
    /// module name.
    public var unquantizedLinears: [String] = []
    /// How each linear is solved (the quantizing modifier's solver).
    public var solver: any LinearSolver
    /// The smoothings applied to each block before it is quantized, in recipe order.
    public var smoothings: [any BlockSmoothing]
    /// The pruning applied to the entries marked `pruned`, before they are quantized.
    public var pruning: (any LinearPruning)?
    /// The recipe's modifiers joined by `+`, for reports and the resume fingerprint.
    public var recipeName: String
    /// The GGUF mix and importance source of a `format: gguf` job.
    public var gguf: GGUFQuantizeTarget? = nil
    /// GPTQ's dampening, for formats that record one.
    public var dampening: Double { solver.dampening }

    /// True when some linear has a static input scale to calibrate.
    public var calibratesActivations: Bool { entries.contains { $0.inputCalibrationArgs != nil } }
    /// True when the job must forward calibration data: GPTQ's Hessians or static input scales.
    public var needsCalibration: Bool { needsHessians || calibratesActivations || !smoothings.isEmpty }
    /// True when the linears' input Hessians are collected: for the solver (GPTQ) or a pruning step.
    public var needsHessians: Bool {
        solver.needsHessian || (pruning != nil && (entries.contains { $0.pruned } || !prunedFloat.isEmpty))
    }
    /// True when the recipe only prunes: nothing is quantized, the output is a float model.
    public var pruneOnly: Bool { entries.isEmpty && !prunedFloat.isEmpty }

    /// Linears of block `b` pruned and left in float, keyed by suffix.
    public func prunedFloat(inBlock b: Int) -> [String: PrunedFloatLinear] {
        Dictionary(uniqueKeysWithValues: prunedFloat.filter { $0.block == b }.map { ($0.suffix, $0) })
    }

    /// Entries of one block, keyed by suffix.
    public func entries(inBlock b: Int) -> [String: Entry] {
        Dictionary(uniqueKeysWithValues: entries.filter { $0.block == b }.map { ($0.suffix, $0) })
    }

    /// `gguf` is required exactly for `format: gguf` (with the recipe's `scheme: GGUF`).
    public init(recipe: RecipeConfig, config: ModelConfiguration, format: QuantizeJobConfig.OutputFormat,
                gguf: GGUFQuantizeTarget? = nil) throws {
        let modifier = recipe.modifier
        self.gguf = gguf
        solver = recipe.solver
        smoothings = recipe.smoothings
        pruning = recipe.pruning
        recipeName = recipe.name
        // The solver's default act-order (GPTQ: `static`) unless the modifier says otherwise.
        let defaultActOrder: WeightArgsConfig.ActOrder? = modifier?.actorderGiven == true ? nil : solver.defaultActOrder
        var entries: [Entry] = []
        var prunedFloat: [PrunedFloatLinear] = []
        for shape in config.linearLayers {
            let parts = shape.name.split(separator: ".")
            // Decoder linears only: lm_head is never quantized or pruned.
            guard parts.count >= 5, let block = Int(parts[2]) else { continue }
            let suffix = parts[3...].joined(separator: ".")
            let pruned = recipe.pruning.map { Self.matches(shape.name, $0.targets) && !Self.matches(shape.name, $0.ignore) } ?? false
            if let modifier, !Self.matches(shape.name, modifier.ignore),
               let group = modifier.weightGroups.first(where: { Self.matches(shape.name, $0.targets) }) {
                entries.append(Entry(block: block, suffix: suffix, inFeatures: shape.inFeatures, outFeatures: shape.outFeatures,
                                     args: try Self.arguments(group.weights, defaultActOrder: defaultActOrder),
                                     inputActivations: group.inputActivations?.scheme, pruned: pruned))
            } else if pruned {
                prunedFloat.append(PrunedFloatLinear(block: block, suffix: suffix, inFeatures: shape.inFeatures, outFeatures: shape.outFeatures))
            }
        }
        if format == .gguf || modifier?.scheme?.uppercased() == SchemePresets.ggufScheme {
            entries = try Self.ggmlEntries(entries, recipe: recipe, format: format, gguf: gguf, defaultActOrder: defaultActOrder)
        }
        let planned = Set(entries.map(\.name))
        unquantizedLinears = config.linearLayers.map(\.name).filter { !planned.contains($0) }
        self.entries = entries
        self.prunedFloat = prunedFloat
        if let p = pruning, !entries.contains(where: \.pruned), prunedFloat.isEmpty {
            throw QuantizePlanError(description: "\(p.name)'s targets minus ignore match no decoder linear of this model")
        }
        if solver.prunesWhileSolving, let e = entries.first(where: { $0.pruned && $0.args.actorder != nil }) {
            throw QuantizePlanError(description: "\(e.name): SparseGPTModifier prunes and quantizes in one pass with columns in order: remove actorder from its config groups")
        }
        guard !entries.isEmpty || !prunedFloat.isEmpty else {
            throw QuantizePlanError(description: "the recipe's targets minus ignore match no linear layer of this model")
        }
        try format.row.validate(self)
    }

    /// The entries of a GGUF job: each linear's block type from the mix, with arguments that
    /// describe it for reports (its code bits and sub-block) and the modifier's act-order.
    static func ggmlEntries(_ entries: [Entry], recipe: RecipeConfig, format: QuantizeJobConfig.OutputFormat, gguf: GGUFQuantizeTarget?,
                            defaultActOrder: WeightArgsConfig.ActOrder?) throws -> [Entry] {
        guard format == .gguf else {
            throw QuantizePlanError(description: "scheme GGUF means the block types of a GGUF mix: use format: gguf with gguf: {type: Q4_K_M}")
        }
        guard let gguf else { throw QuantizePlanError(description: "format gguf needs the mix: gguf: {type: Q4_K_M} in the job, or --gguf-type") }
        guard let modifier = recipe.modifier, modifier.scheme?.uppercased() == SchemePresets.ggufScheme else {
            throw QuantizePlanError(description: "format gguf writes llama.cpp's block types: give the quantizing modifier scheme: GGUF (its config groups cannot say which type each tensor takes; the mix does)")
        }
        guard recipe.solver.writesGGMLBlocks else {
            throw QuantizePlanError(description: "\(recipe.name) cannot write ggml block types: format gguf takes GPTQModifier or QuantizationModifier")
        }
        if recipe.pruning != nil {
            throw QuantizePlanError(description: "format gguf writes dense block types: remove the pruning modifier")
        }
        if !recipe.smoothings.isEmpty {
            if recipe.smoothings.contains(where: { $0.weightClip != nil }) {
                throw QuantizePlanError(description: "format gguf: AWQ's apply_clip searches the recipe's integer grid, not llama.cpp's block scales: set apply_clip: false")
            }
            if gguf.imatrixFile != nil {
                throw QuantizePlanError(description: "format gguf with a smoothing modifier: an imatrix file describes the unsmoothed inputs; use gguf.imatrix: hessian (or none)")
            }
        }
        let actOrder = modifier.actorderGiven ? modifier.actorder : defaultActOrder
        if gguf.scales == .updated && actOrder != nil && recipe.solver.needsHessian {
            throw QuantizePlanError(description: "gguf.scales updated encodes each block when GPTQ reaches it, so columns go in order: set actorder: null in the GPTQModifier")
        }
        return try entries.map { e in
            guard let type = gguf.types[e.name + ".weight"] else {
                throw QuantizePlanError(description: "\(e.name): not among the model's GGUF tensors")
            }
            let layout = GGMLBlockCodes.layout(type)
            guard layout != nil || !recipe.solver.needsHessian, type.traits.isQuantized else {
                throw QuantizePlanError(description: "\(e.name): \(gguf.mix.name) gives it \(type.traits.name), which has no integer grid GPTQ can solve on (use QuantizationModifier, or ignore the layer to have it encoded as llama-quantize would)")
            }
            var entry = e
            entry.ggmlType = type
            // Reports show the codes' bits and the sub-block (ternary types: 2 bits, the block).
            var args = QuantizationArgs(numBits: layout?.bits ?? 2, type: .int, symmetric: true,
                                        strategy: .group, groupSize: layout?.subBlock ?? type.traits.blockSize)
            args.actorder = actOrder.map { _ in QuantizationArgs.ActivationOrdering.static }
            entry.args = args
            return entry
        }
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
