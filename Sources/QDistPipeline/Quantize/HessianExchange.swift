import QDistComm
import QDistModel
import QDistQuant
import QDistTensor

/// Brings each linear group's Hessian to the ranks that solve with it: every rank's partial
/// Float64 sum Σ 2·XᵀX goes by `Reduce(SUM)` to the group's lead owner (not Allreduce: only
/// owners need H), which sends the total to the group's other owners, so all pieces of a split
/// linear solve with bit-identical H (and so agree on act-order's group map). Float64 sums make
/// H the same for any P once rounded to Float32 (`HessianAccumulator`).
///
/// Only the upper triangle travels (H is symmetric): n(n+1)/2 doubles.
enum HessianExchange {
    /// `owners[g]`: ranks that solve some linear reading group g's input, ascending. Returns
    /// the complete Hessians of the groups this rank owns.
    static func deliver(_ parts: [LinearGroup: HessianAccumulator], to owners: [LinearGroup: [Int]],
                        communicator comm: any Communicator) throws -> [LinearGroup: Tensor] {
        if comm.size == 1 { return parts.mapValues(\.hessian) }
        var out: [LinearGroup: Tensor] = [:]
        for (tag, group) in LinearGroup.allCases.enumerated() {
            guard let ranks = owners[group], let lead = ranks.first, let part = parts[group] else { continue }
            let n = part.columns
            var packed = part.sum
            var count = [part.sampleCount]
            try comm.reduce(&packed, op: .sum, root: lead)
            try comm.reduce(&count, op: .sum, root: lead)
            if comm.rank == lead {
                for other in ranks.dropFirst() {
                    try comm.send(packed, to: other, tag: 100 + tag)
                    try comm.send(count, to: other, tag: 200 + tag)
                }
                out[group] = HessianAccumulator(sum: packed, sampleCount: count[0], columns: n).hessian
            } else if ranks.contains(comm.rank) {
                let received: [Double] = try comm.receive(count: n * (n + 1) / 2, from: lead, tag: 100 + tag)
                let total: [Int] = try comm.receive(count: 1, from: lead, tag: 200 + tag)
                out[group] = HessianAccumulator(sum: received, sampleCount: total[0], columns: n).hessian
            }
        }
        return out
    }
}
