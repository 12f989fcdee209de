/// Encoders of the k-quants with sixteen 16-element sub-blocks: Q2_K, Q3_K and Q6_K
/// (ggml-quants.c `quantize_row_q2_K_ref`/`_impl`, `q3_K`, `q6_K`; FORMATS.md §2.3, §2.7).
///
/// Each super-block of 256 values is encoded in three steps, as in ggml: fit a scale (and for
/// Q2_K a min) per sub-block with a search from GGMLQuantizeSearch.swift, quantize those
/// sub-block scales against one fp16 super-scale, then requantize every value against the
/// *rounded* scales it will be decoded with. A sub-block whose rounded scale is zero keeps the
/// levels of the first step (ggml's `if (!d) continue;`), which only matters for the bytes.
extension GGMLQuantize {
    /// The 2-bit packing Q2_K and Q3_K share: byte `l` of each 32-byte group holds elements
    /// `l`, `l + 32`, `l + 64`, `l + 96` of its 128 in bits 0-1, 2-3, 4-5, 6-7.
    @inline(__always)
    private static func packTwoBit(_ L: (Int) -> UInt8, _ qs: UnsafeMutableRawPointer) {
        for j in stride(from: 0, to: 256, by: 128) {
            for l in 0..<32 {
                let byte = L(j + l) | (L(j + l + 32) << 2) | (L(j + l + 64) << 4) | (L(j + l + 96) << 6)
                qs.storeBytes(of: byte, toByteOffset: j / 4 + l, as: UInt8.self)
            }
        }
    }

    // MARK: Q2_K (84 bytes: `u8 scales[16]; u8 qs[64]; half d; half dmin`)

    /// Requantizes Q2_K's levels against the stored (fp16) scales and packs the block.
    private static func finishQ2_K(_ x: UnsafePointer<Float>, _ block: UnsafeMutableRawPointer, _ L: UnsafeMutablePointer<UInt8>) {
        let dAll = GGMLDequantize.half(block, 80), dminAll = GGMLDequantize.half(block, 82)
        for j in 0..<16 {
            let sc = block.load(fromByteOffset: j, as: UInt8.self)
            let dl = dAll * Float(sc & 0x0F)
            if dl == 0 { continue }
            let dm = dminAll * Float(sc >> 4)
            for ii in 0..<16 {
                let l = GGMLSearch.nearestInt((x[16 * j + ii] + dm) / dl)
                L[16 * j + ii] = UInt8(truncatingIfNeeded: Swift.max(0, Swift.min(3, l)))
            }
        }
        packTwoBit({ L[$0] }, block + 16)
    }

    /// Q2_K reference: `make_qkx2_quants(16, 3, |x|-weighted, −0.5, 0.1, 15, mad)` per
    /// sub-block, then 4-bit scales and mins against `max/15`.
    static func q2_K(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        let L = scratch.levels, scales = scratch.scales, mins = scratch.mins, weights = scratch.weights
        for i in 0..<n / 256 {
            let xs = x + 256 * i, block = y + 84 * i
            var maxScale: Float = 0, maxMin: Float = 0
            for j in 0..<16 {
                for l in 0..<16 { weights[l] = abs(xs[16 * j + l]) }
                scales[j] = GGMLSearch.affine(16, 3, xs + 16 * j, weights, L + 16 * j, &mins[j], scratch.trialLevels,
                                              rmin: -0.5, rdelta: 0.1, nstep: 15, useMad: true)
                if scales[j] > maxScale { maxScale = scales[j] }
                if mins[j] > maxMin { maxMin = mins[j] }
            }
            if maxScale > 0 {
                let iscale = 15 / maxScale
                for j in 0..<16 {
                    block.storeBytes(of: UInt8(truncatingIfNeeded: GGMLSearch.nearestInt(iscale * scales[j])), toByteOffset: j, as: UInt8.self)
                }
                GGMLRounding.storeHalf(maxScale / 15, block, 80)
            } else {
                for j in 0..<16 { block.storeBytes(of: 0, toByteOffset: j, as: UInt8.self) }
                GGMLRounding.storeHalf(0, block, 80)
            }
            if maxMin > 0 {
                let iscale = 15 / maxMin
                for j in 0..<16 {
                    let high = UInt8(truncatingIfNeeded: GGMLSearch.nearestInt(iscale * mins[j]) << 4)
                    block.storeBytes(of: block.load(fromByteOffset: j, as: UInt8.self) | high, toByteOffset: j, as: UInt8.self)
                }
                GGMLRounding.storeHalf(maxMin / 15, block, 82)
            } else {
                GGMLRounding.storeHalf(0, block, 82)
            }
            finishQ2_K(xs, block, L)
        }
    }

    /// Q2_K with importance: `make_qkx3_quants(16, 3, …, −0.9, 0.05, 36)` per sub-block with
    /// weights `qw·√(σ² + x²)` (σ² = the super-block's mean square), then the sixteen scales
    /// and mins each through `make_qp_quants(16, 15, …)` weighted by the sub-block weight sums.
    static func q2_KWeighted(_ x: UnsafePointer<Float>, _ n: Int, _ importance: UnsafePointer<Float>,
                             _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        let L = scratch.levels, scales = scratch.scales, mins = scratch.mins, weights = scratch.weights
        let sw = scratch.sumWeights, Ls = scratch.scaleLevels, Lm = scratch.minLevels
        for i in 0..<n / 256 {
            let xs = x + 256 * i, block = y + 84 * i
            var sumx2: Float = 0
            for j in 0..<256 { sumx2 += xs[j] * xs[j] }
            let sigma2 = sumx2 / 256
            for j in 0..<16 {
                let qw = importance + 256 * i + 16 * j
                for l in 0..<16 { weights[l] = qw[l] * (sigma2 + xs[16 * j + l] * xs[16 * j + l]).squareRoot() }
                var sum: Float = 0
                for l in 0..<16 { sum += weights[l] }
                sw[j] = sum
                scales[j] = GGMLSearch.affine(16, 3, xs + 16 * j, weights, L + 16 * j, &mins[j], scratch.trialLevels,
                                              rmin: -0.9, rdelta: 0.05, nstep: 36, useMad: false)
            }
            let dm = GGMLSearch.positive(16, 15, scales, Ls, sw)
            let mm = GGMLSearch.positive(16, 15, mins, Lm, sw)
            GGMLRounding.storeHalf(dm, block, 80)
            GGMLRounding.storeHalf(mm, block, 82)
            for j in 0..<16 { block.storeBytes(of: Ls[j] | (Lm[j] << 4), toByteOffset: j, as: UInt8.self) }
            finishQ2_K(xs, block, L)
        }
    }

    // MARK: Q3_K (110 bytes: `u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d`)

    /// Packs sixteen 6-bit scale levels (0…63, stored biased by 32) the way Q3_K does: low
    /// nibbles in bytes 0-7, high two bits in bytes 8-11.
    private static func packQ3_KScales(_ level: (Int) -> Int32, _ block: UnsafeMutableRawPointer) {
        let s = block + 96
        for k in 0..<12 { s.storeBytes(of: 0, toByteOffset: k, as: UInt8.self) }
        @inline(__always) func or(_ k: Int, _ bits: Int32) {
            s.storeBytes(of: s.load(fromByteOffset: k, as: UInt8.self) | UInt8(truncatingIfNeeded: bits), toByteOffset: k, as: UInt8.self)
        }
        for j in 0..<16 {
            var l = level(j)
            if j < 8 { or(j, l & 0x0F) } else { or(j - 8, (l & 0x0F) << 4) }
            l >>= 4
            or(j % 4 + 8, l << (2 * (j / 4)))
        }
    }

    /// Requantizes Q3_K's levels against the stored scales, then writes `hmask` and `qs`.
    private static func finishQ3_K(_ x: UnsafePointer<Float>, _ block: UnsafeMutableRawPointer, _ L: UnsafeMutablePointer<Int8>) {
        let s = block + 96
        let dAll = GGMLDequantize.half(block, 108)
        for j in 0..<16 {
            let low = j < 8 ? s.load(fromByteOffset: j, as: UInt8.self) & 0x0F : s.load(fromByteOffset: j - 8, as: UInt8.self) >> 4
            let high = (s.load(fromByteOffset: 8 + j % 4, as: UInt8.self) >> UInt8(2 * (j / 4))) & 3
            let sc = Int8(bitPattern: low | (high << 4)) - 32
            let d = dAll * Float(sc)
            if d == 0 { continue }
            for ii in 0..<16 {
                let l = Swift.max(-4, Swift.min(3, GGMLSearch.nearestInt(x[16 * j + ii] / d)))
                L[16 * j + ii] = Int8(truncatingIfNeeded: l + 4)
            }
        }
        for m in 0..<32 { block.storeBytes(of: 0, toByteOffset: m, as: UInt8.self) }
        var m = 0
        var hm: UInt8 = 1
        for j in 0..<256 {
            if L[j] > 3 {
                block.storeBytes(of: block.load(fromByteOffset: m, as: UInt8.self) | hm, toByteOffset: m, as: UInt8.self)
                L[j] -= 4
            }
            m += 1
            if m == 32 {
                m = 0
                hm <<= 1
            }
        }
        packTwoBit({ UInt8(bitPattern: L[$0]) }, block + 32)
    }

    /// Q3_K reference: `make_q3_quants(16, 4, x, L, true)` per sub-block, then signed 6-bit
    /// scales against the scale of largest magnitude: `iscale = −32/max_scale`.
    static func q3_K(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        let L = scratch.signedLevels, scales = scratch.scales
        for i in 0..<n / 256 {
            let xs = x + 256 * i, block = y + 110 * i
            var maxScale: Float = 0, amax: Float = 0
            for j in 0..<16 {
                scales[j] = GGMLSearch.symmetricRefined(16, 4, xs + 16 * j, L + 16 * j)
                let scale = abs(scales[j])
                if scale > amax {
                    amax = scale
                    maxScale = scales[j]
                }
            }
            if maxScale != 0 {
                let iscale = -32 / maxScale
                packQ3_KScales({ j in
                    let l = Int8(truncatingIfNeeded: GGMLSearch.nearestInt(iscale * scales[j]))
                    return Int32(Swift.max(-32, Swift.min(31, l)) + 32)
                }, block)
                GGMLRounding.storeHalf(1 / iscale, block, 108)
            } else {
                packQ3_KScales({ _ in 0 }, block)
                GGMLRounding.storeHalf(0, block, 108)
            }
            finishQ3_K(xs, block, L)
        }
    }

    /// Q3_K with importance: `make_qx_quants(16, 4, …)` per sub-block with weights
    /// `qw·√(σ² + x²)` (σ² = twice the super-block's mean square), then the sixteen signed
    /// scales through `make_qx_quants(16, 32, …)` weighted by the sub-block weight sums.
    static func q3_KWeighted(_ x: UnsafePointer<Float>, _ n: Int, _ importance: UnsafePointer<Float>,
                             _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        let L = scratch.signedLevels, scales = scratch.scales, weights = scratch.weights
        let sw = scratch.sumWeights, Ls = scratch.signedScaleLevels
        for i in 0..<n / 256 {
            let xs = x + 256 * i, block = y + 110 * i
            var sumx2: Float = 0
            for j in 0..<256 { sumx2 += xs[j] * xs[j] }
            let sigma2 = 2 * sumx2 / 256
            for j in 0..<16 {
                let qw = importance + 256 * i + 16 * j
                for l in 0..<16 { weights[l] = qw[l] * (sigma2 + xs[16 * j + l] * xs[16 * j + l]).squareRoot() }
                var sum: Float = 0
                for l in 0..<16 { sum += weights[l] }
                sw[j] = sum
                scales[j] = GGMLSearch.symmetric(16, 4, xs + 16 * j, L + 16 * j, weights: weights, trial: scratch.signedTrialLevels)
            }
            let dBlock = GGMLSearch.symmetric(16, 32, scales, Ls, weights: sw, trial: scratch.signedTrialLevels)
            packQ3_KScales({ Int32(Ls[$0]) }, block)
            GGMLRounding.storeHalf(dBlock, block, 108)
            finishQ3_K(xs, block, L)
        }
    }

    // MARK: Q6_K (210 bytes: `u8 ql[128]; u8 qh[64]; i8 scales[16]; half d`)

    /// Q6_K, reference (`importance` nil: `x²` weights) and weighted (the importance as the
    /// weights directly, as ggml does): `make_qx_quants(16, 32, …)` per sub-block, then signed
    /// 8-bit scales against `iscale = −128/max_scale`.
    private static func q6_K(_ x: UnsafePointer<Float>, _ n: Int, _ importance: UnsafePointer<Float>?,
                             _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        let L = scratch.signedLevels, scales = scratch.scales
        for i in 0..<n / 256 {
            let xs = x + 256 * i, block = y + 210 * i
            var maxScale: Float = 0, maxAbsScale: Float = 0
            for ib in 0..<16 {
                let weights = importance.map { $0 + 256 * i + 16 * ib }
                let scale = GGMLSearch.symmetric(16, 32, xs + 16 * ib, L + 16 * ib, weights: weights, trial: scratch.signedTrialLevels)
                scales[ib] = scale
                if abs(scale) > maxAbsScale {
                    maxAbsScale = abs(scale)
                    maxScale = scale
                }
            }
            if maxAbsScale < GGMLSearch.groupMaxEps {
                block.initializeMemory(as: UInt8.self, repeating: 0, count: 210)
                continue
            }
            let iscale = -128 / maxScale
            GGMLRounding.storeHalf(1 / iscale, block, 208)
            for ib in 0..<16 {
                let sc = Int8(truncatingIfNeeded: Swift.min(127, GGMLSearch.nearestInt(iscale * scales[ib])))
                block.storeBytes(of: sc, toByteOffset: 192 + ib, as: Int8.self)
            }
            let dAll = GGMLDequantize.half(block, 208)
            for j in 0..<16 {
                let d = dAll * Float(block.load(fromByteOffset: 192 + j, as: Int8.self))
                if d == 0 { continue }
                for ii in 0..<16 {
                    let l = Swift.max(-32, Swift.min(31, GGMLSearch.nearestInt(xs[16 * j + ii] / d)))
                    L[16 * j + ii] = Int8(truncatingIfNeeded: l + 32)
                }
            }
            for j in stride(from: 0, to: 256, by: 128) {
                let ql = block + j / 2, qh = block + 128 + j / 4
                for l in 0..<32 {
                    let l1 = UInt8(bitPattern: L[j + l]), l2 = UInt8(bitPattern: L[j + l + 32])
                    let l3 = UInt8(bitPattern: L[j + l + 64]), l4 = UInt8(bitPattern: L[j + l + 96])
                    ql.storeBytes(of: (l1 & 0x0F) | ((l3 & 0x0F) << 4), toByteOffset: l, as: UInt8.self)
                    ql.storeBytes(of: (l2 & 0x0F) | ((l4 & 0x0F) << 4), toByteOffset: l + 32, as: UInt8.self)
                    let high = (l1 >> 4) | ((l2 >> 4) << 2) | ((l3 >> 4) << 4) | ((l4 >> 4) << 6)
                    qh.storeBytes(of: high, toByteOffset: l, as: UInt8.self)
                }
            }
        }
    }

    /// Q6_K reference (`quantize_row_q6_K_ref`).
    static func q6_KReference(_ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        q6_K(x, n, nil, y, scratch)
    }

    /// Q6_K with importance (`quantize_row_q6_K_impl`).
    static func q6_KWeighted(_ x: UnsafePointer<Float>, _ n: Int, _ importance: UnsafePointer<Float>,
                             _ y: UnsafeMutableRawPointer, _ scratch: GGMLQuantizeScratch) {
        q6_K(x, n, importance, y, scratch)
    }
}
