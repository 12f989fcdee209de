import Foundation
import QDistComm
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor

/// What one smoothing decided for one mapping of one block (quantization_report.json).
public struct SmoothingDecision: Sendable, Equatable {
    public var block: Int
    public var modifier: String
    public var mapping: String
    /// Index of the chosen candidate (0 when there is one).
    public var choice: Int
    public var candidates: Int
    /// The summed output loss of every candidate (empty when there was nothing to choose).
    public var losses: [Double]
}

extension SequentialQuantizer {
    /// The transform step of one block: every smoothing of the recipe, mapping by mapping in
    /// block order, on the block's float weights. For each mapping the staged forward
    /// (`LinearStageCalibration`) yields the group's inputs on this rank; their per-channel
    /// statistics are combined across ranks exactly (min/max by Allreduce, sums in window order
    /// by `WindowOrderedSum`); the smoothing proposes candidates; with several, each candidate's
    /// parent-module output loss is summed over every rank's windows in window order and the
    /// first minimum wins — the same choice on every rank, for any P. The chosen scales are
    /// folded into `weights`, so the quantize step that follows calibrates and solves the
    /// smoothed block.
    static func smoothBlock(_ b: Int, weights: inout LlamaBlockWeights, job: Job, activations: [Tensor], windows: Int,
                            rotary: RotaryEmbedding, communicator comm: any Communicator) throws -> [SmoothingDecision] {
        let smoothings = job.plan.smoothings
        guard !smoothings.isEmpty else { return [] }
        let config = job.bundle.config
        let entries = job.plan.entries(inBlock: b)
        let work: [(mapping: SmoothingMapping, smoothing: any BlockSmoothing)] = SmoothingMapping.allCases.flatMap { m in
            smoothings.filter { s in
                s.mappings.contains(m) && m.applies(to: weights)
                    && !m.group.members.allSatisfy { QuantizationPlan.matches("model.layers.\(b).\($0)", s.ignore) }
            }.map { (m, $0) }
        }
        guard let lastGroup = work.last?.mapping.group else { return [] }
        var calibration = LinearStageCalibration(activations: activations)
        var decisions: [SmoothingDecision] = []
        for group in LinearGroup.allCases.prefix(through: LinearGroup.allCases.firstIndex(of: lastGroup)!) {
            calibration.advance(to: group, block: LlamaBlock(index: b, weights: weights, config: config, rotary: rotary))
            for (mapping, smoothing) in work where mapping.group == group {
                let block = LlamaBlock(index: b, weights: weights, config: config, rotary: rotary)
                let statistic = try channelStatistic(smoothing.statistic, calibration: calibration, block: block,
                                                     tokens: windows * job.calibration.seqLen, windows: windows, communicator: comm)
                let balanceNames = mapping.group.members.map { "model.layers.\(b).\($0)" }
                var grids = mapping.group.members.map { entries[$0].map { SmoothingSearchGrid($0) } }
                let candidates = try smoothing.candidates(statistic: statistic, balance: mapping.balance(weights), args: grids.map { $0?.args })
                var choice = 0, losses: [Double] = []
                if candidates.count > 1 {
                    let squares = try ggufImportanceStatistic(job: job, members: mapping.group.members.compactMap { entries[$0] },
                                                              calibration: calibration, block: block,
                                                              tokens: windows * job.calibration.seqLen, windows: windows, communicator: comm)
                    grids = grids.map { $0.map { var g = $0; g.meanSquares = g.ggmlType == nil ? nil : squares; return g } }
                    // W8A8: each candidate is judged with the input quantization it implies.
                    let input = try candidateInputQuantizer(entries: mapping.group.members.compactMap { entries[$0] },
                                                            calibration: calibration, block: block, communicator: comm)
                    losses = try candidateLosses(candidates, mapping: mapping, block: block, grids: grids, calibration: calibration,
                                                 windows: windows, tokens: windows * job.calibration.seqLen, communicator: comm,
                                                 inputQuantizer: input)
                    for (i, l) in losses.enumerated() where l < losses[choice] { choice = i }
                }
                let s = candidates[choice]
                guard s.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                    throw QuantizePlanError(description: "\(smoothing.name): block \(b) \(mapping.rawValue): the chosen scales are not positive and finite (\(balanceNames[0]) inputs?)")
                }
                weights = weights.smoothed(mapping, scales: s)
                if group == .o || group == .down { calibration.dividePendingColumns(by: s) }
                decisions.append(SmoothingDecision(block: b, modifier: smoothing.name, mapping: mapping.rawValue, choice: choice,
                                                   candidates: candidates.count, losses: losses))
            }
        }
        for clip in smoothings.compactMap(\.weightClip) {
            weights = try clipBlock(b, clip: clip, weights: weights, job: job, activations: activations, windows: windows,
                                    rotary: rotary, communicator: comm)
        }
        return decisions
    }

    /// A smoothing's weight clip on the smoothed block: group by group along the staged forward
    /// (each group seeing the earlier groups clipped), every quantized linear the clip does not
    /// skip is transformed against the group's exact input Hessian.
    static func clipBlock(_ b: Int, clip: any SmoothingWeightClip, weights: LlamaBlockWeights, job: Job, activations: [Tensor],
                          windows: Int, rotary: RotaryEmbedding, communicator comm: any Communicator) throws -> LlamaBlockWeights {
        let config = job.bundle.config
        let entries = job.plan.entries(inBlock: b)
        var weights = weights
        var calibration = LinearStageCalibration(activations: activations)
        for group in LinearGroup.allCases {
            let members = group.members.filter { !clip.skippedLinears.contains($0) && entries[$0] != nil }
            let block = LlamaBlock(index: b, weights: weights, config: config, rotary: rotary)
            calibration.advance(to: group, block: block)
            guard !members.isEmpty else { continue }
            let h = try exactHessian(calibration: calibration, block: block, columns: weights.linears[members[0]]!.inFeatures,
                                     tokens: windows * job.calibration.seqLen, communicator: comm)
            for m in members {
                let layer = weights.linears[m]!
                let clipped = try clip.clipped(layer.weight, hessian: h, args: SmoothingSearchGrid(entries[m]!).args)
                weights.linears = [m: LinearLayer(weight: clipped, bias: layer.bias, inputQuantizer: layer.inputQuantizer)]
            }
        }
        return weights
    }

    /// The group's input Hessian over every rank's windows, the same bits on every rank (the
    /// fixed-point sum of `HessianAccumulator`, Allreduce on Int64).
    static func exactHessian(calibration: LinearStageCalibration, block: LlamaBlock, columns: Int, tokens: Int,
                             communicator comm: any Communicator) throws -> Tensor {
        try calibration.partialHessian(block: block, columns: columns, totalTokens: tokens, communicator: comm)
            .allreduced(communicator: comm)
    }

    /// For a GGUF job whose encoders take importance (imatrix: hessian), mean x_j² of the
    /// group's inputs over every rank's tokens, summed in window order (the same bits for any
    /// P); nil otherwise.
    static func ggufImportanceStatistic(job: Job, members: [QuantizationPlan.Entry], calibration: LinearStageCalibration,
                                        block: LlamaBlock, tokens: Int, windows: Int,
                                        communicator comm: any Communicator) throws -> [Double]? {
        guard let target = job.plan.gguf, members.contains(where: { $0.ggmlType != nil }) else { return nil }
        if case .none = target.importance { return nil }
        return try channelMeans(calibration: calibration, block: block, tokens: tokens, windows: windows,
                                communicator: comm) { $0 * $0 }
    }

    /// For balance linears that quantize their input (W8A8), the input quantizer a candidate
    /// scale vector s implies: dynamic schemes as they are; a static scale from the smoothed
    /// extremes min_j(min_j / s_j), max_j(max_j / s_j) over every rank's tokens. Nil when the
    /// inputs stay float.
    static func candidateInputQuantizer(entries: [QuantizationPlan.Entry], calibration: LinearStageCalibration, block: LlamaBlock,
                                        communicator comm: any Communicator) throws -> (([Float]) throws -> InputQuantizer)? {
        guard let entry = entries.first(where: { $0.inputActivations != nil }), let scheme = entry.inputActivations else { return nil }
        guard let args = entry.inputCalibrationArgs else {
            let q = try InputActivationParameters(scheme: scheme, subject: entry.name).inputQuantizer
            return { _ in q }
        }
        let (mins, maxs) = try channelExtremes(calibration: calibration, block: block, communicator: comm)
        let grid = try QuantizationGrid(args)
        return { s in
            var lo = Float.infinity, hi = -Float.infinity
            for j in s.indices { lo = min(lo, mins[j] / s[j]); hi = max(hi, maxs[j] / s[j]) }
            let (scale, zero) = grid.parameters(min: lo, max: hi)
            return try InputActivationParameters(scheme: scheme, scale: scale, zeroPoint: scheme.symmetric ? nil : Int32(zero),
                                                 subject: entry.name).inputQuantizer
        }
    }

    /// Per-channel min and max of the group's inputs over every rank's tokens (exact).
    static func channelExtremes(calibration: LinearStageCalibration, block: LlamaBlock,
                                communicator comm: any Communicator) throws -> (mins: [Float], maxs: [Float]) {
        var mins: [Float] = [], maxs: [Float] = []
        calibration.forEachInput(block: block) { x in
            let n = x.columns
            if mins.isEmpty { (mins, maxs) = ([Float](repeating: .infinity, count: n), [Float](repeating: -.infinity, count: n)) }
            x.withUnsafeBufferPointer { p in
                for r in 0..<x.rows {
                    for j in 0..<n { mins[j] = min(mins[j], p[r * n + j]); maxs[j] = max(maxs[j], p[r * n + j]) }
                }
            }
        }
        if comm.size > 1 {
            var n = [Double(mins.count)]
            try comm.allreduce(&n, op: .max)
            if mins.isEmpty { (mins, maxs) = ([Float](repeating: .infinity, count: Int(n[0])), [Float](repeating: -.infinity, count: Int(n[0]))) }
            try comm.allreduce(&mins, op: .min)
            try comm.allreduce(&maxs, op: .max)
        }
        return (mins, maxs)
    }

    /// The group's per-channel statistic over every rank's windows.
    static func channelStatistic(_ kind: SmoothingStatistic, calibration: LinearStageCalibration, block: LlamaBlock,
                                 tokens: Int, windows: Int, communicator comm: any Communicator) throws -> [Double] {
        switch kind {
        case .range:
            let (mins, maxs) = try channelExtremes(calibration: calibration, block: block, communicator: comm)
            return zip(mins, maxs).map { Double($1) - Double($0) }
        case .meanAbsolute:
            return try channelMeans(calibration: calibration, block: block, tokens: tokens, windows: windows,
                                    communicator: comm) { abs($0) }
        }
    }

    /// Mean f(x_j) per channel of the group's inputs over every rank's tokens: each window's
    /// sums in float64, summed in window order (the same bits for any P).
    static func channelMeans(calibration: LinearStageCalibration, block: LlamaBlock, tokens: Int, windows: Int,
                             communicator comm: any Communicator, _ f: (Double) -> Double) throws -> [Double] {
        var perWindow: [[Double]] = []
        var length = 0
        calibration.forEachInput(block: block) { x in
            let n = x.columns
            length = n
            var sums = [Double](repeating: 0, count: n)
            x.withUnsafeBufferPointer { p in
                for r in 0..<x.rows {
                    for j in 0..<n { sums[j] += f(Double(p[r * n + j])) }
                }
            }
            perWindow.append(sums)
        }
        if comm.size > 1 {
            var n = [Double(length)]
            try comm.allreduce(&n, op: .max)
            length = Int(n[0])
        }
        let total = try WindowOrderedSum.vectors(perWindow, length: length, windows: windows, communicator: comm)
        return total.map { $0 / Double(max(tokens, 1)) }
    }

    /// Σ over every rank's windows of ‖parent(x) − parent_c(x)‖² for each candidate c, where
    /// parent_c has every balance weight W replaced by Q(W·s_c)/s_c (and, for W8A8 balance
    /// layers, runs x/s_c through the input quantizer into Q(W·s_c)).
    static func candidateLosses(_ candidates: [[Float]], mapping: SmoothingMapping, block: LlamaBlock, grids: [SmoothingSearchGrid?],
                                calibration: LinearStageCalibration, windows: Int, tokens: Int,
                                communicator comm: any Communicator,
                                inputQuantizer: (([Float]) throws -> InputQuantizer)? = nil) throws -> [Double] {
        if inputQuantizer == nil, mapping == .valueToOutput || mapping == .upToDown {
            return try linearParentLosses(candidates, mapping: mapping, block: block, grids: grids, calibration: calibration,
                                          tokens: tokens, communicator: comm)
        }
        var inputs: [Tensor] = []
        calibration.forEachInput(block: block) { inputs.append($0) }
        let reference = inputs.map { block.parentOutput(mapping, input: $0) }
        var perWindow = [[Double]](repeating: [Double](repeating: 0, count: candidates.count), count: inputs.count)
        for (c, s) in candidates.enumerated() {
            var trial = block
            var layers = mapping.balance(block.weights)
            // With input quantization the trial runs as the smoothed model will: inputs x/s into
            // Q(W·s) behind the input quantizer s implies. Without, as llm-compressor: x into Q(W·s)/s.
            let input = try inputQuantizer?(s)
            for i in layers.indices where grids[i] != nil || input != nil {
                let scaled = layers[i].scalingColumns(by: s)
                let w = try grids[i].map { try $0.roundTrip(scaled.weight, scales: s) } ?? scaled.weight
                layers[i] = input != nil ? LinearLayer(weight: w, bias: scaled.bias, inputQuantizer: input)
                    : LinearLayer(weight: w, bias: scaled.bias).dividingColumns(by: s)
            }
            trial.weights.setBalance(mapping, layers)
            for (k, x) in inputs.enumerated() {
                let y = trial.parentOutput(mapping, input: input != nil ? x.dividingColumns(by: s) : x)
                perWindow[k][c] = y.withUnsafeBufferPointer { p in
                    reference[k].withUnsafeBufferPointer { q in
                        var sum = 0.0
                        for i in 0..<p.count { let d = Double(p[i]) - Double(q[i]); sum += d * d }
                        return sum
                    }
                }
            }
        }
        return try WindowOrderedSum.vectors(perWindow, length: candidates.count, windows: windows, communicator: comm)
    }
}

extension SmoothingDecision {
    /// The report entry (and the block record's).
    var jsonValue: JSONValue {
        .object([
            (key: "block", value: .integer(block)), (key: "modifier", value: .string(modifier)),
            (key: "mapping", value: .string(mapping)), (key: "choice", value: .integer(choice)),
            (key: "candidates", value: .integer(candidates)),
            (key: "losses", value: .array(losses.map { .number($0) })),
        ])
    }
}

extension SequentialQuantizer {
    /// `candidateLosses` for a parent that is the balance linear itself (o_proj, down_proj):
    /// Σ_tokens ‖ΔW·x‖² = tr(ΔW·H·ΔWᵀ) with H = Σ x xᵀ, so the search needs the input Hessian
    /// once (exact on every rank: `HessianAccumulator`'s fixed-point sum, as GPTQ's) and one
    /// out × in × in product per candidate instead of a pass over every token. The losses are
    /// H's normalisation (2/N) times the direct sums: the same argmin.
    static func linearParentLosses(_ candidates: [[Float]], mapping: SmoothingMapping, block: LlamaBlock, grids: [SmoothingSearchGrid?],
                                   calibration: LinearStageCalibration, tokens: Int, communicator comm: any Communicator) throws -> [Double] {
        let layer = mapping.balance(block.weights)[0]
        let h = try exactHessian(calibration: calibration, block: block, columns: layer.inFeatures, tokens: tokens, communicator: comm)
        guard let grid = grids[0] else { return candidates.map { _ in 0 } }
        return try candidates.map { s in
            let scaled = layer.scalingColumns(by: s)
            let q = LinearLayer(weight: try grid.roundTrip(scaled.weight, scales: s)).dividingColumns(by: s)
            let delta = q.weight - layer.weight
            return quadratic(delta, h)
        }
    }

    /// The float tensors of block `b` that a smoothing changed and that no quantized linear
    /// carries: the two norm weights and any unquantized linear (written by the output in place
    /// of the model's own).
    static func changedFloatTensors(_ original: LlamaBlockWeights, _ smoothed: LlamaBlockWeights, block b: Int,
                                    plan: QuantizationPlan) -> [String: Tensor] {
        let p = "model.layers.\(b)."
        var out: [String: Tensor] = [:]
        if original.inputNorm.scalars != smoothed.inputNorm.scalars { out[p + "input_layernorm.weight"] = smoothed.inputNorm }
        if original.postAttentionNorm.scalars != smoothed.postAttentionNorm.scalars {
            out[p + "post_attention_layernorm.weight"] = smoothed.postAttentionNorm
        }
        let planned = plan.entries(inBlock: b)
        for (suffix, layer) in smoothed.linears where planned[suffix] == nil {
            let before = original.linears[suffix]!
            if before.weight.scalars != layer.weight.scalars { out[p + suffix + ".weight"] = layer.weight }
            if let bias = layer.bias, before.bias?.scalars != bias.scalars { out[p + suffix + ".bias"] = bias }
        }
        return out
    }

    /// A resumed block's recorded float tensors put back into its weights.
    static func applyFloatTensors(_ tensors: [String: Tensor], block b: Int, to weights: LlamaBlockWeights) throws -> LlamaBlockWeights {
        let p = "model.layers.\(b)."
        var w = weights
        for (name, t) in tensors {
            guard name.hasPrefix(p) else { throw QuantizePlanError(description: "block \(b)'s staged float tensor \(name) belongs elsewhere") }
            let key = String(name.dropFirst(p.count))
            switch key {
            case "input_layernorm.weight": w.inputNorm = t
            case "post_attention_layernorm.weight": w.postAttentionNorm = t
            default:
                if key.hasSuffix(".weight"), let layer = w.linears[String(key.dropLast(7))] {
                    w.linears = [String(key.dropLast(7)): LinearLayer(weight: t, bias: layer.bias, inputQuantizer: layer.inputQuantizer)]
                } else if key.hasSuffix(".bias"), let layer = w.linears[String(key.dropLast(5))] {
                    w.linears = [String(key.dropLast(5)): LinearLayer(weight: layer.weight, bias: t, inputQuantizer: layer.inputQuantizer)]
                } else {
                    throw QuantizePlanError(description: "block \(b): unexpected staged float tensor \(name)")
                }
            }
        }
        return w
    }
}
