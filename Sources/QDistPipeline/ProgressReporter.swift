import Foundation

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
        let rateText = rate >= 10 ? String(format: "%.0f %@/s", rate, unit) : String(format: "%.1f s/%@", rate > 0 ? 1 / rate : 0, String(unit.dropLast()))
        let line = String(format: "%@ %d/%d  %@  elapsed %.0fs  ETA %.0fs", label, done, total, rateText, elapsed, eta)
        let text = isTerminal ? "\r\u{1B}[K" + line + (finished ? "\n" : "") : line + "\n"
        FileHandle.standardError.write(Data(text.utf8))
    }
}
