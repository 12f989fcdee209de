import QDistComm
import QDistModel
import QDistQuant
import QDistTensor

/// What one stage's calibration collected on this rank: each group's partial Hessian (on the
/// grid every rank agreed on) and the activation ranges of static input schemes.
struct StageStatistics {
    var hessians: [LinearGroup: HessianAccumulator] = [:]
    var ranges: ActivationRangeCollector
}

extension SequentialQuantizer {
    /// The calibrate step of one stage: advances the staged forward through the stage's groups
    /// (all of them when `carryThroughStage`, as `sequential: linear` must; otherwise only as far
    /// as the last group with linears to solve) and folds each observed group's inputs into its
    /// statistics: Hessians by `partialHessian` (the same bits for any number of ranks), static
    /// input ranges by `ActivationRangeCollector`.
    static func collectStatistics(stage: [LinearGroup], entries: [QuantizationPlan.Entry],
                                  prunedFloat: [QuantizationPlan.PrunedFloatLinear] = [],
                                  calibration: inout LinearStageCalibration, block: LlamaBlock, carryThroughStage: Bool,
                                  usesHessians: Bool, calibrationTokens: Int, communicator comm: any Communicator) throws
        -> StageStatistics
    {
        var statistics = StageStatistics(ranges: ActivationRangeCollector(entries: entries))
        // Linears only pruned need their group's Hessian too.
        let inputFeatures = Dictionary(entries.map { (LinearGroup.containing($0.suffix)!, $0.inFeatures) }
                                       + prunedFloat.map { (LinearGroup.containing($0.suffix)!, $0.inFeatures) }, uniquingKeysWith: { a, _ in a })
        // A group is observed when it feeds a Hessian or a static input range; with neither
        // (round-to-nearest with dynamic or no input quantization) nothing is walked.
        let rangeGroups = Set(statistics.ranges.statistics.keys)
        let observed = { (g: LinearGroup) in inputFeatures[g] != nil && (usesHessians || rangeGroups.contains(g)) }
        let lastObserved = stage.last(where: observed)
        let through = carryThroughStage ? stage : (lastObserved.map { last in Array(stage.prefix { $0 != last }) + [last] } ?? [])
        for group in through {
            calibration.advance(to: group, block: block)
            guard observed(group), let columns = inputFeatures[group] else { continue }
            var ranges = statistics.ranges
            if usesHessians {
                statistics.hessians[group] = try calibration.partialHessian(block: block, columns: columns, totalTokens: calibrationTokens,
                                                                           communicator: comm) { x in
                    ranges.observe(block: block.index, group: group, input: x)
                }
            } else if !ranges.isEmpty {
                calibration.forEachInput(block: block) { ranges.observe(block: block.index, group: group, input: $0) }
            }
            statistics.ranges = ranges
        }
        return statistics
    }
}

extension LinearStageCalibration {
    /// This rank's share of the Hessian of the current group's inputs. A Hessian needs two
    /// passes: the column maxima first, combined across ranks by Allreduce(MAX) (exact), which
    /// fix the integer grid of the sum (`HessianFixedPointScale`), then the products on that
    /// grid, so the summed H is the same bits for any number of ranks. `visit` also sees every
    /// input of the second pass.
    func partialHessian(block: LlamaBlock, columns: Int, totalTokens: Int, communicator comm: any Communicator,
                        visit: (Tensor) -> Void = { _ in }) throws -> HessianAccumulator {
        var absMax = [Float](repeating: 0, count: columns)
        forEachInput(block: block) { HessianFixedPointScale.foldAbsMax($0, into: &absMax) }
        if comm.size > 1 { try comm.allreduce(&absMax, op: .max) }
        var hessian = HessianAccumulator(scale: HessianFixedPointScale(columnAbsMax: absMax, totalTokens: totalTokens))
        forEachInput(block: block) { x in
            hessian.add(x)
            visit(x)
        }
        return hessian
    }
}

extension HessianAccumulator {
    /// The Hessian over every rank's partial sums (Allreduce on the integer sums: exact, so the
    /// same bits for any P), for steps that need it on every rank.
    func allreduced(communicator comm: any Communicator) throws -> Tensor {
        var packed = sum, counts = [sampleCount, nonFinite ? 1 : 0]
        if comm.size > 1 {
            try comm.allreduce(&packed, op: .sum)
            try comm.allreduce(&counts, op: .sum)
        }
        return HessianAccumulator(sum: packed, sampleCount: counts[0], scale: scale, nonFinite: counts[1] > 0).hessian
    }
}

extension LinearGroup {
    /// The group whose input a block linear (HF suffix) reads.
    static func containing(_ suffix: String) -> LinearGroup? {
        allCases.first { $0.members.contains(suffix) }
    }
}
