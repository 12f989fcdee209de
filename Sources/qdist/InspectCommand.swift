import ArgumentParser
import Foundation
import QDistIO
import QDistPipeline
import QDistTensor

/// `qdist inspect`: lists the tensors of a safetensors checkpoint (file, folder or sharded
/// folder) or of a GGUF file with their totals, reading headers only. A thin shell over
/// `CheckpointSummary` and `GGUFFile`.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List the tensors in a safetensors checkpoint or GGUF file, with dtype, shape and size totals.",
        discussion: """
            PATH is a .safetensors file, or a model folder holding model.safetensors, or \
            model.safetensors.index.json and its shards. Only headers are read, so inspecting a \
            large checkpoint is instant. Every file is validated strictly (offsets, sizes, dtypes, \
            index against shards); a bad file is reported in one line naming it, and the exit \
            status is 1.

            After the table come the totals: tensor count, parameter count (stored elements), \
            total data bytes, bytes per dtype, the files' __metadata__, and the \
            quantization_config from config.json next to the weights, when there is one. A \
            quantized model (a folder with a quantization_config qdist reads, or a GGUF) also \
            gets its size per weight, all-in: every stored byte of the quantized linears \
            (codes, scales, zero points, g_idx; GGUF: the decoder linears' blocks) over their \
            weight count — W4 g128 with fp16 scales is just over 4.125, not 4.

            Examples:
              qdist inspect ./SmolLM2-135M
              qdist inspect ./out/model-00001-of-00002.safetensors
              qdist inspect ./SmolLM2-135M-W4A16 --json | jq .quantization_config
              qdist inspect ./out/smollm2-sparsegpt-2of4 --sparsity

            With --sparsity (a model folder), every decoder linear's weight is read as the \
            model runs it (quantized ones dequantized: a pruned code is its zero point, exactly \
            0) and the table ends with the sparsity per linear kind, how many linears follow \
            2:4 (at least two zeros in every four consecutive inputs of each row), and the \
            total; --json gains "sparsity": {"overall", "linears": [{"name", "sparsity", \
            "zeros", "elements", "structure"}]} with structure "2:4", "N:8" or null.

            With --json, one JSON object is printed: {"path", "files", "tensors": [{"name", \
            "dtype", "shape", "bytes", "file"}], "tensor_count", "parameter_count", \
            "total_bytes", "dtype_bytes", "metadata", "quantization_config"}, plus \
            "bits_per_weight", "quantized_linears", "quantized_linear_weights" and \
            "quantized_linear_bytes" for a quantized model (GGUF too).

            A GGUF file (a .gguf name, or a file that starts with "GGUF") is listed the same \
            way, with ggml type names (Q4_K, F16, ...), row-major shapes and block bytes, then \
            its metadata (long strings and arrays abbreviated). Its --json object is {"path", \
            "format": "gguf", "version", "alignment", "tensors": [{"name", "type", "shape", \
            "bytes"}], "tensor_count", "parameter_count", "total_bytes", "type_bytes", \
            "metadata"}, where arrays of more than 64 elements appear as {"type", "count"}.
            """)

    @Argument(help: "A .safetensors or .gguf file, or a folder with model.safetensors or model.safetensors.index.json.")
    var path: String

    @Flag(name: .long, help: "Print one JSON object instead of the table.")
    var json = false

    @Flag(name: .long, help: "Also read every decoder linear's weight (a model folder) and report its sparsity: exact zeros, and whether it follows 2:4 (or N:8).")
    var sparsity = false

    func run() throws {
        if Self.isGGUF(path) { return try inspectGGUF() }
        let summary: CheckpointSummary
        do {
            summary = try CheckpointSummary(url: URL(fileURLWithPath: path))
        } catch {
            FileHandle.standardError.write(Data("qdist inspect: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let folder = URL(fileURLWithPath: path).hasDirectoryPath || !path.hasSuffix(".safetensors") ? path : URL(fileURLWithPath: path).deletingLastPathComponent().path
        var sparse: SparsityReport? = nil
        if sparsity {
            do {
                let bundle = try ModelBundle.open(folder)
                sparse = try SparsityReport.measure(bundle.weights, config: bundle.config)
            } catch {
                FileHandle.standardError.write(Data("qdist inspect: error: --sparsity: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
        // A folder whose quantization qdist cannot read (AWQ, say) is still inspected: its size
        // per weight is left out with the reason.
        var bits: QuantizedBitsPerWeight? = nil
        if summary.quantizationConfig != nil {
            do { bits = try QuantizedBitsPerWeight.measure(folder: folder) } catch {
                FileHandle.standardError.write(Data("qdist inspect: note: bits per weight not measured: \(error)\n".utf8))
            }
        }
        if json {
            var value = summary.jsonValue
            if case .object(var pairs) = value {
                if let sparse { pairs.append((key: "sparsity", value: sparse.jsonValue)) }
                pairs += Self.bitsJSON(bits)
                value = .object(pairs)
            }
            print(value.compactText)
        } else {
            print(Self.report(summary), terminator: "")
            if let line = Self.bitsLine(bits) { print(line) }
            if let sparse { print("sparsity of the decoder linears (as the model runs them):\n" + sparse.table) }
        }
    }

    /// `bits_per_weight` and its parts, when measured.
    static func bitsJSON(_ b: QuantizedBitsPerWeight?) -> [(key: String, value: JSONValue)] {
        guard let b else { return [] }
        return [(key: "bits_per_weight", value: .number(b.bitsPerWeight)), (key: "quantized_linears", value: .integer(b.linears)),
                (key: "quantized_linear_weights", value: .integer(b.weights)), (key: "quantized_linear_bytes", value: .integer(b.bits / 8))]
    }

    static func bitsLine(_ b: QuantizedBitsPerWeight?) -> String? {
        guard let b else { return nil }
        return String(format: "quantized:   %d linears, %@ weights in %@: %.4f bits per weight (all-in: codes, scales, zero points, g_idx)",
                      b.linears, grouped(b.weights), humanBytes(b.bits / 8), b.bitsPerWeight)
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
        var out = table(rows) + "\n"
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

    /// Rows as aligned columns, two spaces apart; column 3 (BYTES) is right-aligned.
    static func table(_ rows: [[String]]) -> String {
        var widths = [Int](repeating: 0, count: rows.map(\.count).max() ?? 0)
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

// MARK: - GGUF

extension InspectCommand {
    /// True for a `.gguf` name or a regular file whose first bytes are "GGUF".
    static func isGGUF(_ path: String) -> Bool {
        if path.lowercased().hasSuffix(".gguf") { return true }
        // Only a regular file is sniffed: opening a FIFO would wait for a writer forever.
        guard let type = try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType,
              type == .typeRegular, let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 4)) == Data("GGUF".utf8)
    }

    func inspectGGUF() throws {
        let file: GGUFFile
        do {
            file = try GGUFFile(path: path)
        } catch {
            FileHandle.standardError.write(Data("qdist inspect: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        print(json ? Self.ggufJSON(file).compactText : Self.ggufReport(file), terminator: json ? "\n" : "")
    }

    /// Bytes per ggml type, largest first.
    static func typeBytes(_ file: GGUFFile) -> [(name: String, bytes: Int)] {
        var perType: [String: Int] = [:]
        for t in file.tensorInfos { perType[t.type.traits.name, default: 0] += t.byteCount }
        return perType.map { (name: $0.key, bytes: $0.value) }.sorted { $0.bytes != $1.bytes ? $0.bytes > $1.bytes : $0.name < $1.name }
    }

    /// The table, the totals and every metadata entry (abbreviated).
    static func ggufReport(_ file: GGUFFile) -> String {
        var rows = [["NAME", "TYPE", "SHAPE", "BYTES"]]
        for t in file.tensorInfos {
            rows.append([t.name, t.type.traits.name, "[" + t.shape.map(String.init).joined(separator: ", ") + "]", grouped(t.byteCount)])
        }
        let total = file.tensorInfos.reduce(0) { $0 + $1.byteCount }
        var out = table(rows) + "\n"
        out += "format:      GGUF v\(file.version), alignment \(file.alignment), data at byte \(grouped(file.dataOffset))\n"
        out += "tensors:     \(grouped(file.tensorInfos.count))\n"
        out += "parameters:  \(grouped(file.tensorInfos.reduce(0) { $0 + $1.elementCount }))\n"
        out += "total bytes: \(grouped(total)) (\(humanBytes(total)))\n"
        for (i, entry) in typeBytes(file).enumerated() {
            let percent = total > 0 ? Double(entry.bytes) * 100 / Double(total) : 0
            out += (i == 0 ? "by type:     " : "             ") + "\(entry.name) \(grouped(entry.bytes)) (\(String(format: "%.1f", percent))%)\n"
        }
        if let line = bitsLine(QuantizedBitsPerWeight.measure(gguf: file)) { out += line + "\n" }
        out += "metadata:\n"
        for (key, value) in file.metadata.entries { out += "  \(key) = \(value)\n" }
        return out
    }

    /// The `--json` object for a GGUF file.
    static func ggufJSON(_ file: GGUFFile) -> JSONValue {
        func abbreviated(_ v: GGUFValue) -> JSONValue {
            guard let a = v.array, a.count > 64 else { return v.jsonValue }
            return ["type": .string(a.elementType.name), "count": .integer(a.count)]
        }
        return .object([
            (key: "path", value: .string(file.url.path)),
            (key: "format", value: "gguf"),
            (key: "version", value: .integer(file.version)),
            (key: "alignment", value: .integer(file.alignment)),
            (key: "tensors", value: .array(file.tensorInfos.map { t in
                ["name": .string(t.name), "type": .string(t.type.traits.name),
                 "shape": .array(t.shape.map { .integer($0) }), "bytes": .integer(t.byteCount)]
            })),
            (key: "tensor_count", value: .integer(file.tensorInfos.count)),
            (key: "parameter_count", value: .integer(file.tensorInfos.reduce(0) { $0 + $1.elementCount })),
            (key: "total_bytes", value: .integer(file.tensorInfos.reduce(0) { $0 + $1.byteCount })),
            (key: "type_bytes", value: .object(typeBytes(file).map { (key: $0.name, value: .integer($0.bytes)) })),
        ] + bitsJSON(QuantizedBitsPerWeight.measure(gguf: file)) + [
            (key: "metadata", value: .object(file.metadata.entries.map { (key: $0.key, value: abbreviated($0.value)) })),
        ])
    }
}
