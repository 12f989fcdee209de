import QDistIO
import QDistTensor

/// bitsandbytes' LLM.int8() checkpoint (`Linear8bitLt` as transformers saves it; FORMATS.md §6.6,
/// checked in bitsandbytes 0.50.2 `nn/modules.py`): per linear `<m>.weight` I8 `(out, in)`
/// holding `CB = round(127·W/SCB)`, `<m>.SCB` F32 `[out]` (each row's max |W|) and
/// `<m>.weight_format` U8 scalar 0 ("row"); the bias as is. `quantization_config` is
/// transformers' `BitsAndBytesConfig` with `load_in_8bit: true` and `llm_int8_threshold`, the
/// outlier threshold at run time; linears that stay float are listed in `llm_int8_skip_modules`.
///
/// A weight is `CB · SCB / 127`; qdist keeps `scale = SCB / 127` and writes `SCB = scale · 127`,
/// which can differ from the original row maximum in the last bit. Failure mode: any other
/// grid (asymmetric, grouped, not absmax) is refused — bitsandbytes stores only this one.
public enum BitsAndBytesInt8Format {
    /// `quantization_config.quant_method`.
    public static let quantMethod = "bitsandbytes"

    /// The stored tensors of one LLM.int8 linear.
    public static func tensors(for linear: QuantizedLinearWeights, biasDType: DType) throws(QuantizedFormatError) -> [String: StoredTensor] {
        let m = linear.name
        guard linear.numBits == 8, linear.symmetric, linear.groupSize == nil, linear.codeType == .int, !linear.perTensor else {
            throw QuantizedFormatError(m, "bitsandbytes 8-bit stores int8 symmetric weights with one scale per row (LLM_INT8)")
        }
        let codes = linear.signedCodes
        if let bad = codes.first(where: { $0 < -127 }) {
            throw QuantizedFormatError(m, "code \(bad) is outside LLM.int8's −127…127")
        }
        var result: [String: StoredTensor] = [
            "\(m).weight": StoredTensor(dtype: .i8, shape: [linear.outFeatures, linear.inFeatures], bytes: codes.map { UInt8(bitPattern: Int8($0)) }),
            "\(m).SCB": StoredTensor(Tensor(shape: [linear.outFeatures], scalars: linear.scales.map { $0 * 127 }), as: .f32),
            "\(m).weight_format": StoredTensor(dtype: .u8, shape: [], bytes: [0]),
        ]
        if let bias = linear.bias { result["\(m).bias"] = StoredTensor(bias, as: biasDType) }
        return result
    }

    /// transformers' `BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=…).to_dict()`.
    public static func quantizationConfig(threshold: Float, skipModules: [String]) -> JSONValue {
        [
            "quant_method": .string(quantMethod),
            "_load_in_4bit": false,
            "_load_in_8bit": true,
            "bnb_4bit_compute_dtype": "float32",
            "bnb_4bit_quant_storage": "uint8",
            "bnb_4bit_quant_type": "fp4",
            "bnb_4bit_use_double_quant": false,
            "llm_int8_enable_fp32_cpu_offload": false,
            "llm_int8_has_fp16_weight": false,
            "llm_int8_skip_modules": .array(skipModules.map { .string($0) }),
            "llm_int8_threshold": .float(Double(threshold)),
            "load_in_4bit": false,
            "load_in_8bit": true,
        ]
    }

    /// Reads `<module>.weight` (I8) and `<module>.SCB` back.
    static func readLinear(module: String, source: any StoredTensorSource) throws -> QuantizedLinearWeights {
        let tensors = ModuleTensors(module: module, source: source, missingHint: "bitsandbytes 8-bit needs it")
        let weight = try tensors.load("weight"), scb = try tensors.load("SCB")
        guard weight.dtype == .i8, weight.shape.count == 2, let codes = weight.integerValues else {
            throw tensors.fail("weight", "expected I8 [out, in] codes, found \(weight.dtype.rawValue) \(weight.shape)")
        }
        let (out, inF) = (weight.shape[0], weight.shape[1])
        guard scb.dtype.isFloatingPoint, scb.elementCount == out else {
            throw tensors.fail("SCB", "expected a float [\(out)], found \(scb.dtype.rawValue) \(scb.shape)")
        }
        if source.contains("\(module).weight_format") {
            let format = try source.storedTensor("\(module).weight_format")
            guard let v = format.integerValues, v.allSatisfy({ $0 == 0 }) else {
                throw tensors.fail("weight_format", "only the row-major layout (0) is supported, as in bitsandbytes ≥ 0.45")
            }
        }
        let bias = source.contains("\(module).bias") ? try source.storedTensor("\(module).bias").toTensor() : nil
        do {
            return try QuantizedLinearWeights(name: module, inFeatures: inF, outFeatures: out, numBits: 8, groupSize: nil,
                                              signedCodes: codes.map { Int32($0) }, scales: scb.toTensor().scalars.map { $0 / 127 },
                                              signedZeroPoints: nil, bias: bias)
        } catch {
            throw QDistIOError(.config, path: source.sourcePath, error.description)
        }
    }
}

/// Reads bitsandbytes folders (`quant_method: "bitsandbytes"`): 8-bit ones (`load_in_8bit`)
/// — every module with an `SCB` tensor, run with LLM.int8's input decomposition at the folder's
/// `llm_int8_threshold` — and 4-bit ones (`load_in_4bit`) — every module with a packed NF4/FP4
/// `weight` and its quant state, weight-only.
public struct BitsAndBytesReader: QuantizedFormatReader {
    public var quantMethod: String { BitsAndBytesInt8Format.quantMethod }

    public init() {}

    public func open(_ f: JSONFields, tensorNames: [String]) throws(QDistIOError) -> OpenedQuantizedFormat {
        if try f.optionalBool("load_in_4bit") == true {
            var modules: [String: QuantizedModuleReader] = [:]
            for name in tensorNames {
                guard let r = name.range(of: ".weight.quant_state.bitsandbytes__") else { continue }
                modules[String(name[..<r.lowerBound])] = QuantizedModuleReader(
                    linear: { m, source in try BitsAndBytesFourBitFormat.readLinear(module: m, source: source) },
                    inputActivations: { _, _ in nil })
            }
            let type = try f.optionalString("bnb_4bit_quant_type") ?? "fp4"
            let dq = try f.optionalBool("bnb_4bit_use_double_quant") == true ? ", double-quantized absmax" : ""
            return OpenedQuantizedFormat(description: "bitsandbytes 4-bit \(type)\(dq)", modules: modules)
        }
        guard try f.optionalBool("load_in_8bit") == true else {
            throw f.error("load_in_8bit", "expected load_in_8bit or load_in_4bit true (a bitsandbytes folder)")
        }
        let threshold = Float(try f.optionalDouble("llm_int8_threshold") ?? 6)
        guard threshold >= 0 else { throw f.error("llm_int8_threshold", "must be 0 or more") }
        let scheme = InputActivationScheme(strategy: .token, dynamic: true, outlierThreshold: threshold)
        var modules: [String: QuantizedModuleReader] = [:]
        for name in tensorNames where name.hasSuffix(".SCB") {
            modules[String(name.dropLast(".SCB".count))] = QuantizedModuleReader(
                linear: { m, source in try BitsAndBytesInt8Format.readLinear(module: m, source: source) },
                inputActivations: { m, _ in try InputActivationParameters(scheme: scheme, subject: m) })
        }
        return OpenedQuantizedFormat(description: "bitsandbytes int8 (threshold \(threshold))", modules: modules)
    }
}
