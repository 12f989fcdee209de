import Foundation
import QDistIO
import QDistTensor

extension CompressedTensorsFormat {
    /// One config group's weight arguments, as far as qdist can load them.
    struct WeightArguments: Sendable, Equatable {
        var numBits: Int
        var symmetric: Bool
        /// `nil` is per channel (or per tensor).
        var groupSize: Int?
        /// FP8 E4M3 codes (`type: float`) rather than an integer grid.
        var isFloat: Bool = false
        /// `strategy: tensor`: one scale for the whole weight.
        var perTensor: Bool = false
        /// Zero points stored as floats (qdist's float-zero layout, HQQ).
        var fractionalZeros: Bool = false
    }

    /// A parsed compressed-tensors `quantization_config`: config groups in file order and the
    /// ignore list, with the module-matching rules of compressed-tensors' `is_match`.
    struct Configuration: Sendable {
        /// A config group: its targets, weight arguments, format (`pack-quantized` or
        /// `int-quantized`) and input activations (int-quantized only).
        struct Group: Sendable {
            var name: String
            var targets: [String]
            var weights: WeightArguments?
            var format: String
            var inputActivations: InputActivationScheme?
        }
        var groups: [Group]
        var ignore: [String]

        /// Parses `quantization_config` (`f` is that object); anything qdist cannot dequantize
        /// is a one-line error naming the file and the key.
        init(_ f: JSONFields, readable: [String] = [formatName, intQuantizedFormatName, floatQuantizedFormatName]) throws(QDistIOError) {
            let format = try f.optionalString("format")
            let expected = "qdist reads \(readable.map { JSONSerializer.quoted($0) }.joined(separator: " and "))"
            if let format, !readable.contains(format), format != "mixed-precision" {
                throw f.error("format", "unsupported compressed-tensors format \(JSONSerializer.quoted(format)) (\(expected))")
            }
            if let status = try f.optionalString("quantization_status"), status != "compressed" {
                throw f.error("quantization_status", "\(JSONSerializer.quoted(status)): the weights are not compressed (qdist reads \"compressed\" checkpoints)")
            }
            if f.contains("kv_cache_scheme") { throw f.error("kv_cache_scheme", "KV-cache quantization is not supported") }
            ignore = try f.optionalStringArray("ignore") ?? []
            guard let groupsField = try f.optionalObject("config_groups"), let pairs = f.value("config_groups")?.objectValue else {
                throw QDistIOError(.config, path: f.path, "missing required key \(JSONSerializer.quoted(f.keyPath + ".config_groups"))")
            }
            var groups: [Group] = []
            for (name, _) in pairs {
                guard let g = try groupsField.optionalObject(name) else { continue }
                let groupFormat = try g.optionalString("format")
                if let groupFormat, !readable.contains(groupFormat) {
                    throw g.error("format", "unsupported compressed-tensors format \(JSONSerializer.quoted(groupFormat)) (\(expected))")
                }
                if format == nil || format == "mixed-precision", groupFormat == nil {
                    throw g.error("format", "missing: with a global format of \(JSONSerializer.quoted(format ?? "null")) each group must say one of \(readable.map { JSONSerializer.quoted($0) }.joined(separator: ", "))")
                }
                let effective = groupFormat ?? format!
                if g.contains("output_activations") {
                    throw g.error("output_activations", "output activation quantization is not supported")
                }
                let input = try g.optionalObject("input_activations").map(InputActivationScheme.init)

                guard let targets = try g.optionalStringArray("targets") else {
                    throw QDistIOError(.config, path: f.path, "missing required key \(JSONSerializer.quoted(g.keyPath + ".targets"))")
                }
                groups.append(Group(name: name, targets: targets, weights: try g.optionalObject("weights").map(WeightArguments.init),
                                    format: effective, inputActivations: input))
            }
            self.groups = groups
        }

        /// The config group governing `module`; `nil` when it is ignored or matches no group.
        func group(for module: String) -> Group? {
            if ignore.contains(where: { Self.matches(module, $0) }) { return nil }
            return groups.first { g in g.targets.contains(where: { Self.matches(module, $0) || $0 == "Linear" }) }
        }

        /// compressed-tensors `_match_name`: `re:` prefixes a regex matched at the start of the
        /// name (Python `re.match`), anything else must equal the name.
        static func matches(_ name: String, _ target: String) -> Bool {
            guard target.hasPrefix("re:") else { return name == target }
            guard let regex = try? NSRegularExpression(pattern: String(target.dropFirst(3))) else { return false }
            let range = NSRange(name.startIndex..., in: name)
            return regex.firstMatch(in: name, options: [.anchored], range: range) != nil
        }
    }

    /// Reads `<module>.weight_packed` and its companions back into our convention.
    static func readLinear(module: String, arguments a: WeightArguments, source: any StoredTensorSource) throws -> QuantizedLinearWeights {
        let path = source.sourcePath
        let tensors = ModuleTensors(module: module, source: source, missingHint: "compressed-tensors pack-quantized needs it")
        let fail = tensors.fail, load = tensors.load
        let shapeTensor = try load("weight_shape")
        guard let shape = shapeTensor.integerValues, shape.count == 2, shape[0] > 0, shape[1] > 0 else {
            throw fail("weight_shape", "expected 2 positive integers [out, in], found \(shapeTensor.dtype.rawValue) \(shapeTensor.shape)")
        }
        let (out, inF, b) = (shape[0], shape[1], a.numBits)
        let packed = try load("weight_packed")
        let width = try PackedInt32.packedLength(inF, bits: b, layout: .wordAligned)
        guard let words = packed.int32Values, packed.shape == [out, width] else {
            throw fail("weight_packed", "expected I32 [\(out), \(width)] for \(b)-bit weight_shape [\(out), \(inF)], found \(packed.dtype.rawValue) \(packed.shape)")
        }
        let groups = QuantizedLinearWeights.groupCount(inFeatures: inF, groupSize: a.groupSize)
        let scale = try load("weight_scale")
        guard scale.dtype.isFloatingPoint, scale.shape == [out, groups] || (a.perTensor && scale.elementCount == 1) else {
            throw fail("weight_scale", "expected a float [\(out), \(groups)], found \(scale.dtype.rawValue) \(scale.shape)")
        }
        var zeros: [Int32]?, fractional: [Float]?
        if a.fractionalZeros {
            let zp = try load("weight_zero_point")
            guard zp.dtype.isFloatingPoint, zp.shape == [out, groups] else {
                throw fail("weight_zero_point", "expected a float [\(out), \(groups)], found \(zp.dtype.rawValue) \(zp.shape)")
            }
            fractional = zp.toTensor().scalars
        } else if !a.symmetric {
            guard !a.perTensor else { throw fail("weight_zero_point", "asymmetric per-tensor weights are not supported") }
            let zp = try load("weight_zero_point")
            let height = try PackedInt32.packedLength(out, bits: b, layout: .wordAligned)
            if let w = zp.int32Values, zp.shape == [height, groups] {
                let byGroup = try PackedInt32.unpack(PackedInt32.transpose(w, rows: height, columns: groups), rows: groups,
                                                     columns: out, bits: b, layout: .wordAligned)
                zeros = PackedInt32.transpose(byGroup, rows: groups, columns: out)
            } else if zp.shape == [out, groups], let signed = zp.integerValues {
                // Unpacked signed zero points (older writers, or int-quantized style).
                zeros = signed.map { Int32($0 + (1 << (b - 1))) }
            } else {
                throw fail("weight_zero_point", "expected I32 [\(height), \(groups)] (packed along dim 0), found \(zp.dtype.rawValue) \(zp.shape)")
            }
        }
        var gIdx: [Int32]?
        if source.contains("\(module).weight_g_idx") {
            let g = try load("weight_g_idx")
            guard let values = g.integerValues, g.shape == [inF] else {
                throw fail("weight_g_idx", "expected an integer [\(inF)], found \(g.dtype.rawValue) \(g.shape)")
            }
            if !values.contains(-1) { gIdx = values.map { Int32($0) } }  // -1: never initialized, column order
        }
        let bias = source.contains("\(module).bias") ? try source.storedTensor("\(module).bias").toTensor() : nil
        do {
            return try QuantizedLinearWeights(
                name: module, inFeatures: inF, outFeatures: out, numBits: b, groupSize: a.groupSize,
                codes: PackedInt32.unpack(words, rows: out, columns: inF, bits: b, layout: .wordAligned),
                scales: a.perTensor ? [Float](repeating: scale.toTensor().scalars[0], count: out) : scale.toTensor().scalars,
                zeroPoints: zeros, gIdx: gIdx, bias: bias, perTensor: a.perTensor, fractionalZeroPoints: fractional)
        } catch {
            throw QDistIOError(.config, path: path, error.description)
        }
    }
}

extension CompressedTensorsFormat.WeightArguments {
    /// Parses a group's `weights` (compressed-tensors `QuantizationArgs`).
    init(_ w: JSONFields) throws(QDistIOError) {
        let type = try w.optionalString("type") ?? "int"
        guard type == "int" || type == "float" else {
            throw w.error("type", "\(JSONSerializer.quoted(type)) weights are not supported (qdist reads \"int\" and \"float\")")
        }
        isFloat = type == "float"
        numBits = try w.optionalInt("num_bits") ?? 8
        if isFloat && numBits != 8 { throw w.error("num_bits", "\(numBits)-bit float weights are not supported (qdist reads FP8 E4M3)") }
        guard QuantizedLinearWeights.supportedBits.contains(numBits) else {
            throw w.error("num_bits", "\(numBits)-bit weights are not supported (2, 3, 4 or 8)")
        }
        symmetric = try w.optionalBool("symmetric") ?? true
        let size = try w.optionalInt("group_size")
        let strategy = try w.optionalString("strategy") ?? (size.map { $0 > 0 ? "group" : "channel" } ?? "tensor")
        switch strategy {
        case "group":
            guard let size, size > 0 else { throw w.error("group_size", "strategy \"group\" needs a positive group_size") }
            groupSize = size
        case "channel":
            groupSize = nil
        case "tensor":
            (groupSize, perTensor) = (nil, true)
        default:
            throw w.error("strategy", "\(JSONSerializer.quoted(strategy)) is not supported (qdist reads \"group\", \"channel\" and \"tensor\")")
        }
        if isFloat && groupSize != nil { throw w.error("strategy", "grouped FP8 weights are not supported (qdist reads per-tensor and per-channel FP8)") }
        if let dynamic = w.value("dynamic"), dynamic != .bool(false) {
            throw w.error("dynamic", "dynamic weight quantization is not supported")
        }
    }
}
