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
