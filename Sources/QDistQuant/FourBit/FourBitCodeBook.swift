/// The two bitsandbytes 4-bit code books (FORMATS.md §6.1, §6.2) and the encoders that pick a
/// code for a value already divided by its block's absmax.
///
/// The encoders copy the CUDA kernels (`csrc/kernels.cu`: `dQuantizeNF4`, `dQuantizeFP4`)
/// comparison for comparison, thresholds written as the same float literals, because QLoRA
/// checkpoints come from those kernels: a value exactly on a threshold goes to the lower code
/// (`x > t` picks the upper one), and NaN falls through every comparison to code 0, as on the
/// GPU. (bnb's CPU fallback buckets by the
/// midpoints it computes in float32 instead; it agrees except on those exact ties.)
public enum FourBitQuantType: String, Sendable, CaseIterable, Codable {
    /// NormalFloat4: the 16 quantiles of N(0, 1) scaled to [-1, 1], with an exact zero
    /// (QLoRA's `bnb_4bit_quant_type="nf4"`).
    case nf4
    /// bnb "fp4": an E2M1-like float with a sign bit (bit 3) and no inf/nan, scaled by 1/12.
    case fp4

    /// NF4 code → value, exact float32 literals from bitsandbytes' `get_4bit_type("nf4")`.
    public static let nf4Values: [Float] = [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ]

    /// FP4 code → value: bnb's raw list `[0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12,
    /// -4, -6, -2, -3]` divided (in float32) by its absmax 12, as `get_4bit_type("fp4")` does.
    public static let fp4Values: [Float] = {
        let raw: [Float] = [0, 0.0625, 8, 12, 4, 6, 2, 3, -0.0, -0.0625, -8, -12, -4, -6, -2, -3]
        return raw.map { $0 / 12 }
    }()

    /// Code → value for this type (16 entries).
    public var codeBook: [Float] {
        switch self {
        case .nf4: return Self.nf4Values
        case .fp4: return Self.fp4Values
        }
    }

    /// The code a scaled value `x` (nominally in [-1, 1]) is stored as: the nearest entry of
    /// the code book, decided exactly as bitsandbytes' CUDA kernel decides it.
    @inline(__always)
    public func code(forScaled x: Float) -> UInt8 {
        switch self {
        case .nf4: return Self.nf4Code(x)
        case .fp4: return Self.fp4Code(x)
        }
    }

    /// The index of a code-book value (the inverse of `codeBook`): FP4's −0 (index 8) is told
    /// from +0 by its sign bit. A value not in the book gets the code the encoder would give it.
    @inline(__always)
    public func index(ofValue v: Float) -> UInt8 {
        switch self {
        case .nf4: return Self.nf4Code(v)
        case .fp4: return Self.fp4Code(abs(v)) | (v.sign == .minus ? 0b1000 : 0)
        }
    }

    /// `dQuantizeNF4`: a depth-4 decision tree on the midpoints between neighbouring codes.
    /// The thresholds are nvcc's float32 roundings of bnb's decimal literals, given as bit
    /// patterns: four of them (0.8614784181118011, 0.5016634166240692, 0.1202552504837513,
    /// -0.8480964004993439) are exact float32 ties once rounded to Double first, so parsing
    /// them through Double would move them one ulp.
    @inline(__always)
    static func nf4Code(_ x: Float) -> UInt8 {
        if x > Float(bitPattern: 0x3D22_FAFF) {                 // 0.03979014977812767
            if x > Float(bitPattern: 0x3EC7_53F9) {             // 0.3893125355243683
                if x > Float(bitPattern: 0x3F24_8DAF) {         // 0.6427869200706482
                    return x > Float(bitPattern: 0x3F5C_89D9) ? 0b1111 : 0b1110  // 0.8614784181118011
                }
                return x > Float(bitPattern: 0x3F00_6D03) ? 0b1101 : 0b1100      // 0.5016634166240692
            }
            if x > Float(bitPattern: 0x3E50_67E0) {             // 0.2035212516784668
                return x > Float(bitPattern: 0x3E95_82D4) ? 0b1011 : 0b1010      // 0.2920137718319893
            }
            return x > Float(bitPattern: 0x3DF6_4863) ? 0b1001 : 0b1000          // 0.1202552504837513
        }
        if x > Float(bitPattern: 0xBEAD_EA76) {                 // -0.33967943489551544
            if x > Float(bitPattern: 0xBE0D_38BC) {             // -0.13791173323988914
                return x > Float(bitPattern: 0xBD3A_7871) ? 0b0111 : 0b0110      // -0.045525018125772476
            }
            return x > Float(bitPattern: 0xBE70_3CEC) ? 0b0101 : 0b0100          // -0.23460740596055984
        }
        if x > Float(bitPattern: 0xBF1C_5270) {                 // -0.6106329262256622
            return x > Float(bitPattern: 0xBEEB_8480) ? 0b0011 : 0b0010          // -0.4599952697753906
        }
        return x > Float(bitPattern: 0xBF59_1CD9) ? 0b0001 : 0b0000              // -0.8480964004993439
    }

    /// `dQuantizeFP4`: sign bit from `x < 0`, then a decision tree on |x| whose thresholds are
    /// bnb's literals for the midpoints of the magnitudes 0, 1/192, 1/6, 1/4, 1/3, 1/2, 2/3, 1
    /// (as bit patterns, for the same reason as above).
    @inline(__always)
    static func fp4Code(_ x: Float) -> UInt8 {
        let sign: UInt8 = x < 0 ? 0b1000 : 0
        let a = abs(x)
        if a > Float(bitPattern: 0x3E95_5555) {                 // 0.29166667
            if a > Float(bitPattern: 0x3F15_5550) {             // 0.583333
                return (a > Float(bitPattern: 0x3F55_5555) ? 0b0011 : 0b0010) + sign  // 0.8333333
            }
            return (a > Float(bitPattern: 0x3ED5_5556) ? 0b0101 : 0b0100) + sign      // 0.4166667
        }
        if a > Float(bitPattern: 0x3DB0_0000) {                 // 0.0859375
            return (a > Float(bitPattern: 0x3E55_5555) ? 0b0111 : 0b0110) + sign      // 0.20833333
        }
        return (a > Float(bitPattern: 0x3B2A_AAB9) ? 0b0001 : 0b0000) + sign          // 0.00260417
    }
}
