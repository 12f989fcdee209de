/// One collective's verdict in a ``CollectiveSelfCheck`` run.
public struct CollectiveCheckResult: Sendable, Equatable, Codable {
    /// Stable name, e.g. "allreduce.sum.Float" or "chunked.allgatherv.Float.unevenWithZero".
    public var name: String
    /// True when every rank saw the exact expected result.
    public var passed: Bool
    /// "ok", or what differed on this rank (first mismatching element, or the error).
    public var detail: String

    public init(name: String, passed: Bool, detail: String) {
        self.name = name
        self.passed = passed
        self.detail = detail
    }
}

/// The verdicts of a whole self-check, agreed on by every rank.
public struct CollectiveSelfCheckReport: Sendable, Equatable {
    public var checks: [CollectiveCheckResult]

    public init(checks: [CollectiveCheckResult]) { self.checks = checks }
    /// True when every check passed on every rank (combined with allreduce MIN).
    public var passed: Bool { checks.allSatisfy(\.passed) }
}

/// Runs every collective qdist uses on deterministic, integer-valued data and compares with
/// results computed locally, so any wrong byte is caught exactly (no tolerances).
///
/// Runs twice: on the given communicator, then on a duplicate with a tiny
/// ``chunkedMaxElements`` (names prefixed "chunked.") whose buffers are larger than one chunk, so
/// the chunked paths (contiguous chunks and gather rounds) are exercised at every world size.
/// Each check's verdict is combined across ranks with allreduce MIN, so every rank returns the
/// same report. A collective that *throws* on some rank can still hang the others; the caller
/// should abort the job then. Pure over ``Communicator``: works on the single-process one too.
public enum CollectiveSelfCheck {
    /// Name prefix of the checks run through the small-chunk duplicate communicator.
    public static let chunkedPrefix = "chunked."
    /// The chunk size of the second pass.
    public static let chunkedMaxElements = 1000

    /// Runs both passes and returns the checks, agreed across ranks.
    public static func run(on comm: any Communicator) throws -> CollectiveSelfCheckReport {
        var checks = suite(comm, prefix: "")
        let chunked = try comm.duplicate(maxChunkElements: chunkedMaxElements)
        checks += suite(chunked, prefix: chunkedPrefix)
        checks.append(verify("\(chunkedPrefix)communicator.maxChunkElements") {
            chunked.maxChunkElements == chunkedMaxElements ? nil : "maxChunkElements is \(chunked.maxChunkElements)"
        })
        try chunked.finalize()
        // Agree: a check passes only if it passed on every rank.
        var flags = checks.map { Int32($0.passed ? 1 : 0) }
        try comm.allreduce(&flags, op: .min)
        for i in checks.indices where flags[i] == 0 && checks[i].passed {
            checks[i].passed = false
            checks[i].detail = "failed on another rank"
        }
        return CollectiveSelfCheckReport(checks: checks)
    }

    // Sizes above `chunkedMaxElements` so the chunked pass really splits.
    static let vectorCount = 2_503
    static let ringCount = 2_049
    static let gatherCount = 1_201

    static func suite(_ comm: any Communicator, prefix: String) -> [CollectiveCheckResult] {
        let p = comm.size, me = comm.rank
        var checks: [CollectiveCheckResult] = []
        func add(_ name: String, _ body: () throws -> String?) { checks.append(verify(prefix + name, body)) }

        add("barrier") { try comm.barrier(); try comm.barrier(); return nil }
        if let mpi = comm as? MPICommunicator {
            add("mpi.errorsReturnAsCommunicatorError") { mpi.verifyErrorsReturn() }
        }
        add("broadcast.Float.everyRoot") {
            for root in 0..<p {
                var buffer: [Float] = me == root ? values(root, vectorCount) : []
                try comm.broadcast(&buffer, root: root)
                if let diff = compare(buffer, values(root, vectorCount)) { return "root \(root): \(diff)" }
            }
            return nil
        }
        add("broadcast.UInt8.everyRoot") {
            for root in 0..<p {
                var buffer: [UInt8] = me == root ? (0..<vectorCount).map { UInt8(($0 + root) % 251) } : []
                try comm.broadcast(&buffer, root: root)
                if let diff = compare(buffer, (0..<vectorCount).map { UInt8(($0 + root) % 251) }) { return "root \(root): \(diff)" }
            }
            return nil
        }
        add("reduce.sum.Double.rootLast") {
            let root = p - 1
            var buffer: [Double] = values(me, vectorCount, large: true)
            try comm.reduce(&buffer, op: .sum, root: root)
            let expected: [Double] = me == root ? sumOverRanks(p, vectorCount, large: true) : values(me, vectorCount, large: true)
            return compare(buffer, expected)
        }
        for op in ReduceOp.allCases {
            add("allreduce.\(op.rawValue).Float") { try allreduceCheck(comm, Float.self, op: op, large: false) }
            add("allreduce.\(op.rawValue).Double") { try allreduceCheck(comm, Double.self, op: op, large: true) }
            add("allreduce.\(op.rawValue).Int32") { try allreduceCheck(comm, Int32.self, op: op, large: false) }
            add("allreduce.\(op.rawValue).Int64") { try allreduceCheck(comm, Int64.self, op: op, large: true) }
        }
        add("allgather.Int32") {
            let gathered = try comm.allgather(values(me, gatherCount) as [Int32])
            return compare(gathered, (0..<p).flatMap { values($0, gatherCount) as [Int32] })
        }
        // Rank 1 contributes nothing; the others contribute rank-dependent counts.
        let gathervCount = { (r: Int) in r == 1 ? 0 : 1_500 + 211 * r }
        add("allgatherv.Float.unevenWithZero") {
            let gathered = try comm.allgatherv(values(me, gathervCount(me)) as [Float])
            guard gathered.count == p else { return "\(gathered.count) blocks for \(p) ranks" }
            for r in 0..<p {
                if let diff = compare(gathered[r], values(r, gathervCount(r))) { return "block \(r): \(diff)" }
            }
            return nil
        }
        // Rank 2 receives nothing; blocks differ in length.
        let counts = (0..<p).map { $0 == 2 ? 0 : 1_100 + 37 * $0 }
        add("reduceScatter.sum.Float.uneven") {
            let total = counts.reduce(0, +)
            let block = try comm.reduceScatter(values(me, total) as [Float], counts: counts)
            let offset = counts.prefix(me).reduce(0, +)
            let expected: [Float] = sumOverRanks(p, total)
            return compare(block, Array(expected[offset..<offset + counts[me]]))
        }
        add("sendReceive.ring.Int64") {
            guard p > 1 else { return nil }  // no peer: the single-rank case is a documented throw
            let next = (me + 1) % p, previous = (me + p - 1) % p
            // Even ranks send first, odd ranks receive first: no cycle of blocked sends.
            var received: [Int64] = []
            if me % 2 == 0 {
                try comm.send(values(me, ringCount, large: true) as [Int64], to: next, tag: 7)
                received = try comm.receive(count: ringCount, from: previous, tag: 7)
            } else {
                received = try comm.receive(count: ringCount, from: previous, tag: 7)
                try comm.send(values(me, ringCount, large: true) as [Int64], to: next, tag: 7)
            }
            return compare(received, values(previous, ringCount, large: true))
        }
        add("allgatherStrings") {
            let names = try comm.allgatherStrings("rank-\(me)-ü" + String(repeating: "x", count: me * 600))
            let expected = (0..<p).map { "rank-\($0)-ü" + String(repeating: "x", count: $0 * 600) }
            return names == expected ? nil : "got \(names.map(\.count)) characters, expected \(expected.map(\.count))"
        }
        return checks
    }

    // MARK: - Deterministic data (exact in every type: small integers, or multiples of 2^33)

    /// Rank r's element i: `(r+1)·1000 + i mod 997`, times 2^33 when `large` (Int64, Double).
    static func value(_ r: Int, _ i: Int, large: Bool) -> Int {
        ((r + 1) * 1000 + i % 997) * (large ? 1 << 33 : 1)
    }

    /// Values for MAX/MIN: spread over negatives and positives, order differing by rank.
    static func mixedValue(_ r: Int, _ i: Int) -> Int { (r * 7_919 + i * 31) % 101 - 50 }

    static func values<T: CommunicatorScalar>(_ r: Int, _ count: Int, large: Bool = false) -> [T] {
        (0..<count).map { T(exactly: value(r, $0, large: large))! }
    }

    static func sumOverRanks<T: CommunicatorScalar>(_ p: Int, _ count: Int, large: Bool = false) -> [T] {
        (0..<count).map { i in T(exactly: (0..<p).reduce(0) { $0 + value($1, i, large: large) })! }
    }

    static func allreduceCheck<T: CommunicatorScalar>(_ comm: any Communicator, _: T.Type, op: ReduceOp,
                                                      large: Bool) throws -> String? {
        let p = comm.size, me = comm.rank, n = vectorCount
        var buffer: [T]
        let expected: [T]
        switch op {
        case .sum:
            buffer = values(me, n, large: large)
            expected = sumOverRanks(p, n, large: large)
        case .max, .min:
            buffer = (0..<n).map { T(exactly: mixedValue(me, $0))! }
            expected = (0..<n).map { i in
                let all = (0..<p).map { mixedValue($0, i) }
                return T(exactly: op == .max ? all.max()! : all.min()!)!
            }
        }
        try comm.allreduce(&buffer, op: op)
        return compare(buffer, expected)
    }

    static func compare<T: Equatable>(_ got: [T], _ expected: [T]) -> String? {
        guard got.count == expected.count else { return "got \(got.count) elements, expected \(expected.count)" }
        guard let i = got.indices.first(where: { got[$0] != expected[$0] }) else { return nil }
        return "element \(i): got \(got[i]), expected \(expected[i])"
    }

    /// Runs one check: `body` returns nil when right, or what differed; a throw is a failure.
    static func verify(_ name: String, _ body: () throws -> String?) -> CollectiveCheckResult {
        do {
            if let problem = try body() { return CollectiveCheckResult(name: name, passed: false, detail: problem) }
            return CollectiveCheckResult(name: name, passed: true, detail: "ok")
        } catch {
            return CollectiveCheckResult(name: name, passed: false, detail: "threw: \(error)")
        }
    }
}
