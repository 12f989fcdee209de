import QDistIO
import QDistTensor

/// bitsandbytes' 4-bit checkpoint (`Linear4bit` as transformers saves a `load_in_4bit` model;
/// FORMATS.md §6.5, checked against bitsandbytes 0.50.2 `QuantState.as_dict(packed=True)`):
/// per linear
///
/// | tensor | dtype, shape |
/// |---|---|
/// | `<m>.weight` | U8 `[ceil(n/2), 1]`, two codes a byte, first in the high nibble |
/// | `<m>.weight.absmax` | F32 `[blocks]`, or U8 when double-quantized |
/// | `<m>.weight.quant_map` | F32 `[16]`, the NF4/FP4 code book |
/// | `<m>.weight.nested_absmax`, `.nested_quant_map` | F32, double quantization only |
/// | `<m>.weight.quant_state.bitsandbytes__nf4` | U8, the JSON of the non-tensor fields |
///
/// Blocks run over the flattened weight; qdist's groups run along each row, so the two are the
/// same blocks when the group size divides the row (the format row checks it). Failure mode:
/// any other grid (integer codes, zero points, groups that straddle rows) is refused.
public enum BitsAndBytesFourBitFormat {
    /// `str(torch dtype)` without the prefix, as bitsandbytes writes `dtype`.
    static func torchName(_ dtype: DType) -> String {
        switch dtype {
        case .bf16: return "bfloat16"
        case .f16: return "float16"
        default: return "float32"
        }
    }

    /// The stored tensors of one NF4/FP4 linear; `dtype` is what the weight dequantizes to.
    public static func tensors(for linear: QuantizedLinearWeights, dtype: DType) throws(QuantizedFormatError) -> [String: StoredTensor] {
        let m = linear.name
        guard let type = linear.codeType.fourBitType, let blockSize = linear.groupSize, linear.inFeatures % blockSize == 0 else {
            throw QuantizedFormatError(m, "bitsandbytes 4-bit stores nf4/fp4 codes in blocks that divide the row (got \(linear.scheme))")
        }
        var packed = [UInt8](repeating: 0, count: (linear.codes.count + 1) / 2)
        for (i, c) in linear.codes.enumerated() {
            packed[i >> 1] |= i & 1 == 0 ? UInt8(c) << 4 : UInt8(c)
        }
        if linear.codes.count % 2 == 1 { packed[packed.count - 1] |= type.index(ofValue: 0) }  // the kernel's zero pad
        let w = "\(m).weight"
        var result: [String: StoredTensor] = [
            w: StoredTensor(dtype: .u8, shape: [packed.count, 1], bytes: packed),
            "\(w).quant_map": StoredTensor(Tensor(shape: [16], scalars: type.codeBook), as: .f32),
        ]
        var state: [(key: String, value: JSONValue)] = [
            ("quant_type", .string(type.rawValue)), ("blocksize", .integer(blockSize)), ("dtype", .string(torchName(dtype))),
            ("shape", .array([.integer(linear.outFeatures), .integer(linear.inFeatures)])),
        ]
        if let dq = linear.compressedAbsmax {
            result["\(w).absmax"] = StoredTensor(dtype: .u8, shape: [dq.codes.count], bytes: dq.codes)
            result["\(w).nested_absmax"] = StoredTensor(Tensor(shape: [dq.secondLevelAbsmax.count], scalars: dq.secondLevelAbsmax), as: .f32)
            result["\(w).nested_quant_map"] = StoredTensor(Tensor(shape: [256], scalars: DynamicQuantizationMap.signed8Bit), as: .f32)
            state += [("nested_blocksize", .integer(dq.blockSize)), ("nested_dtype", .string("float32")),
                      ("nested_offset", .float(Double(dq.offset)))]
        } else {
            result["\(w).absmax"] = StoredTensor(Tensor(shape: [linear.scales.count], scalars: linear.scales), as: .f32)
        }
        let json = Array(JSONValue.object(state).serialized())
        result["\(w).quant_state.bitsandbytes__\(type.rawValue)"] = StoredTensor(dtype: .u8, shape: [json.count], bytes: json)
        if let bias = linear.bias { result["\(m).bias"] = StoredTensor(bias, as: dtype) }
        return result
    }

    /// transformers' `BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=…,
    /// bnb_4bit_use_double_quant=…, bnb_4bit_compute_dtype=…).to_dict()`.
    public static func quantizationConfig(type: FourBitQuantType, doubleQuantized: Bool, computeDType: DType,
                                          skipModules: [String]) -> JSONValue {
        [
            "quant_method": .string(BitsAndBytesInt8Format.quantMethod),
            "_load_in_4bit": true,
            "_load_in_8bit": false,
            "bnb_4bit_compute_dtype": .string(torchName(computeDType)),
            "bnb_4bit_quant_storage": "uint8",
            "bnb_4bit_quant_type": .string(type.rawValue),
            "bnb_4bit_use_double_quant": .bool(doubleQuantized),
            "llm_int8_enable_fp32_cpu_offload": false,
            "llm_int8_has_fp16_weight": false,
            "llm_int8_skip_modules": .array(skipModules.map { .string($0) }),
            "llm_int8_threshold": .float(6),
            "load_in_4bit": true,
            "load_in_8bit": false,
        ]
    }

    /// Reads one 4-bit linear back. A double-quantized absmax comes back decompressed (as
    /// bitsandbytes dequantizes it), so the result's `scales` are the values the weight uses.
    static func readLinear(module: String, source: any StoredTensorSource) throws -> QuantizedLinearWeights {
        let tensors = ModuleTensors(module: module, source: source, missingHint: "bitsandbytes 4-bit needs it")
        let stateName = ["nf4", "fp4"].map { "weight.quant_state.bitsandbytes__\($0)" }.first { source.contains("\(module).\($0)") }
        guard let stateName else { throw tensors.fail("weight.quant_state.bitsandbytes__nf4", "missing (bitsandbytes 4-bit needs it)") }
        let stateBytes = try tensors.load(stateName)
        guard stateBytes.dtype == .u8, let state = try? JSONParser.parse(String(decoding: stateBytes.bytes, as: UTF8.self)) else {
            throw tensors.fail(stateName, "is not the UTF-8 JSON of a bitsandbytes quant state")
        }
        guard let typeName = state["quant_type"]?.stringValue, let type = FourBitQuantType(rawValue: typeName),
              let blockSize = state["blocksize"]?.intValue, let shape = state["shape"]?.arrayValue?.compactMap(\.intValue), shape.count == 2
        else { throw tensors.fail(stateName, "needs quant_type nf4/fp4, blocksize and a 2-D shape") }
        let (out, inF) = (shape[0], shape[1])
        guard blockSize > 0, inF % blockSize == 0 else {
            throw tensors.fail(stateName, "blocks of \(blockSize) straddle rows of \(inF): qdist reads blocks that divide the row")
        }
        let weight = try tensors.load("weight"), absmaxTensor = try tensors.load("weight.absmax")
        guard weight.dtype == .u8, weight.bytes.count == (out * inF + 1) / 2 else {
            throw tensors.fail("weight", "expected \((out * inF + 1) / 2) packed U8 bytes for shape [\(out), \(inF)], found \(weight.dtype.rawValue) \(weight.shape)")
        }
        let quantMap = try tensors.load("weight.quant_map").toTensor().scalars
        guard quantMap == type.codeBook else { throw tensors.fail("weight.quant_map", "is not bitsandbytes' \(type.rawValue) code book") }
        let blocks = out * inF / blockSize
        var absmax: [Float]
        if source.contains("\(module).weight.nested_absmax") {
            guard absmaxTensor.dtype == .u8, absmaxTensor.bytes.count == blocks, let offset = state["nested_offset"]?.doubleValue,
                  let nestedBlock = state["nested_blocksize"]?.intValue, nestedBlock > 0 else {
                throw tensors.fail("weight.absmax", "double-quantized absmax needs \(blocks) U8 codes, nested_offset and nested_blocksize")
            }
            let nested = try tensors.load("weight.nested_absmax").toTensor().scalars
            let map = try tensors.load("weight.nested_quant_map").toTensor().scalars
            guard nested.count == (blocks + nestedBlock - 1) / nestedBlock, map.count == 256 else {
                throw tensors.fail("weight.nested_absmax", "\(nested.count) values for \(blocks) blocks in groups of \(nestedBlock)")
            }
            // As bitsandbytes' dequantize_blockwise, with the map the file carries.
            absmax = absmaxTensor.bytes.enumerated().map { i, c in map[Int(c)] * nested[i / nestedBlock] + Float(offset) }
        } else {
            guard absmaxTensor.dtype.isFloatingPoint, absmaxTensor.elementCount == blocks else {
                throw tensors.fail("weight.absmax", "expected \(blocks) float values, found \(absmaxTensor.dtype.rawValue) \(absmaxTensor.shape)")
            }
            absmax = absmaxTensor.toTensor().scalars
        }
        var codes = [Int32](repeating: 0, count: out * inF)
        for i in codes.indices { codes[i] = Int32(i & 1 == 0 ? weight.bytes[i >> 1] >> 4 : weight.bytes[i >> 1] & 0x0F) }
        let bias = source.contains("\(module).bias") ? try source.storedTensor("\(module).bias").toTensor() : nil
        do {
            return try QuantizedLinearWeights(name: module, inFeatures: inF, outFeatures: out, numBits: 4, groupSize: blockSize,
                                              codes: codes, scales: absmax, zeroPoints: nil, bias: bias,
                                              codeType: type == .nf4 ? .nf4 : .fp4)
        } catch {
            throw QDistIOError(.config, path: source.sourcePath, error.description)
        }
    }
}
