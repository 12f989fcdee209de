import Foundation

/// This process's resident memory as Linux reports it, for the peak-RSS numbers every job prints.
public enum ProcessMemory {
    /// Peak resident set size in bytes (VmHWM), or nil where /proc is unavailable.
    public static var peakResidentBytes: Int? { statusField("VmHWM:") }

    /// Current resident set size in bytes (VmRSS).
    public static var residentBytes: Int? { statusField("VmRSS:") }

    /// A `kB` field of /proc/self/status, in bytes.
    static func statusField(_ key: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) })
        else { return nil }
        let digits = line.dropFirst(key.count).filter(\.isNumber)
        return Int(digits).map { $0 * 1024 }
    }
}

/// Progress of a long loop on stderr: `label i/N, rate, ETA`, at most a few lines per second
/// and only where `enabled` (rank 0), so logs of many ranks stay readable.
public final class ProgressReporter {
    let label: String
    let total: Int
    let unit: String
    let enabled: Bool
    let start = Date()
    var lastPrint = Date.distantPast
    let isTerminal = isatty(STDERR_FILENO) != 0

    public init(label: String, total: Int, unit: String = "tokens", enabled: Bool) {
        self.label = label
        self.total = total
        self.unit = unit
        self.enabled = enabled
    }

    /// Reports `done` of `total` steps and `work` units processed so far (for the rate).
    public func update(done: Int, work: Int) {
        guard enabled else { return }
        let now = Date()
        let finished = done >= total
        guard finished || now.timeIntervalSince(lastPrint) >= (isTerminal ? 0.25 : 5) else { return }
        lastPrint = now
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(work) / elapsed : 0
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let line = String(format: "%@ %d/%d  %.0f %@/s  elapsed %.0fs  ETA %.0fs", label, done, total, rate, unit, elapsed, eta)
        let text = isTerminal ? "\r\u{1B}[K" + line + (finished ? "\n" : "") : line + "\n"
        FileHandle.standardError.write(Data(text.utf8))
    }
}
