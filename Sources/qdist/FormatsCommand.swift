import ArgumentParser
import QDistQuant

/// `qdist formats`: the number formats qdist reads and writes, with their real cost.
struct FormatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "formats",
        abstract: "List number formats: bits per weight (with scale overhead), range, resolution, bytes per parameter.",
        discussion: """
            Scaled formats (int-N, nf4, fp4, ternary, GGUF blocks) store codes that a scale \
            multiplies; their range and step are in units of that scale. Integer formats are \
            listed with one fp16 scale per \(NumberFormat.defaultListingGroupSize) weights \
            (W4A16's group size); `qdist memory --group-size` takes other sizes.

            Examples:
              qdist formats
              qdist formats --json | jq '.formats[] | select(.bits_per_weight < 5) | .name'
            """)

    @Flag(name: .long, help: "Print one JSON object for scripts.")
    var json = false

    func run() throws {
        let g = NumberFormat.defaultListingGroupSize
        let rows = NumberFormat.all.map { f -> (NumberFormat, Double, String) in
            let grouped = f.family == .integer
            return (f, f.bitsPerWeight(groupSize: grouped ? g : nil), grouped ? "fp16 scale per \(g)" : overheadNote(f))
        }
        if json {
            try ConsoleOutput.printJSON(["formats": rows.map { f, bits, overhead in
                [
                    "name": f.name, "family": f.family.rawValue, "code_bits": f.codeBits,
                    "bits_per_weight": bits, "bytes_per_parameter": bits / 8, "overhead": overhead,
                    "min": f.minimum, "max": f.maximum, "scaled": f.isScaled,
                    "smallest_positive": f.smallestPositive, "step_at_one": f.stepAtOne, "summary": f.summary,
                ] as [String: Any]
            }])
            return
        }
        var table = [["format", "bits/w", "B/param", "range", "smallest >0", "step", "overhead", "what it is"]]
        for (f, bits, overhead) in rows {
            table.append([
                f.name, String(format: "%.4g", bits), String(format: "%.4g", bits / 8),
                rangeText(f),
                ConsoleOutput.number(f.smallestPositive), ConsoleOutput.number(f.stepAtOne), overhead, f.summary,
            ])
        }
        print(ConsoleOutput.table(table, rightAligned: [1, 2, 4, 5]))
    }

    /// "±448" for symmetric ranges, "-8…7 ×s" otherwise; "×s" marks units of a scale.
    private func rangeText(_ f: NumberFormat) -> String {
        let unit = f.isScaled ? " ×s" : ""
        if f.minimum == -f.maximum { return "±\(ConsoleOutput.number(f.maximum))\(unit)" }
        return "\(ConsoleOutput.number(f.minimum))…\(ConsoleOutput.number(f.maximum))\(unit)"
    }

    private func overheadNote(_ f: NumberFormat) -> String {
        switch f.family {
        case .float: return "none"
        case .codebook, .ggufBlock: return String(format: "%.3g bits in the block", f.fixedOverheadBits)
        case .ternary: return "one scale per tensor"
        case .integer: return ""
        }
    }
}
