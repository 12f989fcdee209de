import ArgumentParser
import Foundation

/// Formatting shared by the subcommands: byte sizes, aligned tables, JSON, one-line errors.
enum ConsoleOutput {
    /// Decimal units as model cards and the ZeRO paper quote them: "14.0 GB", "540.3 MB".
    static func bytes(_ b: Double) -> String {
        let units: [(Double, String)] = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")]
        for (scale, unit) in units where b.magnitude >= scale { return String(format: "%.1f %@", b / scale, unit) }
        return String(format: "%.0f B", b)
    }

    /// Binary units, for comparing with what `free -h` or a GPU shows: "13.04 GiB".
    static func binaryBytes(_ b: Double) -> String {
        let units: [(Double, String)] = [(1_099_511_627_776, "TiB"), (1_073_741_824, "GiB"), (1_048_576, "MiB"), (1024, "KiB")]
        for (scale, unit) in units where b.magnitude >= scale { return String(format: "%.2f %@", b / scale, unit) }
        return String(format: "%.0f B", b)
    }

    /// A parameter count the way people say it: "7.00 B", "134.5 M".
    static func count(_ n: Double) -> String {
        if n >= 1e9 { return String(format: "%.2f B", n / 1e9) }
        if n >= 1e6 { return String(format: "%.1f M", n / 1e6) }
        if n >= 1e3 { return String(format: "%.1f k", n / 1e3) }
        return String(format: "%.0f", n)
    }

    /// A compact number for tables: 448, 6.55e+04, 5.96e-08.
    static func number(_ x: Double) -> String {
        if x == x.rounded() && x.magnitude < 1e5 { return String(format: "%.0f", x) }
        if x.magnitude >= 1e-2 && x.magnitude < 1e5 { return String(format: "%.4g", x) }
        return String(format: "%.3g", x)
    }

    /// Rows padded into aligned columns; the first row is the header, followed by a rule.
    static func table(_ rows: [[String]], rightAligned: Set<Int> = []) -> String {
        guard let header = rows.first else { return "" }
        var widths = [Int](repeating: 0, count: header.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ row: [String]) -> String {
            row.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return rightAligned.contains(i) ? pad + cell : cell + pad
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        var out = [line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
        out += rows.dropFirst().map(line)
        return out.joined(separator: "\n")
    }

    /// Prints one JSON object (keys sorted, so output is stable for scripts and tests).
    static func printJSON(_ object: Any) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    }

    /// Prints `qdist <command>: error: <message>` as one line on stderr and returns the exit
    /// code to throw: runtime failures get one line, not ArgumentParser's usage text.
    static func fail(_ command: String, _ message: String) -> ExitCode {
        let oneLine = message.replacingOccurrences(of: "\n", with: " ")
        FileHandle.standardError.write(Data("qdist \(command): error: \(oneLine)\n".utf8))
        return ExitCode(1)
    }
}
