/// Encoders of the k-quants with eight 32-element sub-blocks and 6-bit scales and mins:
/// Q4_K and Q5_K (ggml-quants.c `quantize_row_q4_K_ref`/`_impl`, `q5_K`; FORMATS.md §2.3, §2.7).
///
/// Both fit an affine `scale·L − min` per sub-block, quantize the eight scales and eight mins
/// to 6 bits against two fp16 super-scales (`d`, `dmin`), then requantize the values against
/// the rounded scales. The reference encoders weight element j by `av_x + |x_j|` and round the
/// scales plainly against `max/63`; the weighted ones use the imatrix weights and ggml's
/// `make_qp_quants` search for the 6-bit scales.
extension GGMLQuantize {
    /// Which of the two formats: the code range and the reference search parameters.
    private struct K45 {
        let nmax: Int32
        let typeSize: Int
        let rmin: Float, rdelta: Float, nstep: Int
        static let q4 = K45(nmax: 15, typeSize: 144, rmin: -1, rdelta: 0.1, nstep: 20)
        static let q5 = K45(nmax: 31, typeSize: 176, rmin: -0.5, rdelta: 0.1, nstep: 15)
    }

    /// Packs eight 6-bit scale and min levels into the 12 bytes at offset 4 (the inverse of
    /// `get_scale_min_k4`, FORMATS.md §2.3).
    @inline(__always)
    private static func packScalesMins(_ ls: (Int) -> UInt8, _ lm: (Int) -> UInt8, _ block: UnsafeMutableRawPointer) {
        let s = block + 4
        @inline(__always) func or(_ k: Int, _ bits: UInt8) {
            s.storeBytes(of: s.load(fromByteOffset: k, as: UInt8.self) | bits, toByteOffset: k, as: UInt8.self)
        }
        for j in 0..<8 {
            let scale = ls(j), min = lm(j)
            if j < 4 {
                s.storeBytes(of: scale, toByteOffset: j, as: UInt8.self)
                s.storeBytes(of: min, toByteOffset: j + 4, as: UInt8.self)
            } else {
                s.storeBytes(of: (scale & 0x0F) | ((min & 0x0F) << 4), toByteOffset: j + 4, as: UInt8.self)
                or(j - 4, (scale >> 4) << 6)
                or(j, (min >> 4) << 6)
            }
        }
    }

    /// Requantizes against the stored scales (`d·sc`, `dmin·m`) and packs the codes: Q4_K as
    /// nibbles, Q5_K as nibbles plus a fifth bit in `qh`.
    private static func finishK45(_ x: UnsafePointer<Float>, _ block: UnsafeMutableRawPointer,
                                  _ L: UnsafeMutablePointer<UInt8>, _ format: K45) {
        let dAll = GGMLDequantize.half(block, 0), dminAll = GGMLDequantize.half(block, 2)
        let scales = UnsafePointer((block + 4).assumingMemoryBound(to: UInt8.self))
        for j in 0..<8 {
            let (sc, m) = GGMLDequantize.scaleMinK4(j, scales)
            let d = dAll * sc
            if d == 0 { continue }
            let dm = dminAll * m
            for ii in 0..<32 {
                let l = GGMLSearch.nearestInt((x[32 * j + ii] + dm) / d)
                L[32 * j + ii] = UInt8(truncatingIfNeeded: Swift.max(0, Swift.min(format.nmax, l)))
            }
        }
        if format.nmax == 15 {
            for j in stride(from: 0, to: 256, by: 64) {
                for l in 0..<32 {
                    block.storeBytes(of: L[j + l] | (L[j + l + 32] << 4), toByteOffset: 16 + j / 2 + l, as: UInt8.self)
                }
            }
            return
        }
        let qh = block + 16
        for j in 0..<32 { qh.storeBytes(of: 0, toByteOffset: j, as: UInt8.self) }
        var m1: UInt8 = 1, m2: UInt8 = 2
        for n in stride(from: 0, to: 256, by: 64) {
            for j in 0..<32 {
                var high: UInt8 = qh.load(fromByteOffset: j, as: UInt8.self)
                var l1 = L[n + j], l2 = L[n + j + 32]
                if l1 > 15 { l1 -= 16; high |= m1 }
                if l2 > 15 { l2 -= 16; high |= m2 }
                qh.storeBytes(of: high, toByteOffset: j, as: UInt8.self)
                block.storeBytes(of: l1 | (l2 << 4), toByteOffset: 48 + n / 2 + j, as: UInt8.self)
            }
            m1 <<= 2
            m2 <<= 2
        }
    }

    /// The reference encoder of either format: `make_qkx2_quants(32, nmax, …)` per sub-block
    /// with weights `av_x + |x|` (`av_x` = the sub-block's RMS), then 6-bit levels of
    /// `scale·63/max_scale` and `min·63/max_min`.
    private static func referenceK45(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer,
                                     _ scratch: GGMLQuantizeScratch, _ format: K45) {
        let L = scratch.levels, scales = scratch.scales, mins = scratch.mins, weights = scratch.weights
        for i in 0..<n / 256 {
            let xs = x + 256 * i, block = y + format.typeSize * i
            var maxScale: Float = 0, maxMin: Float = 0
            for j in 0..<8 {
                let xb = xs + 32 * j
                var sumx2: Float = 0
                for l in 0..<32 { sumx2 += xb[l] * xb[l] }
                let avx = (sumx2 / 32).squareRoot()
                for l in 0..<32 { weights[l] = avx + abs(xb[l]) }
                scales[j] = GGMLSearch.affine(32, format.nmax, xb, weights, L + 32 * j, &mins[j], scratch.trialLevels,
                                              rmin: format.rmin, rdelta: format.rdelta, nstep: format.nstep, useMad: false)
                if scales[j] > maxScale { maxScale = scales[j] }
                if mins[j] > maxMin { maxMin = mins[j] }
            }
            let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
            let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
            // `uint8_t ls = nearest_int(…)` wraps before the MIN(63, ·), as in C.
            @inline(__always) func level(_ v: Float) -> UInt8 {
                Swift.min(63, UInt8(truncatingIfNeeded: GGMLSearch.nearestInt(v)))
            }
            packScalesMins({ level(invScale * scales[$0]) }, { level(invMin * mins[$0]) }, block)
            GGMLRounding.storeHalf(maxScale / 63, block, 0)
            GGMLRounding.storeHalf(maxMin / 63, block, 2)
            finishK45(xs, block, L, format)
        }
    }

    /// The weighted encoder of either format: weights `qw·√(σ² + x²)` with σ² twice the
    /// super-block's mean square, `make_qkx3_quants(32, nmax, …, −0.9, 0.05, 36)` per
    /// sub-block, then `make_qp_quants(8, 63, …)` for the scales and for the mins.
    private static func weightedK45(_ x: UnsafePointer<Float>, _ n: Int, _ importance: UnsafePointer<Float>,
                                    _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch, _ format: K45) {
        let L = scratch.levels, scales = scratch.scales, mins = scratch.mins, weights = scratch.weights
        let sw = scratch.sumWeights, Ls = scratch.scaleLevels, Lm = scratch.minLevels
        for i in 0..<n / 256 {
            let xs = x + 256 * i, block = y + format.typeSize * i
            var sumx2: Float = 0
            for l in 0..<256 { sumx2 += xs[l] * xs[l] }
            let sigma2 = 2 * sumx2 / 256
            for j in 0..<8 {
                let xb = xs + 32 * j, qw = importance + 256 * i + 32 * j
                for l in 0..<32 { weights[l] = qw[l] * (sigma2 + xb[l] * xb[l]).squareRoot() }
                var sum: Float = 0
                for l in 0..<32 { sum += weights[l] }
                sw[j] = sum
                scales[j] = GGMLSearch.affine(32, format.nmax, xb, weights, L + 32 * j, &mins[j], scratch.trialLevels,
                                              rmin: -0.9, rdelta: 0.05, nstep: 36, useMad: false)
            }
            let dBlock = GGMLSearch.positive(8, 63, scales, Ls, sw)
            let mBlock = GGMLSearch.positive(8, 63, mins, Lm, sw)
            // Q5_K clamps the levels to 63 here, Q4_K does not (make_qp_quants already did,
            // except for wrapped negative levels, which Q4_K then packs as they are).
            let clamp: UInt8 = format.nmax == 31 ? 63 : 255
            packScalesMins({ Swift.min(clamp, Ls[$0]) }, { Swift.min(clamp, Lm[$0]) }, block)
            GGMLRounding.storeHalf(dBlock, block, 0)
            GGMLRounding.storeHalf(mBlock, block, 2)
            finishK45(xs, block, L, format)
        }
    }

    /// Q4_K reference (144 bytes: `half d; half dmin; u8 scales[12]; u8 qs[128]`).
    static func q4_K(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        referenceK45(x, n, y, scratch, .q4)
    }

    /// Q4_K with importance (`quantize_row_q4_K_impl`).
    static func q4_KWeighted(_ x: UnsafePointer<Float>, _ n: Int, _ importance: UnsafePointer<Float>,
                             _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        weightedK45(x, n, importance, y, scratch, .q4)
    }

    /// Q5_K reference (176 bytes: `half d; half dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]`).
    static func q5_K(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        referenceK45(x, n, y, scratch, .q5)
    }

    /// Q5_K with importance (`quantize_row_q5_K_impl`).
    static func q5_KWeighted(_ x: UnsafePointer<Float>, _ n: Int, _ importance: UnsafePointer<Float>,
                             _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        weightedK45(x, n, importance, y, scratch, .q5)
    }
}
