import Foundation

/// This process's resident memory as Linux reports it, for the peak-RSS numbers every job prints.
public enum ProcessMemory {
    /// Peak resident set size in bytes (VmHWM), or nil where /proc is unavailable.
    public static var peakResidentBytes: Int? { statusField("VmHWM:") }

    /// Current resident set size in bytes (VmRSS).
    public static var residentBytes: Int? { statusField("VmRSS:") }

    /// Current private (anonymous) resident bytes (RssAnon): what this process holds itself,
    /// without the file-backed pages of memory-mapped checkpoints, which the page cache shares
    /// between ranks on a node and VmRSS counts in every one of them.
    public static var anonymousResidentBytes: Int? { statusField("RssAnon:") }

    /// A `kB` field of /proc/self/status, in bytes.
    static func statusField(_ key: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) })
        else { return nil }
        let digits = line.dropFirst(key.count).filter(\.isNumber)
        return Int(digits).map { $0 * 1024 }
    }
}
