import QDistIO

/// config.json's `quantization_config.sparsity_config` as compressed-tensors ≤ 0.14 wrote it
/// (FORMATS.md §12.4.6) — `{format, global_sparsity, ignore, registry_requires_subclass,
/// sparsity_structure, targets}`, keys sorted as `ModelCompressor.update_config`'s
/// `json.dump(sort_keys=True)` leaves them — and how a reader finds it.
///
/// A model that is only pruned has a `quantization_config` holding nothing else but
/// `version`, `quant_method` and an empty `transform_config`: no `config_groups`, no `format`.
/// (transformers 5 fails on such a config, which is why the default qdist output of a pruned
/// model has none; this layout is for pinned older stacks.)
public struct CompressedTensorsSparsityConfig: Sendable, Equatable {
    public var format: CompressedTensorsSparsity.Format
    /// Zeros over every parameter of the model (embeddings and norms included); informational.
    public var globalSparsity: Double
    /// The pruning recipe's `mask_structure` (`"2:4"`, `"0:0"`); compressed-tensors'
    /// `SparsityStructure` accepts only those and `"unstructured"`.
    public var structure: String
    public var targets: [String]
    public var ignore: [String]

    public init(format: CompressedTensorsSparsity.Format, globalSparsity: Double, structure: String, targets: [String], ignore: [String]) {
        (self.format, self.globalSparsity, self.structure, self.targets, self.ignore) = (format, globalSparsity, structure, targets, ignore)
    }

    /// The structures compressed-tensors' `SparsityStructure` enum accepts (case-insensitively).
    public static let knownStructures = ["2:4", "unstructured", "0:0"]

    /// The `sparsity_config` object.
    public var jsonValue: JSONValue {
        [
            "format": .string(format.rawValue),
            "global_sparsity": .float(globalSparsity),
            "ignore": .array(ignore.map { .string($0) }),
            "registry_requires_subclass": false,
            "sparsity_structure": .string(structure),
            "targets": .array(targets.map { .string($0) }),
        ]
    }

    /// The whole `quantization_config` of a model that is pruned but not quantized.
    public var sparsityOnlyQuantizationConfig: JSONValue {
        [
            "version": .string(CompressedTensorsSparsity.version),
            "quant_method": "compressed-tensors",
            "sparsity_config": jsonValue,
            "transform_config": [:],
        ]
    }

    /// A quantized model's compressed-tensors `quantization_config` with this as its
    /// `sparsity_config` (and the version of the release that reads it).
    public func inserted(into quantizationConfig: JSONValue) -> JSONValue {
        guard var pairs = quantizationConfig.objectValue else { return quantizationConfig }
        for key in ["version", "sparsity_config"] where !pairs.contains(where: { $0.key == key }) { pairs.append((key: key, value: .null)) }
        return .object(pairs.map { pair in
            switch pair.key {
            case "version": return (key: pair.key, value: .string(CompressedTensorsSparsity.version))
            case "sparsity_config": return (key: pair.key, value: jsonValue)
            default: return pair
            }
        })
    }

    /// llm-compressor's `_reduce_targets_and_ignores_into_lists` for the `Linear` class (the
    /// only class with sparse modules here): when at least as many linears are sparse as not,
    /// target `Linear` and ignore the rest by name; otherwise name the sparse ones. `linears`
    /// is every Linear module in model order, `lm_head` included even when it is tied.
    public static func targetsAndIgnore(linears: [String], sparse: Set<String>) -> (targets: [String], ignore: [String]) {
        let targets = linears.filter(sparse.contains), rest = linears.filter { !sparse.contains($0) }
        if targets.isEmpty { return ([], []) }
        return targets.count >= rest.count ? (["Linear"], rest) : (targets, rest)
    }

    /// The sparse layout `quantizationConfig` declares: nil when it has no `sparsity_config`,
    /// an empty one (what compressed-tensors ≥ 0.15 writes), or format `dense` — the weights
    /// are stored in full then. Other formats (`marlin-24`, anything unknown) are a one-line
    /// error naming config.json and the key.
    public static func storedFormat(quantizationConfig: JSONValue?, configPath: String) throws(QDistIOError) -> CompressedTensorsSparsity.Format? {
        guard let quantizationConfig, quantizationConfig["quant_method"]?.stringValue == "compressed-tensors",
              let sparsity = quantizationConfig["sparsity_config"], !sparsity.isNull, sparsity.objectValue?.isEmpty != true else { return nil }
        let f = try JSONFields(quantizationConfig, path: configPath, keyPath: "quantization_config")
        guard let fields = try f.optionalObject("sparsity_config") else { return nil }
        let name = try fields.string("format")
        guard let format = CompressedTensorsSparsity.Format(rawValue: name) else {
            let known = CompressedTensorsSparsity.Format.allCases.map { JSONSerializer.quoted($0.rawValue) }.joined(separator: ", ")
            throw fields.error("format", "unsupported sparsity format \(JSONSerializer.quoted(name)) (qdist reads \(known))")
        }
        return format == .dense ? nil : format
    }

    /// True for a compressed-tensors config that describes only sparsity: a `sparsity_config`
    /// and no (or empty) `config_groups` — nothing is quantized.
    public static func describesOnlySparsity(_ quantizationConfig: JSONValue) -> Bool {
        guard quantizationConfig["quant_method"]?.stringValue == "compressed-tensors",
              let sparsity = quantizationConfig["sparsity_config"]?.objectValue, !sparsity.isEmpty else { return false }
        let groups = quantizationConfig["config_groups"]
        return groups == nil || groups?.isNull == true || groups?.objectValue?.isEmpty == true
    }
}
