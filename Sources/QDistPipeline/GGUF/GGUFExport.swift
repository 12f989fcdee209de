import Foundation
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor

/// Writes a model as one llama.cpp GGUF file: what `convert_hf_to_gguf.py` followed by
/// `llama-quantize` make, in one step.
///
/// The metadata, tokenizer, tensor names and Q/K row permutation are the converter's
/// (`GGUFLlamaMetadata`); a quantized mix then takes llama-quantize's key and tensor order, so
/// the file is byte for byte what llama-quantize makes from qdist's F32 export; each tensor is stored in the type the mix gives it and encoded by
/// llama.cpp's own encoders (`GGMLQuantize`, bit-identical). Tensors are read, permuted and
/// encoded one at a time, so memory stays at one tensor whatever the model's size. The file
/// appears only when complete, never over the input, and replaces an existing file only with
/// `overwrite` and only when qdist wrote it (`general.quantized_by` = "qdist").
public enum GGUFExport {
    /// The `general.quantized_by` value qdist writes, and the mark `overwrite` looks for.
    public static let producer = "qdist"

    /// What an export wrote.
    public struct Summary: Sendable {
        public var destination: URL
        /// GGUF name and stored type of every tensor, in file order.
        public var tensors: [(name: String, type: GGMLType)]
        public var parameters: Int
        public var bytes: Int
        /// Storage bits per weight over every tensor (norms included), as llama.cpp prints it.
        public var bitsPerWeight: Double { parameters > 0 ? Double(8 * bytes) / Double(parameters) : 0 }
        public var seconds: Double
    }

    /// A tensor of the model about to be written: its Hugging Face and GGUF names, the Q/K
    /// permutation it takes, and its ggml dimensions (innermost first).
    public struct PlannedTensor: Sendable {
        public var huggingFace: String
        public var gguf: String
        public var permutation: GGUFTensorNames.RowPermutation
        public var dims: [Int]
    }

    /// The model's tensors in the converter's order.
    public static func plannedTensors(_ config: ModelConfiguration, path: String) throws -> [PlannedTensor] {
        let shapes = Dictionary(config.tensorShapes.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        return try GGUFLlamaMetadata.tensorOrder(huggingFaceNames: Array(shapes.keys), path: path).map { item in
            PlannedTensor(huggingFace: item.huggingFace, gguf: item.gguf.name, permutation: item.gguf.permutation,
                          dims: (shapes[item.huggingFace] ?? []).reversed())
        }
    }

    /// Writes `bundle` to `destination` (a `.gguf` path) in `mix` — each tensor's type as
    /// llama-quantize would choose it from an F32 GGUF of the same model (`GGUFMix`). With an
    /// importance matrix, its vectors drive the encoders and its provenance is recorded under
    /// the `quantize.imatrix.*` keys llama-quantize writes; `imatrixPath` is the path as the
    /// user gave it. `precomputed` holds linears already encoded in their mix type (by GPTQ),
    /// keyed by Hugging Face tensor name, rows in Hugging Face order; they are written as given
    /// (Q/K rows permuted like the float weights) instead of being encoded here. `replacements`
    /// are float tensors (by Hugging Face name) that take the place of the model's own before
    /// encoding: a smoothing's norms and the unquantized linears it scaled. `typeOverrides` (by
    /// Hugging Face name) replace the mix's type of some tensors: a mixed-precision budget's
    /// choices.
    public static func write(_ bundle: ModelBundle, to destination: URL, mix: GGUFMix, options: GGUFMix.Options = .init(),
                             imatrix: GGUFImatrix? = nil, imatrixPath: String? = nil, overwrite: Bool,
                             precomputed: [String: QuantizedLinearWeights.GGMLRows] = [:],
                             replacements: [String: Tensor] = [:], typeOverrides: [String: GGMLType] = [:],
                             progress: ((Int, Int, String) -> Void)? = nil) throws -> Summary {
        let start = Date()
        try checkDestination(destination, input: URL(fileURLWithPath: bundle.path), overwrite: overwrite)
        let config = bundle.config
        let quantizerLayout = ![GGUFMix.f32, .f16, .bf16].contains(mix)
        var mixOptions = options
        mixOptions.hasImportanceMatrix = imatrix != nil || options.hasImportanceMatrix
        let typed = try tensorTypes(config, path: bundle.path, mix: mix, options: mixOptions)
            .map { (tensor: $0.tensor, type: typeOverrides[$0.tensor.huggingFace] ?? $0.type) }
        let planned = typed.map(\.tensor), chosen = typed.map(\.type)
        for (p, type) in typed {
            if let given = precomputed[p.huggingFace], given.type != type {
                throw QDistIOError(.invalidArgument, path: destination.path, "\(p.gguf) was solved as \(given.type.traits.name) but \(mix.name) gives it \(type.traits.name)")
            }
        }
        let importance = imatrix?.importance ?? [:]
        for (p, type) in zip(planned, chosen) where mix.requiresImportanceMatrix(tensorName: p.gguf, type: type) && importance[p.gguf] == nil {
            throw QDistIOError(.invalidArgument, path: destination.path, "\(mix.name) needs an importance matrix for \(p.gguf) (\(type.traits.name)): pass --imatrix")
        }
        let files = try bundle.tokenizerFileContents()
        let folder = URL(fileURLWithPath: bundle.path)
        let rawConfig: JSONValue? = bundle.gguf == nil
            ? try JSONParser.parseFile(at: folder.appendingPathComponent("config.json")) : Optional<JSONValue>.none
        let name = folder.deletingPathExtension().lastPathComponent
        var metadata = try GGUFLlamaMetadata.metadata(config: config, rawConfig: rawConfig, name: name, fileType: mix.fileType,
                                                      tokenizerJSON: files.tokenizer, tokenizerConfig: files.tokenizerConfig,
                                                      tokenizer: bundle.tokenizer, path: bundle.path)
        metadata["general.quantized_by"] = .string(producer)
        if quantizerLayout {
            // llama-quantize copies the converter's keys, then sets these two with ggml's
            // gguf_set_val, which removes a key and appends it: they end up last.
            for key in ["general.quantization_version", "general.file_type"] {
                let value = metadata[key]
                metadata[key] = nil
                metadata[key] = value
            }
        }
        if let imatrix {
            // llama-quantize's kv overrides, appended in its order (quantize.cpp).
            metadata["quantize.imatrix.file"] = .string(String((imatrixPath ?? "").utf8.prefix(127)) ?? "")
            if let first = imatrix.datasets.first { metadata["quantize.imatrix.dataset"] = .string(String(first.utf8.prefix(127)) ?? "") }
            metadata["quantize.imatrix.entries_count"] = .uint32(UInt32(imatrix.entries.count))
            if imatrix.chunkCount > 0 { metadata["quantize.imatrix.chunks_count"] = .uint32(UInt32(imatrix.chunkCount)) }
        }
        let specs = zip(planned, chosen).map { GGUFWriter.TensorSpec(name: $0.gguf, dims: $0.dims, type: $1) }
        var bytes = 0
        try GGUFWriter.write(to: destination, metadata: metadata, tensors: specs) { i in
            let p = planned[i]
            if let given = precomputed[p.huggingFace] {
                let encoded = try permutedRows(given.bytes, rows: p.dims.count == 2 ? p.dims[1] : 1, permutation: p.permutation, config: config)
                bytes += encoded.count
                progress?(i + 1, planned.count, p.gguf)
                return encoded
            }
            var tensor = try replacements[p.huggingFace] ?? bundle.weights.tensor(p.huggingFace)
            switch p.permutation {
            case .none: break
            case .queryHeads: tensor = GGUFRopePermutation.toGGUF(tensor, heads: config.numAttentionHeads)
            case .keyValueHeads: tensor = GGUFRopePermutation.toGGUF(tensor, heads: config.numKeyValueHeads)
            }
            let encoded = try tensor.withUnsafeBufferPointer { rows in
                try GGMLQuantize.quantize(chosen[i], rows: rows, rowLength: p.dims[0], importance: importance[p.gguf],
                                          threads: ProcessInfo.processInfo.activeProcessorCount)
            }
            bytes += encoded.count
            progress?(i + 1, planned.count, p.gguf)
            return encoded
        }
        return Summary(destination: destination, tensors: zip(planned, chosen).map { ($0.gguf, $1) },
                       parameters: planned.reduce(0) { $0 + $1.dims.reduce(1, *) }, bytes: bytes,
                       seconds: Date().timeIntervalSince(start))
    }

    /// Every tensor of the model with the type `mix` gives it, in the order the file will hold
    /// them: llama-quantize's for a quantized mix, the converter's for F32/F16/BF16.
    public static func tensorTypes(_ config: ModelConfiguration, path: String, mix: GGUFMix, options: GGUFMix.Options) throws
        -> [(tensor: PlannedTensor, type: GGMLType)]
    {
        var planned = try plannedTensors(config, path: path)
        if ![GGUFMix.f32, .f16, .bf16].contains(mix) { planned = llamaQuantizeOrder(planned) }
        let chosen = try mix.tensorTypes(for: planned.map { GGUFWriter.TensorSpec(name: $0.gguf, dims: $0.dims, type: .f32) },
                                         model: .init(configuration: config), options: options)
        return Array(zip(planned, chosen))
    }

    /// Encoded rows in Hugging Face order → the converter's Q/K row order (rows are encoded
    /// independently, so permuting whole encoded rows is permuting the weights' rows).
    static func permutedRows(_ bytes: [UInt8], rows: Int, permutation: GGUFTensorNames.RowPermutation, config: ModelConfiguration) throws -> [UInt8] {
        let heads: Int
        switch permutation {
        case .none: return bytes
        case .queryHeads: heads = config.numAttentionHeads
        case .keyValueHeads: heads = config.numKeyValueHeads
        }
        // The permutation of a one-column tensor of row numbers is the row map.
        let map = GGUFRopePermutation.toGGUF(Tensor(shape: [rows, 1], scalars: (0..<rows).map(Float.init)), heads: heads).scalars.map { Int($0) }
        let rowBytes = bytes.count / max(rows, 1)
        var out = [UInt8](repeating: 0, count: bytes.count)
        for (to, from) in map.enumerated() {
            out.replaceSubrange(to * rowBytes..<(to + 1) * rowBytes, with: bytes[from * rowBytes..<(from + 1) * rowBytes])
        }
        return out
    }

    /// The order llama-quantize writes tensors in: its loader's `weight_name_comparer` — tensors
    /// outside the blocks first, then block by block (numerically), names in byte order within
    /// each. F32/F16/BF16 exports keep convert_hf_to_gguf's order instead (they stand for its
    /// output, the file llama-quantize starts from).
    static func llamaQuantizeOrder(_ tensors: [PlannedTensor]) -> [PlannedTensor] {
        func layer(_ name: String) -> Int {
            guard name.hasPrefix("blk."), let dot = name.dropFirst(4).firstIndex(of: ".") else { return -1 }
            return Int(name[name.index(name.startIndex, offsetBy: 4)..<dot]) ?? -1
        }
        return tensors.sorted { a, b in
            let la = layer(a.gguf), lb = layer(b.gguf)
            return la != lb ? la < lb : Array(a.gguf.utf8).lexicographicallyPrecedes(Array(b.gguf.utf8))
        }
    }

    /// Refuses a destination that is not a `.gguf` path, is the input, or is a file qdist did
    /// not write (or any file, without `overwrite`).
    static func checkDestination(_ destination: URL, input: URL, overwrite: Bool) throws {
        let path = destination.path
        guard destination.pathExtension.lowercased() == "gguf" else {
            throw QDistIOError(.invalidArgument, path: path, "a GGUF output is one file: name it with a .gguf extension")
        }
        if destination.standardizedFileURL.resolvingSymlinksInPath() == input.standardizedFileURL.resolvingSymlinksInPath() {
            throw QDistIOError(.invalidArgument, path: path, "is the input model; write the GGUF file somewhere else")
        }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { return }
        guard !isFolder.boolValue else { throw QDistIOError(.invalidArgument, path: path, "is a folder; a GGUF output is one file") }
        guard overwrite else { throw QDistIOError(.invalidArgument, path: path, "exists; pass --overwrite to replace it") }
        let existing = try? GGUFFile(url: destination)
        guard existing?.metadata.string("general.quantized_by") == producer else {
            throw QDistIOError(.invalidArgument, path: path, "exists and was not written by qdist; qdist replaces only its own files")
        }
    }
}
