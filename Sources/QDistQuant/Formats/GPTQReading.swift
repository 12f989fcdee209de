import QDistIO
import QDistTensor

extension GPTQFormat {
    /// A parsed GPTQ `quantization_config`, as far as dequantizing needs it.
    struct Configuration: Sendable, Equatable {
        var numBits: Int
        /// `nil` is per channel (`group_size: -1`).
        var groupSize: Int?
        var symmetric: Bool
        var checkpointFormat: CheckpointFormat

        /// Parses `quantization_config` (`f` is that object), accepting the legacy spellings
        /// `w_bit` / `q_group_size` and GPTQModel's `format`; anything qdist cannot dequantize
        /// is a one-line error naming the file and the key.
        init(_ f: JSONFields) throws(QDistIOError) {
            let legacyBits = try f.optionalInt("w_bit")
            guard let bits = try f.optionalInt("bits") ?? legacyBits else {
                throw QDistIOError(.config, path: f.path, "missing required key \(JSONSerializer.quoted(f.keyPath + ".bits"))")
            }
            guard QuantizedLinearWeights.supportedBits.contains(bits) else {
                throw f.error(f.contains("bits") ? "bits" : "w_bit", "\(bits)-bit GPTQ is not supported (2, 3, 4 or 8)")
            }
            numBits = bits
            let legacySize = try f.optionalInt("q_group_size")
            let size = try f.optionalInt("group_size") ?? legacySize ?? -1
            guard size == -1 || size > 0 else { throw f.error("group_size", "must be -1 (per channel) or positive, found \(size)") }
            groupSize = size == -1 ? nil : size
            symmetric = try f.optionalBool("sym") ?? true
            if try f.optionalBool("is_marlin_format") == true {
                throw f.error("is_marlin_format", "Marlin-repacked GPTQ checkpoints are not supported (qdist reads \"gptq\" and \"gptq_v2\")")
            }
            let key = f.contains("checkpoint_format") ? "checkpoint_format" : "format"
            let name = try f.optionalString(key) ?? CheckpointFormat.v1.rawValue
            guard let format = CheckpointFormat(rawValue: name) else {
                throw f.error(key, "unsupported GPTQ checkpoint format \(JSONSerializer.quoted(name)) (qdist reads \"gptq\" and \"gptq_v2\")")
            }
            checkpointFormat = format
        }
    }

    /// Reads `<module>.qweight` and its companions back into our convention. Zero points of a
    /// symmetric checkpoint that all equal `2^(b−1)` become `nil`.
    static func readLinear(module: String, config c: Configuration, source: any StoredTensorSource) throws -> QuantizedLinearWeights {
        let path = source.sourcePath
        let b = c.numBits
        let tensors = ModuleTensors(module: module, source: source, missingHint: "a GPTQ linear needs qweight, qzeros and scales")
        let fail = tensors.fail, load = tensors.load
        let qweight = try load("qweight")
        guard let words = qweight.int32Values, qweight.shape.count == 2, qweight.shape[1] > 0, qweight.shape[0] * 32 % b == 0 else {
            throw fail("qweight", "expected I32 [in·\(b)/32, out], found \(qweight.dtype.rawValue) \(qweight.shape)")
        }
        let (rowWords, out) = (qweight.shape[0], qweight.shape[1])
        let inF = rowWords * 32 / b
        var gIdx: [Int32]?
        if source.contains("\(module).g_idx") {
            let g = try load("g_idx")
            guard let values = g.integerValues, g.shape == [inF] else {
                throw fail("g_idx", "expected an integer [\(inF)] (from qweight \(qweight.shape)), found \(g.dtype.rawValue) \(g.shape)")
            }
            gIdx = values.map { Int32($0) }
        }
        let groups = QuantizedLinearWeights.groupCount(inFeatures: inF, groupSize: c.groupSize)
        let scales = try load("scales")
        guard scales.dtype.isFloatingPoint, scales.shape == [groups, out] else {
            throw fail("scales", "expected a float [\(groups), \(out)] for in_features \(inF) and group_size \(c.groupSize ?? -1), found \(scales.dtype.rawValue) \(scales.shape)")
        }
        let zeroWords = try PackedInt32.packedLength(out, bits: b, layout: .bitStream, subject: path)
        let qzeros = try load("qzeros")
        guard let zeroPacked = qzeros.int32Values, qzeros.shape == [groups, zeroWords] else {
            throw fail("qzeros", "expected I32 [\(groups), \(zeroWords)], found \(qzeros.dtype.rawValue) \(qzeros.shape)")
        }
        let offset: Int32 = c.checkpointFormat == .v1 ? 1 : 0
        let storedZeros = try PackedInt32.unpack(zeroPacked, rows: groups, columns: out, bits: b, layout: .bitStream, subject: path)
        var zeros: [Int32]? = PackedInt32.transpose(storedZeros, rows: groups, columns: out).map { $0 + offset }
        if c.symmetric, zeros!.allSatisfy({ $0 == Int32(1) << (b - 1) }) { zeros = nil }
        let byRow = try PackedInt32.unpack(PackedInt32.transpose(words, rows: rowWords, columns: out), rows: out,
                                           columns: inF, bits: b, layout: .bitStream, subject: path)
        let bias = source.contains("\(module).bias") ? try source.storedTensor("\(module).bias").toTensor() : nil
        do {
            return try QuantizedLinearWeights(
                name: module, inFeatures: inF, outFeatures: out, numBits: b, groupSize: c.groupSize, codes: byRow,
                scales: PackedFloats.transpose(scales.toTensor().scalars, rows: groups, columns: out),
                zeroPoints: zeros, gIdx: gIdx, bias: bias)
        } catch {
            throw QDistIOError(.config, path: path, error.description)
        }
    }
}
