import Foundation
import QDistIO

/// Turns a recipe file plus command-line overrides into a checked job: every input problem
/// (bad recipe, missing model or data, layers the recipe cannot fit) surfaces here, before any
/// computation and before any output exists.
public enum QuantizeJobSetup {
    public static func resolve(recipePath: String, model: String?, output: String?, format: String?, scheme: String?,
                               data: String?, samples: Int?, seqLen: Int?, seed: UInt64? = nil, sampler: String? = nil,
                               overwrite: Bool, resume: Bool = true,
                               stopAfterBlock: Int? = nil, ggufType: String? = nil, imatrix: String? = nil,
                               bitsPerWeight: Double? = nil, planOnly: Bool = false) throws -> SequentialQuantizer.Job {
        var recipe = try QuantizeJobConfig.load(URL(fileURLWithPath: recipePath))
        if let format {
            guard let f = QuantizeJobConfig.OutputFormat(rawValue: format) else {
                throw QuantizePlanError(description: "--format must be \(CheckpointFormatTable.names), not '\(format)'")
            }
            recipe.format = f
        }
        if let scheme {
            guard SchemePresets.weights(named: scheme) != nil else {
                throw QuantizePlanError(description: "unknown --scheme '\(scheme)' (known: \(SchemePresets.names.joined(separator: ", ")))")
            }
            guard var modifier = recipe.recipe.modifier else {
                throw QuantizePlanError(description: "--scheme \(scheme): \(recipePath) only prunes; add a QuantizationModifier or GPTQModifier after its pruning modifier to quantize")
            }
            modifier.scheme = scheme
            modifier.configGroups = nil
            recipe.recipe.modifier = modifier
        }
        if ggufType != nil || imatrix != nil {
            guard recipe.format == .gguf else {
                throw QuantizePlanError(description: "--gguf-type and --imatrix are for --format gguf")
            }
            guard let type = ggufType ?? recipe.gguf?.type else {
                throw QuantizePlanError(description: "--imatrix needs the mix: --gguf-type (or gguf: {type: …} in \(recipePath))")
            }
            var gguf = recipe.gguf ?? GGUFOutputConfig(type: type)
            gguf.type = type
            if let imatrix { gguf.imatrix = imatrix }
            recipe.gguf = gguf
        }
        if recipe.format == .gguf && recipe.gguf == nil {
            throw QuantizePlanError(description: "format gguf needs the mix: --gguf-type Q4_K_M (or gguf: {type: Q4_K_M} in \(recipePath))")
        }
        if recipe.format != .gguf && recipe.gguf != nil {
            throw QuantizePlanError(description: "\(recipePath): gguf: applies to format: gguf only")
        }
        if let bitsPerWeight {
            var budget = recipe.budget ?? BudgetConfig(bitsPerWeight: bitsPerWeight)
            budget.bitsPerWeight = bitsPerWeight
            recipe.budget = budget
        }
        if let data { recipe.calibration.data = data }
        if let samples { recipe.calibration.samples = samples }
        if let seqLen { recipe.calibration.seqLen = seqLen }
        if let seed { recipe.calibration.seed = seed }
        if let sampler {
            guard let s = CalibrationSampler(rawValue: sampler) else {
                throw QuantizePlanError(description: "--sampler must be \(CalibrationSampler.allCases.map(\.rawValue).joined(separator: " | ")), not '\(sampler)'")
            }
            recipe.calibration.sampler = s
        }
        guard let modelPath = (model ?? recipe.model).map(expand) else {
            throw QuantizePlanError(description: "\(recipePath): no model (set model: in the recipe or pass --model)")
        }
        if planOnly && recipe.budget == nil {
            throw QuantizePlanError(description: "--plan-only prints a budget's allocation: give --bits-per-weight or budget: in \(recipePath)")
        }
        guard let outputPath = (output ?? recipe.output ?? (planOnly ? "-" : nil)).map(expand) else {
            throw QuantizePlanError(description: "\(recipePath): no output (set output: in the recipe or pass --output)")
        }
        if recipe.calibration.samples < 1 || recipe.calibration.seqLen < 2 {
            throw QuantizePlanError(description: "--samples must be ≥ 1 and --seq-len ≥ 2")
        }
        let out = URL(fileURLWithPath: outputPath)
        let inputs = [modelPath, recipePath].map { URL(fileURLWithPath: $0) } + (recipe.calibration.data.map { [URL(fileURLWithPath: expand($0))] } ?? [])
        // A plan-only run writes nothing, so any output path is fine.
        if !planOnly { try recipe.format.row.checkOutput(out, inputs: inputs, overwrite: overwrite) }
        let calibrates = recipe.budget != nil || recipe.recipe.solver.needsHessian || !recipe.recipe.smoothings.isEmpty || recipe.recipe.pruning != nil || (recipe.recipe.modifier?.weightGroups.contains { $0.inputActivations?.dynamic == false } ?? false)
        if calibrates, let d = recipe.calibration.data.map(expand), !FileManager.default.fileExists(atPath: d) {
            throw QuantizePlanError(description: "\(d): calibration data not found")
        }
        recipe.calibration.data = recipe.calibration.data.map(expand)
        let bundle = try ModelBundle.open(modelPath)
        let gguf = try recipe.gguf.map { try GGUFQuantizeTarget($0, model: bundle.config, modelPath: modelPath) }
        let plan = try QuantizationPlan(recipe: recipe.recipe, config: bundle.config, format: recipe.format, gguf: gguf)
        let budget = try recipe.budget.map {
            try QuantizationBudget($0, recipe: recipe.recipe, format: recipe.format, model: bundle.config,
                                   calibrationSamples: recipe.calibration.samples)
        }
        if let budget {
            // Every planned linear needs a candidate it fits (checked here, before the pass).
            for entry in plan.entries { _ = try budget.fitting(entry) }
        }
        var job = SequentialQuantizer.Job(bundle: bundle, plan: plan, format: recipe.format, sequential: recipe.sequential,
                                          calibration: recipe.calibration, output: out, overwrite: overwrite,
                                          recipeName: URL(fileURLWithPath: recipePath).lastPathComponent)
        job.budget = budget
        job.resume = resume
        job.stopAfterBlock = stopAfterBlock
        job.modelPath = URL(fileURLWithPath: modelPath).standardizedFileURL.path
        return job
    }

    /// `~/x` → the home folder's `x`.
    static func expand(_ path: String) -> String {
        path.hasPrefix("~/") ? FileManager.default.homeDirectoryForCurrentUser.path + String(path.dropFirst(1)) : path
    }
}
