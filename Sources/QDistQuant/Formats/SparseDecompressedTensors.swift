import QDistIO
import QDistTensor

/// A checkpoint's stored tensors with its legacy-sparse weights (FORMATS.md §12.4.2–12.4.3)
/// shown decompressed: `<m>.weight` is rebuilt on request from `<m>.compressed`, `<m>.bitmask`,
/// `<m>.shape` (and `<m>.row_offsets`), and those parts are hidden. Everything downstream —
/// the int-quantized reader (int8 `weight` + `weight_scale`), the float-quantized one, the
/// float path — then reads the folder as if it had been saved dense, unchanged.
///
/// Both naming generations are accepted: `<m>.bitmask` (compressed-tensors ≥ 0.9) and
/// `<m>.weight.bitmask` (before its "Composability" change). A module whose parts are
/// incomplete, or that also stores a dense `weight`, is refused when the source is made, with
/// one line naming the file and tensor; the parts' sizes are checked against each other when the
/// weight is read.
public struct SparseDecompressedTensors: StoredTensorSource {
    public let base: any StoredTensorSource
    public let format: CompressedTensorsSparsity.Format
    /// The decompressed weight's name → the prefix of its stored parts.
    private let prefixes: [String: String]
    /// The stored parts the decompressed weights replace.
    private let hidden: Set<String>
    public let tensorNames: [String]

    /// Finds the compressed weights among `base`'s tensors (those with a `bitmask`).
    public init(base: any StoredTensorSource, format: CompressedTensorsSparsity.Format) throws(QDistIOError) {
        self.base = base
        self.format = format
        let parts = CompressedTensorsSparsity.parts(format)
        var prefixes: [String: String] = [:]
        for name in base.tensorNames where name.hasSuffix(".bitmask") {
            let prefix = String(name.dropLast(".bitmask".count))
            let weight = prefix.hasSuffix(".weight") ? prefix : prefix + ".weight"
            let fail = { (message: String) in
                QDistIOError(.config, path: base.filePath(of: name), "tensor \(JSONSerializer.quoted(name)): \(message)")
            }
            if let missing = parts.first(where: { !base.contains("\(prefix).\($0)") }) {
                throw fail("its \(JSONSerializer.quoted("\(prefix).\(missing)")) is missing (\(format.rawValue) stores \(parts.joined(separator: ", ")))")
            }
            if base.contains(weight) {
                throw fail("the checkpoint also stores \(JSONSerializer.quoted(weight)) dense; a weight is stored one way or the other")
            }
            if prefixes[weight] != nil {
                throw fail("\(JSONSerializer.quoted(weight)) is stored compressed under both naming conventions")
            }
            prefixes[weight] = prefix
        }
        if let stray = base.tensorNames.first(where: { $0.hasSuffix(".compressed") && prefixes[Self.weightName(forPart: $0)] == nil }) {
            throw QDistIOError(.config, path: base.filePath(of: stray), "tensor \(JSONSerializer.quoted(stray)): compressed values without a bitmask")
        }
        let hidden = Set(prefixes.values.flatMap { p in parts.map { "\(p).\($0)" } })
        self.prefixes = prefixes
        self.hidden = hidden
        tensorNames = base.tensorNames.filter { !hidden.contains($0) } + prefixes.keys.sorted()
    }

    /// `<m>.weight` for a part `<m>.compressed` or `<m>.weight.compressed`.
    private static func weightName(forPart name: String) -> String {
        let prefix = name.split(separator: ".").dropLast().joined(separator: ".")
        return prefix.hasSuffix(".weight") ? prefix : prefix + ".weight"
    }

    /// The weights stored compressed, by their dense names (`<m>.weight`).
    public var compressedWeights: [String] { prefixes.keys.sorted() }

    /// The stored name of one part (`compressed`, `bitmask`, …) of a compressed weight.
    public func storedName(of part: String, forWeight weight: String) -> String? {
        prefixes[weight].map { "\($0).\(part)" }
    }

    public var sourcePath: String { base.sourcePath }

    public func filePath(of name: String) -> String {
        base.filePath(of: storedName(of: "compressed", forWeight: name) ?? name)
    }

    public func contains(_ name: String) -> Bool { prefixes[name] != nil || (!hidden.contains(name) && base.contains(name)) }

    public func storedTensor(_ name: String) throws -> StoredTensor {
        guard let prefix = prefixes[name] else {
            guard contains(name) else {
                throw QDistIOError(.notFound, path: sourcePath, "no tensor named \(JSONSerializer.quoted(name))")
            }
            return try base.storedTensor(name)
        }
        let path = base.filePath(of: "\(prefix).compressed")
        let parts = CompressedTensorsSparsity.CompressedWeight(
            shape: try base.storedTensor("\(prefix).shape"), compressed: try base.storedTensor("\(prefix).compressed"),
            bitmask: try base.storedTensor("\(prefix).bitmask"),
            rowOffsets: base.contains("\(prefix).row_offsets") ? try base.storedTensor("\(prefix).row_offsets") : nil)
        return try CompressedTensorsSparsity.decompress(parts, format: format) { part, message in
            QDistIOError(.config, path: path, "tensor \(JSONSerializer.quoted("\(prefix).\(part)")): \(message) (\(format.rawValue))")
        }
    }
}
