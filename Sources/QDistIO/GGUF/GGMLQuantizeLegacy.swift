/// Encoders of the 32-element block formats Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (ggml-quants.c
/// `quantize_row_q*_ref` and the imatrix variants `quantize_row_q*_impl`; FORMATS.md §2.3).
///
/// The reference encoders take the block's extreme value as the scale (`d = max/−8`,
/// `(max − min)/15`, …) and map each value with a truncating cast, exactly as C does — the
/// `(int8_t)(x·id + 8.5f)` idiom is round-half-up for in-range values, and its wrap-around for
/// out-of-range ones is kept. The weighted encoders replace the scale choice with ggml's
/// searches, weighting element j by `importance[j]·√(σ² + x_j²)` where σ² is the row's mean
/// square. Q8_0 has no weighted encoder: ggml's `quantize_q8_0` ignores the imatrix.
extension GGMLQuantize {
    /// The signed value with the largest magnitude in 32 values (first one on ties).
    @inline(__always)
    private static func signedAbsMax(_ x: UnsafePointer<Float>) -> Float {
        var amax: Float = 0, max: Float = 0
        for j in 0..<32 where amax < abs(x[j]) {
            amax = abs(x[j])
            max = x[j]
        }
        return max
    }

    /// Smallest and largest of 32 values, from ggml's ±FLT_MAX starting points.
    @inline(__always)
    private static func minMax(_ x: UnsafePointer<Float>) -> (min: Float, max: Float) {
        var min = Float.greatestFiniteMagnitude, max = -Float.greatestFiniteMagnitude
        for j in 0..<32 {
            if x[j] < min { min = x[j] }
            if x[j] > max { max = x[j] }
        }
        return (min, max)
    }

    /// `MIN(limit, (int8_t)value)` stored into a `uint8_t`.
    @inline(__always)
    private static func clampedCode(_ value: Float, _ limit: Int8) -> UInt8 {
        UInt8(bitPattern: Swift.min(limit, Int8(bitPattern: GGMLRounding.truncatedByte(value))))
    }

    /// Packs 32 five-bit codes: low nibbles into `qs` (element j and j + 16 share byte j), the
    /// fifth bits into the little-endian u32 `qh` at `qhOffset`.
    @inline(__always)
    private static func packFiveBit(_ code: (Int) -> UInt8, _ block: UnsafeMutableRawPointer, qhOffset: Int, qsOffset: Int) {
        var qh: UInt32 = 0
        for j in 0..<16 {
            let xi0 = code(j), xi1 = code(j + 16)
            block.storeBytes(of: (xi0 & 0x0F) | ((xi1 & 0x0F) << 4), toByteOffset: qsOffset + j, as: UInt8.self)
            qh |= UInt32((xi0 & 0x10) >> 4) << UInt32(j)
            qh |= UInt32((xi1 & 0x10) >> 4) << UInt32(j + 16)
        }
        block.storeBytes(of: qh.littleEndian, toByteOffset: qhOffset, as: UInt32.self)
    }

    /// Q4_0 reference (18 bytes: `half d; u8 qs[16]`): `d = max/−8`, code `min(15, (int8)(x/d + 8.5))`.
    static func q4_0(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        for i in 0..<n / 32 {
            let xb = x + 32 * i, block = y + 18 * i
            let d = signedAbsMax(xb) / -8
            let id: Float = d != 0 ? 1 / d : 0
            GGMLRounding.storeHalf(d, block, 0)
            for j in 0..<16 {
                let xi0 = clampedCode(xb[j] * id + 8.5, 15), xi1 = clampedCode(xb[j + 16] * id + 8.5, 15)
                block.storeBytes(of: xi0 | (xi1 << 4), toByteOffset: 2 + j, as: UInt8.self)
            }
        }
    }

    /// Q4_1 reference (20 bytes: `half d; half m; u8 qs[16]`): `d = (max − min)/15`, `m = min`.
    static func q4_1(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        for i in 0..<n / 32 {
            let xb = x + 32 * i, block = y + 20 * i
            let (min, max) = minMax(xb)
            let d = (max - min) / 15
            let id: Float = d != 0 ? 1 / d : 0
            GGMLRounding.storeHalf(d, block, 0)
            GGMLRounding.storeHalf(min, block, 2)
            for j in 0..<16 {
                let xi0 = clampedCode((xb[j] - min) * id + 0.5, 15), xi1 = clampedCode((xb[j + 16] - min) * id + 0.5, 15)
                block.storeBytes(of: xi0 | (xi1 << 4), toByteOffset: 4 + j, as: UInt8.self)
            }
        }
    }

    /// Q5_0 reference (22 bytes: `half d; u32 qh; u8 qs[16]`): `d = max/−16`, code
    /// `min(31, (int8)(x/d + 16.5))`.
    static func q5_0(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        for i in 0..<n / 32 {
            let xb = x + 32 * i, block = y + 22 * i
            let d = signedAbsMax(xb) / -16
            let id: Float = d != 0 ? 1 / d : 0
            GGMLRounding.storeHalf(d, block, 0)
            packFiveBit({ clampedCode(xb[$0] * id + 16.5, 31) }, block, qhOffset: 2, qsOffset: 6)
        }
    }

    /// Q5_1 reference (24 bytes: `half d; half m; u32 qh; u8 qs[16]`): `d = (max − min)/31`,
    /// code `(uint8)((x − min)/d + 0.5)` — ggml does not clamp this one.
    static func q5_1(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        for i in 0..<n / 32 {
            let xb = x + 32 * i, block = y + 24 * i
            let (min, max) = minMax(xb)
            let d = (max - min) / 31
            let id: Float = d != 0 ? 1 / d : 0
            GGMLRounding.storeHalf(d, block, 0)
            GGMLRounding.storeHalf(min, block, 2)
            packFiveBit({ GGMLRounding.truncatedByte((xb[$0] - min) * id + 0.5) }, block, qhOffset: 4, qsOffset: 8)
        }
    }

    /// Q8_0 (34 bytes: `half d; i8 qs[32]`): `d = amax/127`, code `roundf(x/d)` (half away
    /// from zero). The only encoder ggml has for Q8_0, with or without an imatrix.
    static func q8_0(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        for i in 0..<n / 32 {
            let xb = x + 32 * i, block = y + 34 * i
            var amax: Float = 0
            for j in 0..<32 { amax = amax > abs(xb[j]) ? amax : abs(xb[j]) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            GGMLRounding.storeHalf(d, block, 0)
            for j in 0..<32 {
                let q = GGMLRounding.truncatedByte((xb[j] * id).rounded(.toNearestOrAwayFromZero))
                block.storeBytes(of: q, toByteOffset: 2 + j, as: UInt8.self)
            }
        }
    }

    // MARK: importance-weighted (`quantize_row_q*_impl`)

    /// σ² of the weighted legacy encoders: the mean square of the whole row.
    @inline(__always)
    private static func rowMeanSquare(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var sum: Float = 0
        for j in 0..<n { sum += x[j] * x[j] }
        return sum / Float(n)
    }

    /// Fills `scratch.weights[0..<32]` with `qw[j]·√(σ² + x_j²)` for one block.
    @inline(__always)
    private static func blockWeights(_ xb: UnsafePointer<Float>, _ qw: UnsafePointer<Float>, _ sigma2: Float,
                                     _ scratch: GGMLQuantizeScratch) {
        for j in 0..<32 { scratch.weights[j] = qw[j] * (sigma2 + xb[j] * xb[j]).squareRoot() }
    }

    /// Q4_0 with importance: `make_qx_quants(32, 8, …)` picks `d`; levels are the codes.
    static func q4_0Weighted(_ x: UnsafePointer<Float>, _ n: Int, _ importance: UnsafePointer<Float>,
                             _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        let sigma2 = rowMeanSquare(x, n)
        let L = scratch.signedLevels
        for ib in 0..<n / 32 {
            let xb = x + 32 * ib, block = y + 18 * ib
            blockWeights(xb, importance + 32 * ib, sigma2, scratch)
            let d = GGMLSearch.symmetric(32, 8, xb, L, weights: scratch.weights, trial: scratch.signedTrialLevels)
            GGMLRounding.storeHalf(d, block, 0)
            for j in 0..<16 {
                block.storeBytes(of: UInt8(bitPattern: L[j] | (L[j + 16] << 4)), toByteOffset: 2 + j, as: UInt8.self)
            }
        }
    }

    /// Q4_1 with importance: `make_qkx3_quants(32, 15, …, −0.9, 0.05, 36)` picks `d` and `m`.
    static func q4_1Weighted(_ x: UnsafePointer<Float>, _ n: Int, _ importance: UnsafePointer<Float>,
                             _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        let sigma2 = rowMeanSquare(x, n)
        let L = scratch.levels
        for ib in 0..<n / 32 {
            let xb = x + 32 * ib, block = y + 20 * ib
            blockWeights(xb, importance + 32 * ib, sigma2, scratch)
            var min: Float = 0
            let d = GGMLSearch.affine(32, 15, xb, scratch.weights, L, &min, scratch.trialLevels,
                                      rmin: -0.9, rdelta: 0.05, nstep: 36, useMad: false)
            GGMLRounding.storeHalf(d, block, 0)
            GGMLRounding.storeHalf(-min, block, 2)
            for j in 0..<16 { block.storeBytes(of: L[j] | (L[j + 16] << 4), toByteOffset: 4 + j, as: UInt8.self) }
        }
    }

    /// Q5_0 with importance: `make_qx_quants(32, 16, …)`.
    static func q5_0Weighted(_ x: UnsafePointer<Float>, _ n: Int, _ importance: UnsafePointer<Float>,
                             _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        let sigma2 = rowMeanSquare(x, n)
        let L = scratch.signedLevels
        for ib in 0..<n / 32 {
            let xb = x + 32 * ib, block = y + 22 * ib
            blockWeights(xb, importance + 32 * ib, sigma2, scratch)
            let d = GGMLSearch.symmetric(32, 16, xb, L, weights: scratch.weights, trial: scratch.signedTrialLevels)
            GGMLRounding.storeHalf(d, block, 0)
            packFiveBit({ UInt8(bitPattern: L[$0]) }, block, qhOffset: 2, qsOffset: 6)
        }
    }

    /// Q5_1 with importance: `make_qkx3_quants(32, 31, …, −0.9, 0.05, 36)`.
    static func q5_1Weighted(_ x: UnsafePointer<Float>, _ n: Int, _ importance: UnsafePointer<Float>,
                             _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        let sigma2 = rowMeanSquare(x, n)
        let L = scratch.levels
        for ib in 0..<n / 32 {
            let xb = x + 32 * ib, block = y + 24 * ib
            blockWeights(xb, importance + 32 * ib, sigma2, scratch)
            var min: Float = 0
            let d = GGMLSearch.affine(32, 31, xb, scratch.weights, L, &min, scratch.trialLevels,
                                      rmin: -0.9, rdelta: 0.05, nstep: 36, useMad: false)
            GGMLRounding.storeHalf(d, block, 0)
            GGMLRounding.storeHalf(-min, block, 2)
            packFiveBit({ L[$0] }, block, qhOffset: 4, qsOffset: 8)
        }
    }
}
