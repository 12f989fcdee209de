import QDistComm
import QDistModel
import QDistQuant
import QDistTensor

/// Brings each linear group's Hessian to the ranks that solve with it: every rank's partial
/// fixed-point sum Σ 2·XᵀX goes by `Reduce(SUM)` on Int64 to the group's lead owner (not
/// Allreduce: only owners need H), which sends the total to the group's other owners. Integer
/// sums are exact, so H has the same bits for any P and any reduction tree
/// (`HessianAccumulator`); every rank built its accumulator on the same grid (the scale comes
/// from the Allreduce(MAX) of the inputs' column maxima).
///
/// Only the upper triangle travels (H is symmetric): n(n+1)/2 Int64.
enum HessianExchange {
    /// `owners[g]`: ranks that solve some linear reading group g's input, ascending. Returns
    /// the complete Hessians of the groups this rank owns.
    static func deliver(_ parts: [LinearGroup: HessianAccumulator], to owners: [LinearGroup: [Int]],
                        communicator comm: any Communicator) throws -> [LinearGroup: Tensor] {
        if comm.size == 1 { return parts.mapValues(\.hessian) }
        var out: [LinearGroup: Tensor] = [:]
        for (tag, group) in LinearGroup.allCases.enumerated() {
            guard let ranks = owners[group], let lead = ranks.first, let part = parts[group] else { continue }
            var packed = part.sum
            // Sequences, and how many ranks saw a non-finite input.
            var counts = [part.sampleCount, part.nonFinite ? 1 : 0]
            try comm.reduce(&packed, op: .sum, root: lead)
            try comm.reduce(&counts, op: .sum, root: lead)
            if comm.rank == lead {
                for other in ranks.dropFirst() {
                    try comm.send(packed, to: other, tag: 100 + tag)
                    try comm.send(counts, to: other, tag: 200 + tag)
                }
            } else if ranks.contains(comm.rank) {
                packed = try comm.receive(count: packed.count, from: lead, tag: 100 + tag)
                counts = try comm.receive(count: 2, from: lead, tag: 200 + tag)
            } else {
                continue
            }
            out[group] = HessianAccumulator(sum: packed, sampleCount: counts[0], scale: part.scale,
                                            nonFinite: counts[1] > 0).hessian
        }
        return out
    }
}
