import QDistComm
import QDistModel
import QDistQuant
import QDistTensor

/// Brings each linear group's Hessian to the ranks that solve with it: every rank's partial sum
/// `H_r·n_r` goes by `Reduce(SUM)` to the group's lead owner (not Allreduce: only owners need
/// H), which divides by `Σ n_r` and sends the result to the group's other owners, so all pieces
/// of a split linear solve with bit-identical H (and so agree on act-order's group map).
///
/// Only the upper triangle travels (H is symmetric): n(n+1)/2 floats instead of n².
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
            var packed = packUpper(part.weightedSum)
            var count = [part.sampleCount]
            try comm.reduce(&packed, op: .sum, root: lead)
            try comm.reduce(&count, op: .sum, root: lead)
            if comm.rank == lead {
                let inverse = count[0] > 0 ? 1 / Float(count[0]) : 0
                for i in packed.indices { packed[i] *= inverse }
                for other in ranks.dropFirst() { try comm.send(packed, to: other, tag: 100 + tag) }
                out[group] = unpackUpper(packed, columns: n)
            } else if ranks.contains(comm.rank) {
                let received: [Float] = try comm.receive(count: n * (n + 1) / 2, from: lead, tag: 100 + tag)
                out[group] = unpackUpper(received, columns: n)
            }
        }
        return out
    }

    /// Row-major upper triangle (j ≥ i) of a square matrix.
    static func packUpper(_ m: Tensor) -> [Float] {
        let n = m.shape[0]
        var out = [Float]()
        out.reserveCapacity(n * (n + 1) / 2)
        m.withUnsafeBufferPointer { p in
            for i in 0..<n { out.append(contentsOf: p[(i * n + i)..<(i * n + n)]) }
        }
        return out
    }

    /// The symmetric matrix whose upper triangle is `packed`.
    static func unpackUpper(_ packed: [Float], columns n: Int) -> Tensor {
        var m = Tensor.zeros([n, n])
        m.withUnsafeMutableBufferPointer { p in
            var k = 0
            for i in 0..<n {
                for j in i..<n { p[i * n + j] = packed[k]; k += 1 }
            }
        }
        m.symmetrizeFromUpper()
        return m
    }
}

/// Where one rank's time went (seconds): block forwards, solves, collectives, file I/O.
struct RankTimers {
    var forward = 0.0, solve = 0.0, collectives = 0.0, io = 0.0

    /// Every rank's timers, rank by rank, for the report.
    func gathered(communicator comm: any Communicator) throws -> [[String: Double]] {
        let all: [Double] = try comm.allgather([forward, solve, collectives, io])
        var out: [[String: Double]] = []
        for r in 0..<comm.size {
            let v = Array(all[(4 * r)..<(4 * r + 4)])
            out.append(["forward": v[0], "solve": v[1], "collectives": v[2], "io": v[3]])
        }
        return out
    }
}
