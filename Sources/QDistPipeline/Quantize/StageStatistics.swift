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
    /// statistics.
    ///
    /// A Hessian needs two passes over the inputs: the column maxima first, combined across
    /// ranks by Allreduce(MAX) (exact), which fix the integer grid of the sum
    /// (`HessianFixedPointScale`), then the products on that grid. So H is the same bits for any
    /// number of ranks, and the extra pass costs a max over the inputs, not a product.
    static func collectStatistics(stage: [LinearGroup], entries: [QuantizationPlan.Entry],
                                  calibration: inout LinearStageCalibration, block: LlamaBlock, carryThroughStage: Bool,
                                  usesHessians: Bool, calibrationTokens: Int, communicator comm: any Communicator) throws
        -> StageStatistics
    {
        var statistics = StageStatistics(ranges: ActivationRangeCollector(entries: entries))
        let inputFeatures = Dictionary(entries.map { (LinearGroup.containing($0.suffix)!, $0.inFeatures) }, uniquingKeysWith: { a, _ in a })
        let lastObserved = stage.last { inputFeatures[$0] != nil }
        let through = carryThroughStage ? stage : (lastObserved.map { last in Array(stage.prefix { $0 != last }) + [last] } ?? [])
        for group in through {
            calibration.advance(to: group, block: block)
            guard let columns = inputFeatures[group] else { continue }
            var ranges = statistics.ranges
            if usesHessians {
                var absMax = [Float](repeating: 0, count: columns)
                calibration.forEachInput(block: block) { HessianFixedPointScale.foldAbsMax($0, into: &absMax) }
                if comm.size > 1 { try comm.allreduce(&absMax, op: .max) }
                var hessian = HessianAccumulator(scale: HessianFixedPointScale(columnAbsMax: absMax, totalTokens: calibrationTokens))
                calibration.forEachInput(block: block) { x in
                    hessian.add(x)
                    ranges.observe(block: block.index, group: group, input: x)
                }
                statistics.hessians[group] = hessian
            } else if !ranges.isEmpty {
                calibration.forEachInput(block: block) { ranges.observe(block: block.index, group: group, input: $0) }
            }
            statistics.ranges = ranges
        }
        return statistics
    }
}

extension LinearGroup {
    /// The group whose input a block linear (HF suffix) reads.
    static func containing(_ suffix: String) -> LinearGroup? {
        allCases.first { $0.members.contains(suffix) }
    }
}
