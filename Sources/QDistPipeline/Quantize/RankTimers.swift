import QDistComm

/// Where one rank's time went (seconds): block forwards, solves, collectives, file I/O.
struct RankTimers {
    var forward = 0.0, solve = 0.0, collectives = 0.0, io = 0.0
    /// Largest private (anonymous) resident bytes seen at the sampling points.
    var peakPrivateBytes = 0

    /// Samples private memory where a rank holds the most: after a stage's forward (the staged
    /// windows' pending tensors are alive) and after a block.
    mutating func sampleMemory() {
        peakPrivateBytes = max(peakPrivateBytes, ProcessMemory.anonymousResidentBytes ?? 0)
    }

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
