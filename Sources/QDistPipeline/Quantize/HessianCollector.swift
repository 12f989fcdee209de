import QDistModel
import QDistQuant
import QDistTensor

/// Watches a block's forward and folds the input of each linear group it was asked for into
/// that group's GPTQ Hessian: q/k/v share one, gate/up another, since they read the same input.
struct HessianCollector: BlockInputObserver {
    var accumulators: [LinearGroup: HessianAccumulator]

    init(groups: [LinearGroup], inputSizes: [LinearGroup: Int]) {
        accumulators = Dictionary(uniqueKeysWithValues: groups.compactMap { g in
            inputSizes[g].map { (g, HessianAccumulator(columns: $0)) }
        })
    }

    mutating func observe(block: Int, group: LinearGroup, input: Tensor) {
        accumulators[group]?.add(input)
    }
}

extension LinearGroup {
    /// The group whose input a block linear (HF suffix) reads.
    static func containing(_ suffix: String) -> LinearGroup? {
        allCases.first { $0.members.contains(suffix) }
    }
}
