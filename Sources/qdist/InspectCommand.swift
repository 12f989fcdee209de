import ArgumentParser
import Foundation
import QDistIO
import QDistTensor

/// `qdist inspect`: lists the tensors of a safetensors checkpoint (file, folder or sharded
/// folder) with their totals, reading headers only. A thin shell over `CheckpointSummary`.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List the tensors in a safetensors checkpoint, with dtype, shape and size totals.",
        discussion: """
            PATH is a .safetensors file, or a model folder holding model.safetensors, or \
            model.safetensors.index.json and its shards. Only headers are read, so inspecting a \
            large checkpoint is instant. Every file is validated strictly (offsets, sizes, dtypes, \
            index against shards); a bad file is reported in one line naming it, and the exit \
            status is 1.

            After the table come the totals: tensor count, parameter count (stored elements), \
            total data bytes, bytes per dtype, the files' __metadata__, and the \
            quantization_config from config.json next to the weights, when there is one.

            Examples:
              qdist inspect ./SmolLM2-135M
              qdist inspect ./out/model-00001-of-00002.safetensors
              qdist inspect ./SmolLM2-135M-W4A16 --json | jq .quantization_config

            With --json, one JSON object is printed: {"path", "files", "tensors": [{"name", \
            "dtype", "shape", "bytes", "file"}], "tensor_count", "parameter_count", \
            "total_bytes", "dtype_bytes", "metadata", "quantization_config"}.
            """)

    @Argument(help: "A .safetensors file, or a folder with model.safetensors or model.safetensors.index.json.")
    var path: String

    @Flag(name: .long, help: "Print one JSON object instead of the table.")
    var json = false

    func run() throws {
        let summary: CheckpointSummary
        do {
            summary = try CheckpointSummary(url: URL(fileURLWithPath: path))
        } catch {
            FileHandle.standardError.write(Data("qdist inspect: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        if json {
            print(summary.jsonValue.compactText)
        } else {
            print(Self.report(summary), terminator: "")
        }
    }

    /// The human-readable table and totals.
    static func report(_ s: CheckpointSummary) -> String {
        let showFile = s.files.count > 1
        var header = ["NAME", "DTYPE", "SHAPE", "BYTES"]
        if showFile { header.append("FILE") }
        var rows = [header]
        for t in s.tensors {
            var row = [t.name, t.dtype.rawValue, "[" + t.shape.map(String.init).joined(separator: ", ") + "]", grouped(t.byteCount)]
            if showFile { row.append(t.file) }
            rows.append(row)
        }
        var widths = [Int](repeating: 0, count: header.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = ""
        for row in rows {
            var line = ""
            for (i, cell) in row.enumerated() {
                let padding = String(repeating: " ", count: widths[i] - cell.count)
                if i == 3 { line += padding + cell } else { line += cell + (i == row.count - 1 ? "" : padding) }
                if i < row.count - 1 { line += "  " }
            }
            out += line + "\n"
        }
        out += "\n"
        out += "files:       \(s.files.joined(separator: ", "))\n"
        out += "tensors:     \(grouped(s.tensorCount))\n"
        out += "parameters:  \(grouped(s.parameterCount))\n"
        out += "total bytes: \(grouped(s.totalBytes)) (\(humanBytes(s.totalBytes)))\n"
        for (i, entry) in s.dtypeBytes.enumerated() {
            let percent = s.totalBytes > 0 ? Double(entry.bytes) * 100 / Double(s.totalBytes) : 0
            out += (i == 0 ? "by dtype:    " : "             ")
                + "\(entry.dtype.rawValue) \(grouped(entry.bytes)) (\(String(format: "%.1f", percent))%)\n"
        }
        if !s.metadata.isEmpty {
            out += "metadata:    " + s.metadata.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + "\n"
        }
        if let q = s.quantizationConfig {
            out += "quantization_config:\n"
            out += String(decoding: q.serialized(.pretty(sortKeys: false)), as: UTF8.self) + "\n"
        }
        return out
    }

    /// 1234567 → "1,234,567".
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return n < 0 ? "-" + out : out
    }

    /// Bytes in binary units, e.g. "256.6 MiB".
    static func humanBytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(n) B" : String(format: "%.1f", value) + " " + units[unit]
    }
}
