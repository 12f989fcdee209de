import CBLAS
import Foundation

/// The OpenBLAS thread count, and the rule qdist uses to pick it.
///
/// Under mpirun, N ranks × T BLAS threads on fewer cores fight each other and MPI's busy
/// polling, so each rank gets `cores / ranksOnThisNode` threads (at least 1). A user's
/// OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS) always wins: qdist never overrides it silently.
public enum BLASThreads {
    /// The threads OpenBLAS will use for the next call.
    public static var current: Int { Int(openblas_get_num_threads()) }

    /// Sets the OpenBLAS thread count (clamped to ≥ 1).
    public static func set(_ threads: Int) { openblas_set_num_threads(Int32(max(1, threads))) }

    /// Runs `body` with OpenBLAS on one thread, then restores the count. For LAPACK calls:
    /// OpenBLAS's threaded factorizations (spotrf, strtri) are other algorithms than its
    /// one-thread ones and round differently, and `BLAS`'s depth split cannot reach inside them.
    public static func withOneThread<T>(_ body: () throws -> T) rethrows -> T {
        let threads = current
        if threads == 1 { return try body() }
        set(1)
        defer { set(threads) }
        return try body()
    }

    /// The kernel family OpenBLAS chose for this CPU (e.g. "Haswell", "SkylakeX").
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// OpenBLAS's build description, which begins with its version ("OpenBLAS 0.3.21 ...").
    public static var config: String { String(cString: openblas_get_config()) }

    /// CPUs this process may run on (its affinity mask), which is 1 when mpirun bound the rank.
    public static var availableCores: Int {
        // Linux reports the affinity mask in /proc/self/status as comma-separated hex words.
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) {
            let mask = line.dropFirst("Cpus_allowed:".count).filter { $0.isHexDigit }
            let count = mask.reduce(0) { $0 + (Int(String($1), radix: 16) ?? 0).nonzeroBitCount }
            if count > 0 { return count }
        }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// The thread count for one of `ranksOnNode` ranks sharing `cores`, unless the environment
    /// fixes it. Returns the count chosen and whether it came from the environment.
    public static func recommended(ranksOnNode: Int, cores: Int = availableCores,
                                   environment: [String: String] = ProcessInfo.processInfo.environment)
        -> (threads: Int, fromEnvironment: Bool)
    {
        for key in ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"] {
            if let v = environment[key], let n = Int(v), n > 0 { return (n, true) }
        }
        return (max(1, cores / max(1, ranksOnNode)), false)
    }

    /// Applies `recommended(ranksOnNode:)` and returns the thread count now in force.
    @discardableResult
    public static func configure(ranksOnNode: Int) -> Int {
        let choice = recommended(ranksOnNode: ranksOnNode)
        if !choice.fromEnvironment { set(choice.threads) }
        return current
    }
}
