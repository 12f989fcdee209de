import Foundation

/// How fast this job can SUM-allreduce a large Float buffer — the cost model behind ZeRO-0
/// gradient exchange and Hessian reduction.
///
/// Method: one warm-up allreduce (connection set-up, page faults), then `iterations` timed
/// allreduces, each preceded by a barrier. An iteration's time is the *slowest* rank's time
/// (allreduce MAX of the per-rank times), so every rank reports the same numbers.
/// ``Measurement/gigabytesPerSecond`` uses the **median** iteration (robust to a noisy shared
/// host); the best iteration is reported as well. Bandwidth is "algorithm bandwidth" as in
/// nccl-tests: buffer bytes / seconds, with 1 GB = 10⁹ bytes; ``Measurement/busGigabytesPerSecond``
/// scales it by 2(P−1)/P, the bytes each rank actually moves in a ring allreduce.
public enum AllreduceBandwidth {
    /// The timings of one measurement.
    public struct Measurement: Sendable, Equatable {
        /// Bytes in the allreduced buffer (a multiple of 4: Float elements).
        public var bytes: Int
        public var ranks: Int
        public var iterations: Int
        /// Slowest-rank seconds of the median iteration.
        public var medianSeconds: Double
        /// Slowest-rank seconds of the fastest iteration.
        public var bestSeconds: Double

        public init(bytes: Int, ranks: Int, iterations: Int, medianSeconds: Double, bestSeconds: Double) {
            self.bytes = bytes
            self.ranks = ranks
            self.iterations = iterations
            self.medianSeconds = medianSeconds
            self.bestSeconds = bestSeconds
        }

        /// bytes / median seconds / 10⁹ — the number `qdist env` reports.
        public var gigabytesPerSecond: Double { Double(bytes) / medianSeconds / 1e9 }
        /// bytes / best seconds / 10⁹.
        public var bestGigabytesPerSecond: Double { Double(bytes) / bestSeconds / 1e9 }
        /// Median bandwidth × 2(P−1)/P (0 for one rank, which moves nothing).
        public var busGigabytesPerSecond: Double { gigabytesPerSecond * 2 * Double(ranks - 1) / Double(ranks) }
    }

    /// Measures SUM-allreduce of a Float buffer of `bytes` (rounded down to whole Floats, at
    /// least one). Collective: every rank calls it with the same arguments. Keep `bytes` ≤ 8 MiB
    /// in tests (PLATFORM.md); 64 MiB shows the large-message regime.
    public static func measure(_ comm: any Communicator, bytes: Int = 64 << 20, iterations: Int = 5,
                               warmups: Int = 1) throws -> Measurement {
        let count = max(1, bytes / MemoryLayout<Float>.stride)
        let iterations = max(1, iterations)
        // Zeros stay zeros under SUM, so repeated in-place allreduces never overflow.
        var buffer = [Float](repeating: 0, count: count)
        for _ in 0..<max(0, warmups) { try comm.allreduce(&buffer, op: .sum) }
        var seconds = [Double](repeating: 0, count: iterations)
        for i in 0..<iterations {
            try comm.barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            try comm.allreduce(&buffer, op: .sum)
            seconds[i] = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        try comm.allreduce(&seconds, op: .max)
        let sorted = seconds.sorted()
        let median = sorted.count % 2 == 1
            ? sorted[sorted.count / 2]
            : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        return Measurement(bytes: count * MemoryLayout<Float>.stride, ranks: comm.size, iterations: iterations,
                           medianSeconds: max(median, 1e-9), bestSeconds: max(sorted[0], 1e-9))
    }
}
