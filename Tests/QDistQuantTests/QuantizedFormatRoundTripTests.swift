import QDistIO
import QDistTensor
import XCTest
@testable import QDistQuant

/// Writer → tensors → reader round trips for both formats: the same codes, scales, zero points
/// and g_idx come back, and the tensors have the dtypes and shapes FORMATS.md §4/§5 give.
final class QuantizedFormatRoundTripTests: XCTestCase {
    private var rng = SeededGenerator(state: 11)

    /// A random layer whose scales are already representable in `scaleDType` (as a file keeps them).
    private func randomLinear(_ name: String = "model.layers.0.self_attn.q_proj", out: Int, in inF: Int, bits: Int,
                              groupSize: Int?, symmetric: Bool, actOrder: Bool = false, bias: Bool = false,
                              scaleDType: DType = .bf16, minZero: Int32 = 0) throws -> QuantizedLinearWeights {
        let groups = QuantizedLinearWeights.groupCount(inFeatures: inF, groupSize: groupSize)
        var gIdx: [Int32]?
        if actOrder, let groupSize {
            let perm = Array(0..<inF).shuffled(using: &rng)
            var g = [Int32](repeating: 0, count: inF)
            for (k, column) in perm.enumerated() { g[column] = Int32(k / groupSize) }
            gIdx = g
        }
        let scales = (0..<out * groups).map { _ in Float.random(in: 0.001...0.1, using: &rng) }
        return try QuantizedLinearWeights(
            name: name, inFeatures: inF, outFeatures: out, numBits: bits, groupSize: groupSize,
            codes: (0..<out * inF).map { _ in Int32.random(in: 0..<(1 << bits), using: &rng) }, scales: scales,
            zeroPoints: symmetric ? nil : (0..<out * groups).map { _ in Int32.random(in: minZero..<(1 << bits), using: &rng) },
            gIdx: gIdx, bias: bias ? Tensor(shape: [out], scalars: (0..<out).map { Float($0) / 8 }) : nil
        ).roundingScales(to: scaleDType)
    }

    private func readBack(_ written: QuantizedCheckpointTensors) throws -> QuantizedCheckpointReader {
        let source = InMemoryStoredTensors(written.tensors, sourcePath: "model.safetensors")
        return try XCTUnwrap(QuantizedCheckpointReader(quantizationConfig: written.quantizationConfig,
                                                       configPath: "config.json", source: source))
    }

    private let norm = ["model.norm.weight": StoredTensor(Tensor(repeating: 1, shape: [8]), as: .bf16)]

    func testCompressedTensorsRoundTripsSymmetricAsymmetricChannelActOrderAndEveryWidth() throws {
        let cases: [(bits: Int, out: Int, in: Int, group: Int?, sym: Bool, actOrder: Bool, bias: Bool)] = [
            (4, 16, 64, 16, true, false, false), (4, 20, 64, 32, false, false, true), (8, 12, 40, nil, true, false, false),
            (8, 9, 40, nil, false, false, false), (2, 17, 64, 32, false, false, false), (3, 13, 60, 20, false, false, false),
            (4, 16, 64, 16, true, true, false), (4, 24, 96, 32, false, true, true), (3, 10, 30, nil, true, false, false),
        ]
        for c in cases {
            let label = "\(c)"
            let linear = try randomLinear(out: c.out, in: c.in, bits: c.bits, groupSize: c.group, symmetric: c.sym,
                                          actOrder: c.actOrder, bias: c.bias)
            let written = try CompressedTensorsFormat.write([linear], otherTensors: norm)
            let reader = try readBack(written)
            XCTAssertEqual(reader.format, "compressed-tensors")
            XCTAssertEqual(reader.modules, [linear.name])
            let back = try reader.linear(linear.name)
            XCTAssertEqual(back, linear, label)
            XCTAssertEqual(back.dequantize(), linear.dequantize(), label)
            XCTAssertEqual(written.tensors["model.norm.weight"], norm["model.norm.weight"], "other tensors pass through")
            XCTAssertNil(written.tensors["\(linear.name).weight"], label)
            XCTAssertEqual(written.tensors["\(linear.name).weight_g_idx"] != nil, c.actOrder, label)
            XCTAssertEqual(written.tensors["\(linear.name).weight_zero_point"] != nil, !c.sym, label)
        }
    }

    /// FP8 layers (per tensor and per channel, with a static input scale or dynamic per token)
    /// write compressed-tensors float-quantized — `weight` F8_E4M3, `weight_scale` [1] or
    /// [out, 1], `input_scale` [1] — and read back to the same codes, scales and input scheme.
    func testFloatQuantizedFP8RoundTripsPerTensorAndPerChannelWithTheirInputScales() throws {
        for perTensor in [true, false] {
            let (out, inF) = (12, 40)
            let codes = (0..<out * inF).map { _ -> Int32 in
                var c: Int32
                repeat { c = Int32.random(in: 0...255, using: &rng) } while c & 0x7F == 0x7F  // no NaN codes
                return c
            }
            let scale = Float.random(in: 0.001...0.01, using: &rng)
            let scales = perTensor ? [Float](repeating: scale, count: out) : (0..<out).map { _ in Float.random(in: 0.001...0.01, using: &rng) }
            let linear = try QuantizedLinearWeights(name: "model.layers.0.mlp.up_proj", inFeatures: inF, outFeatures: out, numBits: 8,
                                                    groupSize: nil, codes: codes, scales: scales, zeroPoints: nil,
                                                    codeType: .float, perTensor: perTensor).roundingScales(to: .bf16)
            let scheme = perTensor ? InputActivationScheme(strategy: .tensor, dynamic: false, type: .float)
                : InputActivationScheme(strategy: .token, dynamic: true, type: .float)
            let input = try InputActivationParameters(scheme: scheme, scale: perTensor ? 0.0625 : nil)
            let written = try CompressedTensorsFormat.write([linear], otherTensors: norm, inputActivations: [linear.name: input])
            let t = written.tensors
            XCTAssertEqual(t["\(linear.name).weight"]?.dtype, .f8E4M3)
            XCTAssertEqual(t["\(linear.name).weight"]?.shape, [out, inF])
            XCTAssertEqual(t["\(linear.name).weight_scale"]?.shape, perTensor ? [1] : [out, 1])
            XCTAssertEqual(t["\(linear.name).input_scale"]?.shape, perTensor ? [1] : nil)
            let group = written.quantizationConfig["config_groups"]?["group_0"]
            XCTAssertEqual(group?["format"], "float-quantized")
            XCTAssertEqual(group?["weights"]?["type"], "float")
            XCTAssertEqual(group?["weights"]?["strategy"], .string(perTensor ? "tensor" : "channel"))
            XCTAssertEqual(group?["input_activations"]?["type"], "float")
            let reader = try readBack(written)
            let back = try reader.linear(linear.name)
            XCTAssertEqual(back, linear)
            XCTAssertEqual(try reader.inputActivations(linear.name), input)
            // A weight is e4m3(code) · scale.
            let w = back.dequantize()
            XCTAssertEqual(w.scalars[5], FloatBits.float(fromFP8E4M3: UInt8(codes[5])) * back.scales[0])
        }
    }

    /// Float zero points (HQQ) round-trip through qdist's float-zero layout — F32
    /// `weight_zero_point` next to pack-quantized codes, under `quant_method: "qdist"` — and the
    /// integer formats refuse such a layer rather than rounding its zeros.
    func testFloatZeroLayoutRoundTripsFractionalZerosAndIntegerFormatsRefuseThem() throws {
        for bits in [2, 3, 4, 8] {
            let (out, inF, gs) = (10, 64, 32)
            let linear = try QuantizedLinearWeights(
                name: "model.layers.1.mlp.down_proj", inFeatures: inF, outFeatures: out, numBits: bits, groupSize: gs,
                codes: (0..<out * inF).map { _ in Int32.random(in: 0..<(1 << bits), using: &rng) },
                scales: (0..<out * 2).map { _ in Float.random(in: 0.001...0.1, using: &rng) }, zeroPoints: nil,
                fractionalZeroPoints: (0..<out * 2).map { _ in Float.random(in: -0.5...Float(1 << bits), using: &rng) }
            ).roundingScales(to: .bf16)
            let schemes = [(name: linear.name, scheme: linear.scheme)]
            let written = try QuantizedCheckpointTensors.assemble(
                linears: [(linear.name, try FloatZeroFormat.tensors(for: linear, scaleDType: .bf16))], otherTensors: norm,
                quantizationConfig: try FloatZeroFormat.quantizationConfig(schemes: schemes, options: .init(scaleDType: .bf16)))
            XCTAssertEqual(written.quantizationConfig["quant_method"], "qdist")
            XCTAssertEqual(written.tensors["\(linear.name).weight_zero_point"]?.dtype, .f32)
            let reader = try readBack(written)
            XCTAssertEqual(reader.format, "qdist float-zero")
            let back = try reader.linear(linear.name)
            XCTAssertEqual(back, linear, "\(bits) bits")
            XCTAssertEqual(back.dequantize().scalars[70], (Float(linear.codes[70]) - linear.fractionalZeroPoints![2]) * linear.scales[2])
            XCTAssertThrowsError(try CompressedTensorsFormat.write([linear], otherTensors: norm)) { XCTAssertTrue("\($0)".contains("float-zero")) }
            XCTAssertThrowsError(try GPTQFormat.tensors(for: linear)) { XCTAssertTrue("\($0)".contains("float zero points")) }
        }
    }

    func testCompressedTensorsTensorDtypesAndShapesFollowFormatsDoc() throws {
        let m = "model.layers.3.mlp.up_proj"
        let linear = try randomLinear(m, out: 20, in: 64, bits: 4, groupSize: 32, symmetric: false, bias: true, scaleDType: .f16)
        let t = try CompressedTensorsFormat.tensors(for: linear, scaleDType: .f16)
        XCTAssertEqual(Set(t.keys), Set(["weight_packed", "weight_scale", "weight_shape", "weight_zero_point", "bias"].map { "\(m).\($0)" }))
        XCTAssertEqual(t["\(m).weight_packed"]?.dtype, .i32)
        XCTAssertEqual(t["\(m).weight_packed"]?.shape, [20, 8])
        XCTAssertEqual(t["\(m).weight_scale"]?.dtype, .f16)
        XCTAssertEqual(t["\(m).weight_scale"]?.shape, [20, 2])
        XCTAssertEqual(t["\(m).weight_shape"]?.dtype, .i64)
        XCTAssertEqual(t["\(m).weight_shape"]?.integerValues, [20, 64])
        XCTAssertEqual(t["\(m).weight_zero_point"]?.dtype, .i32)
        XCTAssertEqual(t["\(m).weight_zero_point"]?.shape, [3, 2], "ceil(20 / 8) rows: packed along the output dim")
        XCTAssertEqual(t["\(m).bias"]?.dtype, .f16)
        // The zero points are compressed-tensors' signed ones, packed with pack_to_int32(packed_dim=0).
        let (expected, _) = try PackedInt32.packToInt32(signed: linear.signedZeroPoints!, rows: 20, columns: 2, bits: 4, packedDim: 0)
        XCTAssertEqual(t["\(m).weight_zero_point"]?.int32Values, expected)
        let (codes, _) = try PackedInt32.packToInt32(signed: linear.signedCodes, rows: 20, columns: 64, bits: 4)
        XCTAssertEqual(t["\(m).weight_packed"]?.int32Values, codes)
    }

    func testGPTQRoundTripsV1V2ThreeBitShorterLastGroupActOrderAndPerChannel() throws {
        let cases: [(bits: Int, out: Int, in: Int, group: Int?, sym: Bool, actOrder: Bool, format: GPTQFormat.CheckpointFormat)] = [
            (4, 16, 64, 32, true, false, .v1), (4, 24, 64, 16, false, false, .v1), (4, 16, 64, 16, false, false, .v2),
            (3, 32, 64, 32, false, false, .v1), (3, 64, 96, nil, true, false, .v2), (2, 32, 64, 16, false, false, .v1),
            (8, 12, 40, nil, false, false, .v1), (4, 16, 96, 64, true, false, .v1), (4, 16, 96, 64, false, true, .v1),
            (8, 8, 64, 16, true, true, .v2),
        ]
        for c in cases {
            let label = "\(c)"
            let linear = try randomLinear(out: c.out, in: c.in, bits: c.bits, groupSize: c.group, symmetric: c.sym,
                                          actOrder: c.actOrder, bias: c.actOrder, scaleDType: .f16, minZero: c.format == .v1 ? 1 : 0)
            let written = try GPTQFormat.write([linear], otherTensors: norm, options: .init(checkpointFormat: c.format))
            let reader = try readBack(written)
            XCTAssertEqual(reader.format, "gptq \(c.format.rawValue)", label)
            let back = try reader.linear(linear.name)
            XCTAssertEqual(back, linear, label)
            XCTAssertEqual(back.dequantize(), linear.dequantize(), label)
            let m = linear.name, groups = linear.groupCount
            XCTAssertEqual(written.tensors["\(m).qweight"]?.shape, [c.in * c.bits / 32, c.out], label)
            XCTAssertEqual(written.tensors["\(m).qzeros"]?.shape, [groups, c.out * c.bits / 32], label)
            XCTAssertEqual(written.tensors["\(m).scales"]?.shape, [groups, c.out], label)
            XCTAssertEqual(written.tensors["\(m).scales"]?.dtype, .f16, label)
            XCTAssertEqual(written.tensors["\(m).g_idx"]?.int32Values, linear.effectiveGIdx, label)
            XCTAssertEqual(written.quantizationConfig["desc_act"], .bool(c.actOrder), label)
        }
    }

    func testSymmetricFourBitGPTQStoresSevensAndIsCompressedTensorsTransposed() throws {
        let linear = try randomLinear(out: 16, in: 64, bits: 4, groupSize: 32, symmetric: true)
        let gptq = try GPTQFormat.tensors(for: linear)
        let m = linear.name
        XCTAssertEqual(Set(gptq["\(m).qzeros"]!.int32Values!.map { UInt32(bitPattern: $0) }), [0x7777_7777],
                       "v1 stores zero − 1 = 7 in every nibble")
        let ct = try CompressedTensorsFormat.tensors(for: linear, scaleDType: .f16)
        let packed = ct["\(m).weight_packed"]!.int32Values!
        XCTAssertEqual(PackedInt32.transpose(packed, rows: 16, columns: 8), gptq["\(m).qweight"]!.int32Values!,
                       "weight_packed.T is bit-identical to a GPTQ qweight with zero point 8 (FORMATS §5.3)")
    }

    func testUnrepresentableLayersAreOneLineErrorsNamingTheLayer() throws {
        let shortLast = try randomLinear("model.layers.1.mlp.down_proj", out: 16, in: 96, bits: 4, groupSize: 64, symmetric: true)
        XCTAssertThrowsError(try CompressedTensorsFormat.write([shortLast], otherTensors: [:])) { error in
            XCTAssertTrue("\(error)".hasPrefix("model.layers.1.mlp.down_proj: compressed-tensors needs in_features (96) divisible by group_size (64)"), "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
        XCTAssertNoThrow(try GPTQFormat.write([shortLast], otherTensors: [:]), "GPTQ carries a shorter last group")

        var uneven = [Int32](repeating: 0, count: 64)
        for i in 0..<64 { uneven[i] = i < 20 ? 0 : 1 }
        let unevenActOrder = try QuantizedLinearWeights(
            name: "m", inFeatures: 64, outFeatures: 8, numBits: 4, groupSize: 32, codes: .init(repeating: 1, count: 512),
            scales: .init(repeating: 1, count: 16), zeroPoints: nil, gIdx: uneven)
        XCTAssertThrowsError(try CompressedTensorsFormat.write([unevenActOrder], otherTensors: [:])) { error in
            XCTAssertTrue("\(error)".contains("group 0 20"), "\(error)")
        }

        let zeroZero = try randomLinear("model.layers.0.self_attn.k_proj", out: 16, in: 64, bits: 4, groupSize: 32, symmetric: false)
        let withZero = try QuantizedLinearWeights(
            name: zeroZero.name, inFeatures: 64, outFeatures: 16, numBits: 4, groupSize: 32, codes: zeroZero.codes,
            scales: zeroZero.scales, zeroPoints: [0] + zeroZero.zeroPoints!.dropFirst())
        XCTAssertThrowsError(try GPTQFormat.write([withZero], otherTensors: [:])) { error in
            XCTAssertTrue("\(error)".contains("zero point of 0 cannot be stored in GPTQ v1"), "\(error)")
        }
        let v2 = try GPTQFormat.write([withZero], otherTensors: [:], options: .init(checkpointFormat: .v2))
        XCTAssertEqual(try readBack(v2).linear(withZero.name), withZero)

        let odd = try randomLinear(out: 16, in: 60, bits: 4, groupSize: nil, symmetric: true)
        XCTAssertThrowsError(try GPTQFormat.write([odd], otherTensors: [:])) { error in
            XCTAssertTrue("\(error)".contains("divisible by 8"), "\(error)")
        }
        XCTAssertNoThrow(try CompressedTensorsFormat.write([odd], otherTensors: [:]), "compressed-tensors pads the last word")

        let a = try randomLinear("a", out: 16, in: 64, bits: 4, groupSize: 32, symmetric: true)
        let b = try randomLinear("b", out: 16, in: 64, bits: 8, groupSize: 32, symmetric: true)
        XCTAssertThrowsError(try GPTQFormat.write([a, b], otherTensors: [:])) { error in
            XCTAssertTrue("\(error)".contains("GPTQ has one config for all layers"), "\(error)")
        }
        XCTAssertThrowsError(try CompressedTensorsFormat.write([a], otherTensors: ["a.weight": norm.first!.value])) { error in
            XCTAssertTrue("\(error)".contains("both quantized and passed through"), "\(error)")
        }
    }

    func testDistinctSchemesBecomeSeparateCompressedTensorsGroupsWithExactTargets() throws {
        let a = try randomLinear("model.layers.0.self_attn.q_proj", out: 16, in: 64, bits: 4, groupSize: 32, symmetric: true)
        let b = try randomLinear("model.layers.0.mlp.down_proj", out: 16, in: 64, bits: 8, groupSize: nil, symmetric: false)
        let c = try randomLinear("model.layers.1.self_attn.q_proj", out: 16, in: 64, bits: 4, groupSize: 32, symmetric: true)
        let written = try CompressedTensorsFormat.write([a, b, c], otherTensors: [:])
        let groups = try XCTUnwrap(written.quantizationConfig["config_groups"]?.objectValue)
        XCTAssertEqual(groups.map(\.key), ["group_0", "group_1"])
        XCTAssertEqual(groups[0].value["targets"], [.string(a.name), .string(c.name)])
        XCTAssertEqual(groups[1].value["weights"]?["strategy"], "channel")
        let reader = try readBack(written)
        XCTAssertEqual(reader.modules, [b.name, a.name, c.name], "checkpoint (natural) order")
        XCTAssertEqual(try reader.linears(), [b, a, c])
    }

    func testSignedConventionAndDequantizedValues() throws {
        // 4-bit symmetric: unsigned code 0 is signed −8, so the weight is −8·scale.
        let w = try QuantizedLinearWeights(name: "m", inFeatures: 4, outFeatures: 1, numBits: 4, groupSize: 2,
                                           signedCodes: [-8, 7, 0, 1], scales: [0.5, 0.25], signedZeroPoints: nil)
        XCTAssertEqual(w.codes, [0, 15, 8, 9])
        XCTAssertEqual(w.dequantize().scalars, [-4, 3.5, 0, 0.25])
        let asym = try QuantizedLinearWeights(name: "m", inFeatures: 4, outFeatures: 1, numBits: 4, groupSize: nil,
                                              signedCodes: [-8, 7, 0, 1], scales: [2], signedZeroPoints: [-8])
        XCTAssertEqual(asym.zeroPoints, [0])
        XCTAssertEqual(asym.dequantize().scalars, [0, 30, 16, 18])
        XCTAssertEqual(asym.signedCodes, [-8, 7, 0, 1])
        XCTAssertThrowsError(try QuantizedLinearWeights(name: "m", inFeatures: 2, outFeatures: 1, numBits: 4, groupSize: nil,
                                                        codes: [0, 16], scales: [1], zeroPoints: nil)) { error in
            XCTAssertTrue("\(error)".hasPrefix("m: code 16 at (0, 1) is outside 0...15"), "\(error)")
        }
        // A g_idx equal to the default map is the same layer as none.
        let explicit = try QuantizedLinearWeights(name: "m", inFeatures: 4, outFeatures: 1, numBits: 4, groupSize: 2,
                                                  codes: [1, 2, 3, 4], scales: [1, 1], zeroPoints: nil, gIdx: [0, 0, 1, 1])
        XCTAssertNil(explicit.gIdx)
    }

    func testReferenceRoundToNearestStaysWithinHalfAStep() throws {
        let weight = Tensor(shape: [8, 64], scalars: (0..<512).map { _ in Float.random(in: -1...1, using: &rng) })
        for (sym, bits) in [(true, 4), (false, 4), (false, 3), (true, 8)] {
            let q = try QuantizedLinearWeights.referenceRoundToNearest(name: "m", weight: weight, numBits: bits, groupSize: 16,
                                                                        symmetric: sym, scaleDType: .f16)
            let back = q.dequantize()
            for o in 0..<8 {
                for i in 0..<64 {
                    let step = q.scales[o * 4 + i / 16]
                    // Half a step, plus the clipped top code times fp16's rounding of the scale.
                    let tolerance = step * (0.5 + Float(1 << (bits - 1)) / 2048) + 1e-6
                    XCTAssertLessThanOrEqual(abs(back[o, i] - weight[o, i]), tolerance, "\(sym) \(bits)")
                }
            }
        }
    }
}
