import Foundation
import QDistComm
import QDistTensor

/// The linears a recipe prunes without quantizing them (a recipe that only prunes): the owner
/// of each work item prunes its rows against the combined Hessian, and every rank receives the
/// pruned float rows, since the next calibration stage and block run on them. Unlike quantized
/// linears (`QuantizedLinearExchange`, codes as bytes) these travel as Float32: there is no
/// smaller exact form of an arbitrary pruned float weight. The block's record stages them as
/// changed float tensors, so a rerun resumes after them and the output writes them in the
/// model's float dtype, zeros included.
enum PrunedFloatLinears {
    /// One pruned work item: its rows, and the statistics of its report line.
    struct Piece {
        var item: SolveAssignment.Item
        var weight: Tensor
        var errorQuadratic: Double
        var weightQuadratic: Double
        var seconds: Double
    }

    /// A complete pruned linear after the exchange.
    struct Solved {
        var weight: Tensor
        var report: QuantizationReport.Layer
    }

    /// Prunes `w` (some rows of `linear`) with the plan's pruning step.
    static func prune(_ w: Tensor, item: SolveAssignment.Item, hessian: Tensor?, plan: QuantizationPlan) throws -> Piece {
        let t0 = Date()
        guard let pruning = plan.pruning else { throw QuantizePlanError(description: "\(item.name): the plan prunes it but has no pruning step") }
        guard let hessian else { throw QuantizePlanError(description: "\(item.name): \(pruning.name) needs the calibration Hessian") }
        let pruned = try pruning.prune(w, hessian: hessian)
        try pruning.checkPattern(pruned, name: item.name)
        return Piece(item: item, weight: pruned, errorQuadratic: SequentialQuantizer.quadratic(w - pruned, hessian),
                     weightQuadratic: SequentialQuantizer.quadratic(w, hessian), seconds: Date().timeIntervalSince(t0))
    }

    /// Every rank's pieces to every rank (one `Allgatherv` of floats and one of statistics, laid
    /// out in `assignment.items` order, which every rank knows); returns the joined linears by
    /// name. `bits` is the width of the float dtype the output will store them in.
    static func share(_ mine: [Piece], assignment: SolveAssignment, bits: Int, communicator comm: any Communicator) throws -> [String: Solved] {
        // Every rank holds the same assignment: with nothing pruned in float, no collective runs.
        guard !assignment.items.isEmpty else { return [:] }
        var pieces: [Piece]
        if comm.size == 1 {
            pieces = mine
        } else {
            let floats = try comm.allgatherv(mine.flatMap(\.weight.scalars))
            let stats = try comm.allgatherv(mine.flatMap { [$0.errorQuadratic, $0.weightQuadratic, $0.seconds] })
            var cursor = [(floats: Int, stats: Int)](repeating: (0, 0), count: comm.size)
            pieces = []
            for item in assignment.items {
                let r = item.owner, n = item.rows.count * item.columns
                let c = cursor[r]
                guard c.floats + n <= floats[r].count, c.stats + 3 <= stats[r].count else {
                    throw QuantizePlanError(description: "rank \(r) sent fewer pruned rows than the assignment gives it (\(item.name))")
                }
                let s = stats[r][c.stats..<c.stats + 3].map { $0 }
                pieces.append(Piece(item: item, weight: Tensor(shape: [item.rows.count, item.columns], scalars: Array(floats[r][c.floats..<c.floats + n])),
                                    errorQuadratic: s[0], weightQuadratic: s[1], seconds: s[2]))
                cursor[r] = (c.floats + n, c.stats + 3)
            }
        }
        var out: [String: Solved] = [:]
        for name in QuantizedLinearExchange.uniqueNames(assignment.items) {
            let parts = pieces.filter { $0.item.name == name }.sorted { $0.item.rows.lowerBound < $1.item.rows.lowerBound }
            guard let first = parts.first else { continue }
            let rows = parts.reduce(0) { $0 + $1.item.rows.count }
            let weight = Tensor(shape: [rows, first.item.columns], scalars: parts.flatMap(\.weight.scalars))
            let eq = parts.reduce(0) { $0 + $1.errorQuadratic }, wq = parts.reduce(0) { $0 + $1.weightQuadratic }
            let zeros = weight.scalars.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
            out[name] = Solved(weight: weight, report: QuantizationReport.Layer(
                name: name, bits: bits, groupSize: nil, gptqLoss: nil, relativeError: (eq / max(wq, .leastNonzeroMagnitude)).squareRoot(),
                errorKind: "output", seconds: parts.reduce(0) { $0 + $1.seconds }, sparsity: Double(zeros) / Double(max(weight.count, 1))))
        }
        return out
    }
}
