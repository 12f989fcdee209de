import Foundation
import QDistComm
import QDistIO
import QDistQuant
import QDistTensor

/// The staging folder of a quantization job, where finished blocks are recorded so that the same
/// command after a crash (or after `--stop-after-block`) resumes after the last completed block.
///
/// Layout, beside the output folder `out`: `.out.qdist-partial/` holding `job.json` (what the
/// job is: rerunning a *different* job into the same output is refused), and per completed
/// block b: `blocks/block-0000b.rank-0000r.safetensors` (the linears rank r writes, in qdist's
/// lossless internal form: unsigned codes U8, Float32 scales, I32 zero points and group map,
/// Float32 bias; for W8A8 layers the input scheme in the metadata and a static scale as F32
/// `input_scale` / I32 `input_zero_point`) and, last, `blocks/block-0000b.json` (the block's report lines and its files) —
/// the record that marks the block complete. Every file is written under a temporary name and
/// renamed, so a crash leaves either a complete record or none. The finished output folder is
/// assembled inside the staging folder and renamed into place, so a reader never sees a partial
/// output. The folder must be on a filesystem every rank sees (as cluster scratch is).
public struct QuantizeProgressFolder {
    let staging: URL
    let blocks: URL
    /// Blocks 0..<completedBlocks are recorded (the same on every rank).
    let completedBlocks: Int

    static func stagingURL(for output: URL) -> URL {
        output.deletingLastPathComponent().appendingPathComponent(".\(output.lastPathComponent).qdist-partial")
    }

    /// Opens (rank 0 creates or validates; everyone learns how many blocks are done).
    /// `fingerprint` identifies the job; with `fresh`, an existing staging folder is discarded.
    static func open(output: URL, fingerprint: JSONValue, fresh: Bool, communicator comm: any Communicator) throws -> QuantizeProgressFolder {
        let staging = stagingURL(for: output), blocks = staging.appendingPathComponent("blocks")
        var completed = [0]
        var failure: String? = nil
        if comm.isMain {
            do {
                try lock(output: output)
                completed[0] = try prepare(staging: staging, blocks: blocks, fingerprint: fingerprint, fresh: fresh)
            } catch {
                failure = "\(error)"
            }
        }
        // Everyone must hear about a failure on rank 0, or they would wait in the next collective.
        var code = [failure == nil ? completed[0] : -1]
        try comm.broadcast(&code, root: 0)
        if code[0] < 0 {
            if let failure { throw QuantizePlanError(description: failure) }
            throw QuantizePlanError(description: "rank 0 could not prepare \(staging.path)")
        }
        return QuantizeProgressFolder(staging: staging, blocks: blocks, completedBlocks: code[0])
    }

    /// The descriptor of the lock this process holds on its output (rank 0), kept open for the
    /// life of the job: the kernel releases it when the process ends, however it ends.
    nonisolated(unsafe) private static var heldLock: Int32 = -1

    /// `.out.qdist-lock` beside the output, locked with flock: a second job into the same output
    /// is refused in one line instead of both writing the staging folder.
    static func lock(output: URL) throws {
        guard heldLock < 0 else { return }
        let url = output.deletingLastPathComponent().appendingPathComponent(".\(output.lastPathComponent).qdist-lock")
        try? FileManager.default.createDirectory(at: output.deletingLastPathComponent(), withIntermediateDirectories: true)
        let fd = Glibc.open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw QDistIOError(.io, path: url.path, "cannot create the job lock: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw QDistIOError(.io, path: output.path, "another qdist job is writing this output now (\(url.lastPathComponent) is locked); wait for it to finish or choose another output")
        }
        heldLock = fd
    }

    /// After a finished job: the lock file goes (the lock itself ends with the process).
    static func removeLock(output: URL) {
        try? FileManager.default.removeItem(at: output.deletingLastPathComponent().appendingPathComponent(".\(output.lastPathComponent).qdist-lock"))
    }

    private static func prepare(staging: URL, blocks: URL, fingerprint: JSONValue, fresh: Bool) throws -> Int {
        let fm = FileManager.default
        let jobURL = staging.appendingPathComponent("job.json")
        if fresh { try? fm.removeItem(at: staging) }
        var recordedBlocks = 0
        while recordIsIntact(blocks, recordedBlocks) { recordedBlocks += 1 }
        // A damaged record or block file (a torn write, a bad disk) and everything after it is
        // recomputed rather than trusted.
        var later = recordedBlocks
        while fm.fileExists(atPath: recordURL(blocks, later).path) {
            try? fm.removeItem(at: recordURL(blocks, later))
            later += 1
        }
        if fm.fileExists(atPath: jobURL.path), let recorded = try? JSONParser.parseFile(at: jobURL), recorded != fingerprint,
           recordedBlocks == 0 {
            // A job that failed or was refused before finishing a block left nothing worth
            // keeping: the corrected rerun starts over instead of being blocked by it.
            try? fm.removeItem(at: staging)
        }
        if fm.fileExists(atPath: jobURL.path) {
            let recorded = try JSONParser.parseFile(at: jobURL)
            guard recorded == fingerprint else {
                let changed = differingKeys(recorded, fingerprint)
                throw QDistIOError(.invalidArgument, path: staging.path,
                                   "holds \(recordedBlocks) finished blocks of another quantization job (it differs in \(changed.joined(separator: ", "))); rerun with its settings to resume, or pass --no-resume to discard them")
            }
        } else {
            try? fm.removeItem(at: staging)
            do { try fm.createDirectory(at: blocks, withIntermediateDirectories: true) } catch {
                throw QDistIOError(.io, path: staging.path, "cannot create folder: \(FileErrorReason.describe(error))")
            }
            try AtomicFileWriter.write(fingerprint.serialized(.pretty(sortKeys: false)) + [0x0A], to: jobURL)
        }
        var done = 0
        while recordIsIntact(blocks, done) { done += 1 }
        return done
    }

    /// The top-level keys whose values differ between two fingerprints.
    static func differingKeys(_ a: JSONValue, _ b: JSONValue) -> [String] {
        guard case .object(let x) = a, case .object(let y) = b else { return ["everything"] }
        let keys = (x.map(\.key) + y.map(\.key)).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let changed = keys.filter { k in x.first { $0.key == k }?.value != y.first { $0.key == k }?.value }
        return changed.isEmpty ? ["its settings"] : changed
    }

    static func recordURL(_ blocks: URL, _ block: Int) -> URL {
        blocks.appendingPathComponent(String(format: "block-%05d.json", block))
    }

    static func fileName(block: Int, rank: Int) -> String { String(format: "block-%05d.rank-%05d.safetensors", block, rank) }

    // MARK: - Writing a block

    /// Writes this rank's linears of `block` (if any); returns the file name written. A
    /// whole-model run (`CalibrationFreeQuantizer`) names its files with a `part` and keeps
    /// their report lines inside (`reports`), so a rerun can adopt them before the block is
    /// recorded.
    func writeLinears(_ staged: [StagedLinear], block: Int, rank: Int, part: Int? = nil,
                      reports: [QuantizationReport.Layer] = []) throws -> String? {
        guard !staged.isEmpty else { return nil }
        var tensors: [String: StoredTensor] = [:]
        var metadata: [String: String] = [:]
        if !reports.isEmpty {
            metadata[Self.reportKey] = String(decoding: JSONValue.array(reports.map(\.jsonValue)).serialized(), as: UTF8.self)
        }
        for s in staged {
            let l = s.weights
            if let g = l.ggml {
                // ggml blocks as encoded, one row of bytes per output row.
                tensors[l.name + ".ggml"] = StoredTensor(dtype: .u8, shape: [l.outFeatures, g.bytes.count / l.outFeatures], bytes: g.bytes)
                if let b = l.bias { tensors[l.name + ".bias"] = StoredTensor(b, as: .f32) }
                metadata[l.name] = "ggml:\(g.type.traits.name),\(l.inFeatures)"
                continue
            }
            tensors[l.name + ".codes"] = StoredTensor(dtype: .u8, shape: [l.outFeatures, l.inFeatures], bytes: l.codes.map { UInt8($0) })
            tensors[l.name + ".scales"] = StoredTensor(Tensor(shape: [l.outFeatures, l.groupCount], scalars: l.scales), as: .f32)
            if let z = l.zeroPoints { tensors[l.name + ".zero_points"] = StoredTensor.int32(z, shape: [l.outFeatures, l.groupCount]) }
            if let f = l.fractionalZeroPoints {
                tensors[l.name + ".fractional_zero_points"] = StoredTensor(Tensor(shape: [l.outFeatures, l.groupCount], scalars: f), as: .f32)
            }
            if let g = l.gIdx { tensors[l.name + ".g_idx"] = StoredTensor.int32(g, shape: [l.inFeatures]) }
            if let b = l.bias { tensors[l.name + ".bias"] = StoredTensor(b, as: .f32) }
            // bits (with "f" for FP8, "n"/"p" for NF4/FP4, "d" for double-quantized absmaxes and
            // "t" for one per-tensor scale), group size, input scheme.
            let typeLetter = [QuantizationArgs.ValueType.float: "f", .nf4: "n", .fp4: "p"][l.codeType] ?? ""
            metadata[l.name] = "\(l.numBits)\(typeLetter)\(l.doubleQuantizedAbsmax ? "d" : "")\(l.perTensor ? "t" : ""),\(l.groupSize ?? 0)"
                + (s.input.map { ",\($0.scheme.stagingText)" } ?? "")
            if let scale = s.input?.scale { tensors[l.name + ".input_scale"] = StoredTensor(Tensor(shape: [1], scalars: [scale]), as: .f32) }
            if let zero = s.input?.zeroPoint { tensors[l.name + ".input_zero_point"] = StoredTensor.int32([zero], shape: [1]) }
        }
        let name = part.map { Self.fileName(block: block, rank: rank, part: $0) } ?? Self.fileName(block: block, rank: rank)
        try SafetensorsWriter.write(tensors, metadata: metadata, to: blocks.appendingPathComponent(name))
        return name
    }

    /// Writes the float tensors a smoothing changed in `block` (norm weights, unquantized
    /// linears), the same on every rank; rank 0 calls it. Returns the file name.
    func writeFloatTensors(_ tensors: [String: Tensor], block: Int) throws -> String? {
        guard !tensors.isEmpty else { return nil }
        let name = String(format: "block-%05d.float.safetensors", block)
        try SafetensorsWriter.write(tensors.mapValues { StoredTensor($0, as: .f32) }, metadata: ["format": "pt"],
                                    to: blocks.appendingPathComponent(name))
        return name
    }

    /// The float tensors recorded for a block (none when its weights were not smoothed).
    func readFloatTensors(file: String) throws -> [String: Tensor] {
        let reader = try SafetensorsReader(url: blocks.appendingPathComponent(file))
        var out: [String: Tensor] = [:]
        for name in reader.tensorNames { out[name] = try reader.tensor(name) }
        return out
    }

    /// Marks `block` complete (rank 0, after every rank's file is in place), with each file's
    /// length and FNV-1a checksum so that a resume can tell a damaged file from a good one.
    /// `floatFile` holds the block's smoothed float tensors, if any.
    func recordBlock(_ block: Int, files: [String], layers: [QuantizationReport.Layer], floatFile: String? = nil,
                     smoothing: [JSONValue] = []) throws {
        let all = files + (floatFile.map { [$0] } ?? [])
        let sums = try all.map { try Self.checksum(of: blocks.appendingPathComponent($0)) }
        let record: JSONValue = .object([
            (key: "block", value: .integer(block)),
            (key: "files", value: .array(files.map { .string($0) })),
            (key: "float_file", value: floatFile.map { .string($0) } ?? .null),
            (key: "checksums", value: .array(sums.map { .string($0) })),
            (key: "layers", value: .array(layers.map(\.jsonValue))),
            (key: "smoothing", value: .array(smoothing)),
        ])
        try AtomicFileWriter.write(record.serialized(.pretty(sortKeys: false)) + [0x0A], to: Self.recordURL(blocks, block))
    }

    /// `<bytes>:<FNV-1a 64 hex>` of a file (not cryptographic: it catches torn and damaged
    /// writes, which is what a crash or a bad disk leaves).
    static func checksum(of url: URL) throws -> String {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw QDistIOError(.io, path: url.path, "cannot read: \(FileErrorReason.describe(error, path: url.path))")
        }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        data.withUnsafeBytes { p in for b in p { hash = (hash ^ UInt64(b)) &* 0x0000_0100_0000_01B3 } }
        return "\(data.count):" + String(hash, radix: 16)
    }

    /// Whether block `block`'s record parses and every file it names is there with the recorded
    /// checksum.
    static func recordIsIntact(_ blocks: URL, _ block: Int) -> Bool {
        guard let json = try? JSONParser.parseFile(at: recordURL(blocks, block)),
              var files = json["files"]?.arrayValue?.compactMap(\.stringValue),
              let sums = json["checksums"]?.arrayValue?.compactMap(\.stringValue) else { return false }
        if let f = json["float_file"]?.stringValue { files.append(f) }
        guard sums.count == files.count else { return false }
        return zip(files, sums).allSatisfy { (try? checksum(of: blocks.appendingPathComponent($0))) == $1 }
    }

    // MARK: - Reading back

    /// The files and report lines recorded for `block`.
    func record(_ block: Int) throws -> (files: [String], layers: [QuantizationReport.Layer], floatFile: String?, smoothing: [JSONValue]) {
        let url = Self.recordURL(blocks, block)
        let json = try JSONParser.parseFile(at: url)
        guard let files = json["files"]?.arrayValue?.compactMap(\.stringValue), let layers = json["layers"]?.arrayValue else {
            throw QDistIOError(.config, path: url.path, "is not a block record (needs \"files\" and \"layers\")")
        }
        return (files, try layers.map { try QuantizationReport.Layer(json: $0, path: url.path) }, json["float_file"]?.stringValue,
                json["smoothing"]?.arrayValue ?? [])
    }

    /// Every linear stored in one block file, with its input parameters.
    func readLinears(file: String) throws -> [StagedLinear] {
        let url = blocks.appendingPathComponent(file)
        let reader = try SafetensorsReader(url: url)
        return try reader.metadata.keys.filter { $0 != Self.reportKey }.sorted().map { name in
            let fields = reader.metadata[name]!.split(separator: ",", maxSplits: 2).map(String.init)
            let bitsField = fields.first ?? ""
            if bitsField.hasPrefix("ggml:") {
                guard let type = GGMLType(name: String(bitsField.dropFirst(5))), fields.count == 2, let columns = Int(fields[1]) else {
                    throw QDistIOError(.safetensors, path: url.path, "bad metadata for \(name)")
                }
                let blocks = try reader.storedTensor(name + ".ggml")
                let weights = try QuantizedLinearWeights(name: name, inFeatures: columns, outFeatures: blocks.shape[0],
                                                         ggml: .init(type: type, bytes: blocks.bytes),
                                                         bias: reader.contains(name + ".bias") ? try reader.tensor(name + ".bias") : nil)
                return StagedLinear(weights: weights, input: nil)
            }
            let perTensor = bitsField.contains("t")
            let codeType: QuantizationArgs.ValueType = bitsField.contains("f") ? .float : bitsField.contains("n") ? .nf4 : bitsField.contains("p") ? .fp4 : .int
            let parts = ([String(bitsField.filter(\.isNumber))] + fields.dropFirst().prefix(1)).compactMap { Int($0) }
            guard parts.count == 2 else { throw QDistIOError(.safetensors, path: url.path, "bad metadata for \(name)") }
            let codesInfo = try reader.storedTensor(name + ".codes")
            let (rows, columns) = (codesInfo.shape[0], codesInfo.shape[1])
            func ints(_ suffix: String) throws -> [Int32]? {
                guard reader.contains(name + suffix) else { return nil }
                return try reader.storedTensor(name + suffix).int32Values
            }
            let weights = try QuantizedLinearWeights(
                name: name, inFeatures: columns, outFeatures: rows, numBits: parts[0], groupSize: parts[1] == 0 ? nil : parts[1],
                codes: codesInfo.bytes.map { Int32($0) }, scales: try reader.tensor(name + ".scales").scalars,
                zeroPoints: try ints(".zero_points"), gIdx: try ints(".g_idx"),
                bias: reader.contains(name + ".bias") ? try reader.tensor(name + ".bias") : nil,
                codeType: codeType, perTensor: perTensor,
                fractionalZeroPoints: reader.contains(name + ".fractional_zero_points") ? try reader.tensor(name + ".fractional_zero_points").scalars : nil,
                doubleQuantizedAbsmax: bitsField.contains("d"))
            var input: InputActivationParameters? = nil
            if fields.count == 3 {
                guard let scheme = InputActivationScheme(stagingText: fields[2]) else {
                    throw QDistIOError(.safetensors, path: url.path, "bad input activation metadata for \(name)")
                }
                input = try InputActivationParameters(
                    scheme: scheme, scale: reader.contains(name + ".input_scale") ? try reader.tensor(name + ".input_scale").scalars[0] : nil,
                    zeroPoint: try ints(".input_zero_point")?.first, subject: name)
            }
            return StagedLinear(weights: weights, input: input)
        }
    }

    /// The rank that wrote a block file (from its name).
    static func writerRank(ofFile name: String) -> Int? {
        guard let r = name.range(of: ".rank-") else { return nil }
        return Int(name[r.upperBound...].prefix(5))
    }

    /// Every block file recorded so far.
    func allFiles(blockCount: Int) throws -> [String] {
        try (0..<blockCount).flatMap { try record($0).files }
    }
}

/// A linear as the staging folder records it: weights plus input parameters (W8A8).
struct StagedLinear {
    var weights: QuantizedLinearWeights
    var input: InputActivationParameters?
}

extension InputActivationScheme {
    /// `bits,sym|asym,tensor|token,dynamic|static,observer,int|float,threshold|-` — the scheme
    /// in staging metadata and in the scheme lists ranks exchange.
    var stagingText: String {
        "\(numBits),\(symmetric ? "sym" : "asym"),\(strategy.rawValue),\(dynamic ? "dynamic" : "static"),\(observer ?? "-"),\(type.rawValue),"
            + (outlierThreshold.map { "\($0)" } ?? "-")
    }

    init?(stagingText text: String) {
        let f = text.split(separator: ",").map(String.init)
        guard f.count == 7, let bits = Int(f[0]), let strategy = Strategy(rawValue: f[2]),
              let type = QuantizationArgs.ValueType(rawValue: f[5]) else { return nil }
        self.init(numBits: bits, symmetric: f[1] == "sym", strategy: strategy, dynamic: f[3] == "dynamic",
                  observer: f[4] == "-" ? nil : f[4], type: type, outlierThreshold: f[6] == "-" ? nil : Float(f[6]))
    }
}

extension QuantizationReport.Layer {
    /// The report line as JSON (also the form block records keep).
    var jsonValue: JSONValue {
        .object([
            (key: "name", value: .string(name)), (key: "bits", value: .integer(bits)),
            (key: "group_size", value: groupSize.map { .integer($0) } ?? .null),
            (key: "gptq_loss", value: gptqLoss.map { .number($0) } ?? .null),
            (key: "relative_error", value: .number(relativeError)), (key: "error_kind", value: .string(errorKind)),
            (key: "seconds", value: .number(seconds)),
        ] + (sparsity.map { [(key: "sparsity", value: JSONValue.number($0))] } ?? [])
          + (referenceRelativeError.map { [(key: "reference_relative_error", value: JSONValue.number($0))] } ?? []))
    }

    init(json: JSONValue, path: String) throws {
        guard let name = json["name"]?.stringValue, let bits = json["bits"]?.intValue,
              let relative = json["relative_error"]?.doubleValue, let kind = json["error_kind"]?.stringValue,
              let seconds = json["seconds"]?.doubleValue else {
            throw QDistIOError(.config, path: path, "a layer line lacks name, bits, relative_error, error_kind or seconds")
        }
        self.init(name: name, bits: bits, groupSize: json["group_size"]?.intValue, gptqLoss: json["gptq_loss"]?.doubleValue,
                  relativeError: relative, errorKind: kind, seconds: seconds, sparsity: json["sparsity"]?.doubleValue,
                  referenceRelativeError: json["reference_relative_error"]?.doubleValue)
    }
}
