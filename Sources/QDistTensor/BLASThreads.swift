import CBLAS
import Foundation

/// The thread count of qdist's matrix products, and the rule qdist uses to pick it.
///
/// OpenBLAS itself always runs on one thread: its threaded drivers round differently from its
/// one-thread driver (`BLAS` explains), so `BLAS` cuts every large product into fixed tiles
/// and runs them on `current` workers. The first use reads the count OpenBLAS took from the
/// environment (OPENBLAS_NUM_THREADS, or the cores) and then pins OpenBLAS to one thread.
///
/// Under mpirun, N ranks × T threads on fewer cores fight each other and MPI's busy polling,
/// so each rank gets `cores / ranksOnThisNode` threads (at least 1). A user's
/// OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS) always wins: qdist never overrides it silently.
public enum BLASThreads {
    /// The product thread count, behind a lock (products read it from any thread).
    private final class Count: @unchecked Sendable {
        private let lock = NSLock()
        private var threads: Int
        init() {
            threads = max(1, Int(openblas_get_num_threads()))
            openblas_set_num_threads(1)
        }
        var value: Int {
            get { lock.lock(); defer { lock.unlock() }; return threads }
            set { lock.lock(); threads = max(1, newValue); lock.unlock() }
        }
    }
    private static let count = Count()

    /// The workers the next product may use.
    public static var current: Int { count.value }

    /// Sets the product thread count (clamped to ≥ 1). OpenBLAS stays on one thread.
    public static func set(_ threads: Int) { count.value = threads }

    /// Runs `body` with OpenBLAS on one thread — which it always is: kept for the LAPACK call
    /// sites, whose factorizations (spotrf, strtri) must never run threaded, and so that the
    /// count is read (and OpenBLAS pinned) before their first call.
    public static func withOneThread<T>(_ body: () throws -> T) rethrows -> T {
        _ = count
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
