import Foundation

/// An importance matrix as llama.cpp's `llama-imatrix` writes it and `llama-quantize --imatrix`
/// reads it (FORMATS.md §2.7): for every weight `blk.*` (GGUF names), the sum of squared input
/// activations per input column and the number of tokens seen.
///
/// Files: the GGUF format (`general.type` = "imatrix", `imatrix.datasets`, `imatrix.chunk_count`,
/// `imatrix.chunk_size`; tensors `<name>.in_sum2` F32 [columns, n_mat] and `<name>.counts` F32
/// [1, n_mat], names sorted) is read and written; the legacy `.dat` format is read. Importance
/// for the encoders is `in_sum2 / count` in Float32, exactly as llama-quantize's `load_imatrix`
/// divides (a zero count gives ones), so the same file drives qdist's and llama.cpp's encoders to
/// the same bytes.
public struct GGUFImatrix: Sendable, Equatable {
    /// One weight's statistics (dense layers: one matrix, `counts.count == 1`).
    public struct Entry: Sendable, Equatable {
        /// Σx² per input column, matrix after matrix.
        public var sums: [Float]
        /// Tokens seen per matrix (legacy files: the call count).
        public var counts: [Int]
        public init(sums: [Float], counts: [Int]) {
            self.sums = sums
            self.counts = counts
        }
    }

    public var entries: [String: Entry]
    public var datasets: [String]
    public var chunkCount: Int
    public var chunkSize: Int
    /// Read from a legacy `.dat` file (sums already divided by tokens, times the call count).
    public var isLegacy: Bool

    public init(entries: [String: Entry], datasets: [String], chunkCount: Int, chunkSize: Int, isLegacy: Bool = false) {
        self.entries = entries
        self.datasets = datasets
        self.chunkCount = chunkCount
        self.chunkSize = chunkSize
        self.isLegacy = isLegacy
    }

    /// The importance vectors llama-quantize hands its encoders, by GGUF weight name.
    public var importance: [String: [Float]] {
        var out: [String: [Float]] = [:]
        for (name, e) in entries {
            var v = [Float](repeating: 1, count: e.sums.count)
            if isLegacy {
                let ncall = Float(e.counts.first ?? 0)
                for i in v.indices { v[i] = ncall > 0 ? e.sums[i] / ncall : e.sums[i] }
            } else if !e.counts.isEmpty {
                let width = e.sums.count / e.counts.count
                for (j, c) in e.counts.enumerated() where c > 0 {
                    let count = Float(c)
                    for i in 0..<width { v[j * width + i] = e.sums[j * width + i] / count }
                }
            }
            out[name] = v
        }
        return out
    }

    /// Reads `url`: a GGUF imatrix, or a legacy `.dat` when the file does not start with "GGUF".
    public init(contentsOf url: URL) throws(QDistIOError) {
        let head: Data
        do { head = try FileHandle(forReadingFrom: url).read(upToCount: 4) ?? Data() } catch {
            throw QDistIOError(.io, path: url.path, "cannot open: \(error.localizedDescription)")
        }
        if Array(head) == Array("GGUF".utf8) { try self.init(gguf: url) } else { try self.init(legacy: url) }
    }

    private init(gguf url: URL) throws(QDistIOError) {
        let file = try GGUFFile(url: url)
        let meta = file.metadata
        func failure(_ message: String) -> QDistIOError { QDistIOError(.config, path: url.path, message) }
        guard meta.string("general.type") == "imatrix" else { throw failure("general.type is not \"imatrix\": not an importance matrix") }
        guard let chunks = meta.int("imatrix.chunk_count"), let size = meta.int("imatrix.chunk_size"), let sets = meta.stringArray("imatrix.datasets") else {
            throw failure("missing imatrix metadata (imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size)")
        }
        var sums: [String: [Float]] = [:], counts: [String: [Int]] = [:]
        for info in file.tensorInfos {
            guard info.type == .f32 else { throw failure("tensor \(JSONSerializer.quoted(info.name)) is \(info.type.traits.name); imatrix tensors are F32") }
            let values = try file.tensor(info.name).scalars
            if info.name.hasSuffix(".in_sum2") {
                sums[String(info.name.dropLast(".in_sum2".count))] = values
            } else if info.name.hasSuffix(".counts") {
                counts[String(info.name.dropLast(".counts".count))] = values.map { Int($0.rounded()) }
            }
        }
        var entries: [String: Entry] = [:]
        for (name, s) in sums {
            guard let c = counts[name], !c.isEmpty, s.count % c.count == 0 else { throw failure("\(name): in_sum2 without matching counts") }
            entries[name] = Entry(sums: s, counts: c)
        }
        guard entries.count == counts.count else { throw failure("counts without in_sum2 for \(Set(counts.keys).subtracting(entries.keys).sorted().first ?? "")") }
        self.init(entries: entries, datasets: sets, chunkCount: chunks, chunkSize: size)
    }

    private init(legacy url: URL) throws(QDistIOError) {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw QDistIOError(.io, path: url.path, "cannot read: \(error.localizedDescription)")
        }
        let parsed = data.withUnsafeBytes { raw -> Result<Legacy, QDistIOError> in
            do throws(QDistIOError) { return .success(try Self.parseLegacy(raw, path: url.path)) } catch { return .failure(error) }
        }
        let legacy = try parsed.get()
        self.init(entries: legacy.entries, datasets: legacy.datasets, chunkCount: legacy.chunks, chunkSize: 0, isLegacy: true)
    }

    private typealias Legacy = (entries: [String: Entry], chunks: Int, datasets: [String])

    /// `llama-imatrix --output-format dat`: i32 entry count; per entry i32 name length, name,
    /// i32 call count, i32 value count, f32 values; then optionally i32 chunk count, i32 length
    /// and the dataset's name.
    private static func parseLegacy(_ raw: UnsafeRawBufferPointer, path: String) throws(QDistIOError) -> Legacy {
        var c = GGUFCursor(bytes: raw, path: path)
        let n = try c.integer(Int32.self, "entry count")
        guard n >= 1 else { throw c.failure("not an imatrix: no entries (neither GGUF nor legacy .dat)", at: 0) }
        var entries: [String: Entry] = [:]
        for i in 0..<Int(n) {
            let length = Int(try c.integer(Int32.self, "name length of entry \(i)"))
            guard length > 0 else { throw c.failure("entry \(i): name length \(length)") }
            try c.need(length, for: "name of entry \(i)")
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: raw[c.offset..<(c.offset + length)]), as: UTF8.self)
            c.offset += length
            let ncall = Int(try c.integer(Int32.self, "call count of \(name)"))
            let count = Int(try c.integer(Int32.self, "value count of \(name)"))
            guard count >= 1 else { throw c.failure("\(name): value count \(count)") }
            try c.need(4 * count, for: "values of \(name)")
            var sums = [Float](repeating: 0, count: count)
            for k in 0..<count { sums[k] = Float(bitPattern: try c.integer(UInt32.self, "value of \(name)")) }
            entries[name] = Entry(sums: sums, counts: [ncall])
        }
        var chunks = 0, datasets: [String] = []
        if c.remaining > 0 {
            chunks = Int(try c.integer(Int32.self, "chunk count"))
            let length = Int(try c.integer(Int32.self, "dataset name length"))
            if length > 0, length <= c.remaining {
                datasets = [String(decoding: UnsafeRawBufferPointer(rebasing: raw[c.offset..<(c.offset + length)]), as: UTF8.self)]
            }
        }
        return (entries, chunks, datasets)
    }

    /// Writes the GGUF format llama-imatrix writes (keys and tensors in its order).
    public func write(to url: URL) throws {
        var meta = GGUFMetadata()
        meta["general.type"] = .string("imatrix")
        meta["imatrix.datasets"] = .array(.string(datasets))
        meta["imatrix.chunk_count"] = .uint32(UInt32(chunkCount))
        meta["imatrix.chunk_size"] = .uint32(UInt32(chunkSize))
        var specs: [GGUFWriter.TensorSpec] = [], payloads: [[Float]] = []
        for name in entries.keys.sorted() {
            guard let e = entries[name], !e.counts.isEmpty else { continue }
            // ggml_n_dims drops trailing ones: a dense layer's tensors are 1-D.
            let n = e.counts.count
            specs.append(.init(name: name + ".in_sum2", dims: n == 1 ? [e.sums.count] : [e.sums.count / n, n], type: .f32))
            payloads.append(e.sums)
            specs.append(.init(name: name + ".counts", dims: n == 1 ? [1] : [1, n], type: .f32))
            payloads.append(e.counts.map(Float.init))
        }
        try GGUFWriter.write(to: url, metadata: meta, tensors: specs) { i in
            try GGMLQuantize.quantize(.f32, payloads[i], rowLength: specs[i].dims[0])
        }
    }
}
