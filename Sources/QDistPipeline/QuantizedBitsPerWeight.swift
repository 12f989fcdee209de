import Foundation
import QDistIO
import QDistQuant

/// What the quantized linears of a written model cost in storage, all-in: every stored tensor of
/// each quantized linear (codes, scales, zero points, group indices, shape records; not its bias)
/// over the linear's weight count. `qdist inspect` reports it as `bits_per_weight`, and a
/// mixed-precision plan is checked against it, so it counts what the files hold, not what a
/// scheme's name promises (W4 g128 with fp16 scales is 4.125 bits and more, not 4).
///
/// Folders: the linears their `quantization_config` makes quantized (as `qdist eval` reads them).
/// GGUF: the decoder's linears (`blk.N.attn_*` / `ffn_*` weights), whatever their block type.
public struct QuantizedBitsPerWeight: Sendable, Equatable {
    /// Bits stored for the quantized linears.
    public var bits: Int
    /// Their weight count (out × in, summed).
    public var weights: Int
    /// How many linears.
    public var linears: Int

    public var bitsPerWeight: Double { weights > 0 ? Double(bits) / Double(weights) : 0 }

    /// The model folder at `path` (config.json with a `quantization_config` and its safetensors);
    /// nil when it is not quantized. Reads headers only.
    public static func measure(folder path: String) throws -> QuantizedBitsPerWeight? {
        let folder = try CheckpointFolder(url: URL(fileURLWithPath: path))
        guard let configURL = folder.configURL else {
            throw QDistIOError(.notFound, path: path, "no config.json next to the weights: cannot tell which linears are quantized")
        }
        let config = try ModelConfiguration.load(from: configURL)
        guard let reader = try QuantizedCheckpointReader.open(folder: folder, config: config), !reader.modules.isEmpty else { return nil }
        let shapes = Dictionary(config.tensorShapes.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        var bits = 0, weights = 0
        for module in reader.modules {
            guard let shape = shapes[module + ".weight"] else {
                throw QDistIOError(.config, path: configURL.path, "quantized linear \(JSONSerializer.quoted(module)) is not a weight config.json describes")
            }
            weights += shape.reduce(1, *)
            for name in folder.tensorNames where name.hasPrefix(module + ".") && name != module + ".bias" {
                bits += try folder.info(name).byteCount * 8
            }
        }
        return QuantizedBitsPerWeight(bits: bits, weights: weights, linears: reader.modules.count)
    }

    /// The decoder linears of a GGUF file; nil when it has none.
    public static func measure(gguf file: GGUFFile) -> QuantizedBitsPerWeight? {
        var result = QuantizedBitsPerWeight(bits: 0, weights: 0, linears: 0)
        for info in file.tensorInfos {
            guard let hf = GGUFTensorNames.huggingFace(fromGGUF: info.name)?.name,
                  hf.hasPrefix("model.layers."), hf.hasSuffix("_proj.weight") else { continue }
            result.bits += info.byteCount * 8
            result.weights += info.elementCount
            result.linears += 1
        }
        return result.linears > 0 ? result : nil
    }
}
