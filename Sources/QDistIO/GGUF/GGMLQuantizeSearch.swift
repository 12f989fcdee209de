/// ggml's scale searches (ggml-quants.c `make_qx_quants`, `make_q3_quants`,
/// `make_qkx2_quants`/`make_qkx3_quants`, `make_qp_quants`; FORMATS.md §2.7).
///
/// Each picks a scale (and for the affine ones a min) for a small group of values by trying a
/// handful of candidate inverse scales around `nmax / max` and keeping the one with the lowest
/// weighted error. They are ported line by line — same loop order, same Float32 operation
/// order, same integer narrowing — because a one-ulp difference in a running sum flips which
/// candidate wins and changes every code in the group.
enum GGMLSearch {
    /// Below this group maximum ggml treats a group as all zeros (`GROUP_MAX_EPS`).
    static let groupMaxEps: Float = 1e-15

    /// ggml `nearest_int`: adds 1.5·2²³ so the FPU rounds to an integer (ties to even), then
    /// reads the integer back out of the mantissa bits. Exact for |x| ≤ 4194303; outside that
    /// ggml's assert is compiled out and the result is the same garbage in both languages.
    /// It lives in this file because debug builds optimize file by file: here the search loops,
    /// which call it thousands of times per super-block, get it inlined.
    @inline(__always)
    static func nearestInt(_ x: Float) -> Int32 {
        let v = x + 12582912
        return Int32(bitPattern: v.bitPattern & 0x007F_FFFF) &- 0x0040_0000
    }

    /// `make_qx_quants(n, nmax, x, L, rmse_type = 1, qw)`: symmetric levels `L[i] ∈ [0, 2·nmax)`
    /// (code + nmax) and the scale they multiply. Weights are `qw`, or `x²` when `qw` is nil.
    /// Only `rmse_type` 1 is ported: it is the one every encoder qdist writes uses.
    /// `trial` (n entries) holds a candidate's levels while it is scored.
    static func symmetric(_ n: Int, _ nmax: Int32, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<Int8>,
                          weights qw: UnsafePointer<Float>?, trial: UnsafeMutablePointer<Int8>) -> Float {
        var max: Float = 0, amax: Float = 0
        for i in 0..<n {
            let ax = abs(x[i])
            if ax > amax { amax = ax; max = x[i] }
        }
        if amax < groupMaxEps {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        @inline(__always) func weight(_ i: Int) -> Float {
            if let qw { return qw[i] }
            return x[i] * x[i]
        }
        @inline(__always) func level(_ iscale: Float, _ i: Int) -> Int32 {
            Swift.max(-nmax, Swift.min(nmax - 1, nearestInt(iscale * x[i])))
        }
        var iscale = Float(-nmax) / max
        var sumlx: Float = 0, suml2: Float = 0
        for i in 0..<n {
            let l = level(iscale, i)
            L[i] = Int8(truncatingIfNeeded: l + nmax)
            let w = weight(i), fl = Float(l)
            sumlx += w * x[i] * fl
            suml2 += w * fl * fl
        }
        var scale: Float = suml2 != 0 ? sumlx / suml2 : 0
        var best = scale * sumlx
        for step in -9...9 where step != 0 {
            iscale = -(Float(nmax) + 0.1 * Float(step)) / max
            for i in 0..<n { trial[i] = Int8(truncatingIfNeeded: level(iscale, i)) }  // vectorizes
            sumlx = 0
            suml2 = 0
            for i in 0..<n {
                let w = weight(i), fl = Float(trial[i])
                sumlx += w * x[i] * fl
                suml2 += w * fl * fl
            }
            if suml2 > 0 && sumlx * sumlx > best * suml2 {
                for i in 0..<n { L[i] = Int8(truncatingIfNeeded: nmax) &+ trial[i] }
                scale = sumlx / suml2
                best = scale * sumlx
            }
        }
        return scale
    }

    /// `make_q3_quants(n, nmax, x, L, do_rmse = true)` (Q3_K's reference encoder): start from
    /// `nmax / max`, then up to five passes of moving single levels while the `x²`-weighted fit
    /// improves. Levels come back as code + nmax, except an all-zero group's, which stay 0.
    static func symmetricRefined(_ n: Int, _ nmax: Int32, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<Int8>) -> Float {
        var max: Float = 0, amax: Float = 0
        for i in 0..<n {
            let ax = abs(x[i])
            if ax > amax { amax = ax; max = x[i] }
        }
        if amax < groupMaxEps {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        @inline(__always) func clamp(_ l: Int32) -> Int32 { Swift.max(-nmax, Swift.min(nmax - 1, l)) }
        let iscale = Float(-nmax) / max
        var sumlx: Float = 0, suml2: Float = 0
        for i in 0..<n {
            let l = clamp(nearestInt(iscale * x[i]))
            L[i] = Int8(truncatingIfNeeded: l)
            let w = x[i] * x[i], fl = Float(l)
            sumlx += w * x[i] * fl
            suml2 += w * fl * fl
        }
        for _ in 0..<5 {
            var changed = 0
            for i in 0..<n {
                let w = x[i] * x[i], old = Float(L[i])
                var slx = sumlx - w * x[i] * old
                guard slx > 0 else { continue }
                var sl2 = suml2 - w * old * old
                let newL = clamp(nearestInt(x[i] * sl2 / slx))
                guard newL != Int32(L[i]) else { continue }
                let fl = Float(newL)
                slx += w * x[i] * fl
                sl2 += w * fl * fl
                if sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                    L[i] = Int8(truncatingIfNeeded: newL)
                    sumlx = slx
                    suml2 = sl2
                    changed += 1
                }
            }
            if changed == 0 { break }
        }
        for i in 0..<n { L[i] = L[i] &+ Int8(truncatingIfNeeded: nmax) }
        return suml2 > 0 ? sumlx / suml2 : 0
    }

    /// `make_qkx2_quants` / `make_qkx3_quants` with explicit weights (the two are the same
    /// code when weights are given, which every caller does): affine levels `L[i] ∈ [0, nmax]`
    /// with `x ≈ scale·L + min`, `min ≤ 0`. Tries `nstep + 1` inverse scales
    /// `(rmin + rdelta·is + nmax)/(max − min)`, solving the weighted least squares for each,
    /// and keeps the lowest weighted squared (or absolute, `useMad`) error. Returns the scale;
    /// `theMin` receives `−min` (≥ 0), the value the block stores and subtracts.
    static func affine(_ n: Int, _ nmax: Int32, _ x: UnsafePointer<Float>, _ weights: UnsafePointer<Float>,
                       _ L: UnsafeMutablePointer<UInt8>, _ theMin: inout Float, _ Laux: UnsafeMutablePointer<UInt8>,
                       rmin: Float, rdelta: Float, nstep: Int, useMad: Bool) -> Float {
        var min = x[0], max = x[0]
        var sumW = weights[0]
        var sumX = sumW * x[0]
        for i in 1..<n {
            if x[i] < min { min = x[i] }
            if x[i] > max { max = x[i] }
            let w = weights[i]
            sumW += w
            sumX += w * x[i]
        }
        if min > 0 { min = 0 }
        if max == min {
            for i in 0..<n { L[i] = 0 }
            theMin = -min
            return 0
        }
        @inline(__always) func level(_ iscale: Float, _ i: Int, _ min: Float) -> Int32 {
            Swift.max(0, Swift.min(nmax, nearestInt(iscale * (x[i] - min))))
        }
        @inline(__always) func loss(_ diff: Float) -> Float { useMad ? abs(diff) : diff * diff }
        var iscale = Float(nmax) / (max - min)
        var scale = 1 / iscale
        var bestError: Float = 0
        for i in 0..<n {
            L[i] = UInt8(truncatingIfNeeded: level(iscale, i, min))
            let diff = scale * Float(L[i]) + min - x[i]
            bestError += weights[i] * loss(diff)
        }
        for step in 0...nstep {
            iscale = (rmin + rdelta * Float(step) + Float(nmax)) / (max - min)
            // Levels first, sums second: the first loop has no carried dependency and
            // vectorizes; the sums stay strictly sequential, in ggml's order.
            for i in 0..<n { Laux[i] = UInt8(truncatingIfNeeded: level(iscale, i, min)) }
            var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
            for i in 0..<n {
                let w = weights[i], fl = Float(Laux[i])
                sumL += w * fl
                sumL2 += w * fl * fl
                sumXL += w * fl * x[i]
            }
            let D = sumW * sumL2 - sumL * sumL
            guard D > 0 else { continue }
            var thisScale = (sumW * sumXL - sumX * sumL) / D
            var thisMin = (sumL2 * sumX - sumL * sumXL) / D
            if thisMin > 0 {
                thisMin = 0
                thisScale = sumXL / sumL2
            }
            var error: Float = 0
            for i in 0..<n {
                let diff = thisScale * Float(Laux[i]) + thisMin - x[i]
                error += weights[i] * loss(diff)
            }
            if error < bestError {
                for i in 0..<n { L[i] = Laux[i] }
                bestError = error
                scale = thisScale
                min = thisMin
            }
        }
        theMin = -min
        return scale
    }

    /// `make_qp_quants(n, nmax, x, L, quant_weights)`: levels `L[i] ∈ [0, nmax]` for
    /// non-negative values (the k-quants' sub-block scales and mins, weighted by each
    /// sub-block's total weight), a scale search over nine candidates, then up to five passes
    /// of single-level moves. `L` is `uint8_t` in ggml, so a negative level wraps; kept.
    static func positive(_ n: Int, _ nmax: Int32, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<UInt8>,
                         _ qw: UnsafePointer<Float>) -> Float {
        var max: Float = 0
        for i in 0..<n { max = max > x[i] ? max : x[i] }
        if max < groupMaxEps {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        var iscale = Float(nmax) / max
        for i in 0..<n { L[i] = UInt8(truncatingIfNeeded: nearestInt(iscale * x[i])) }
        let scale = 1 / iscale
        var bestMSE: Float = 0
        for i in 0..<n {
            let diff = x[i] - scale * Float(L[i])
            bestMSE += qw[i] * diff * diff
        }
        for step in -4...4 where step != 0 {
            let iscaleStep = (0.1 * Float(step) + Float(nmax)) / max
            let scaleStep = 1 / iscaleStep
            var mse: Float = 0
            for i in 0..<n {
                let l = Swift.min(nmax, nearestInt(iscaleStep * x[i]))
                let diff = x[i] - scaleStep * Float(l)
                mse += qw[i] * diff * diff
            }
            if mse < bestMSE {
                bestMSE = mse
                iscale = iscaleStep
            }
        }
        var sumlx: Float = 0, suml2: Float = 0
        for i in 0..<n {
            let l = Swift.min(nmax, nearestInt(iscale * x[i]))
            L[i] = UInt8(truncatingIfNeeded: l)
            let w = qw[i], fl = Float(l)
            sumlx += w * x[i] * fl
            suml2 += w * fl * fl
        }
        for _ in 0..<5 {
            var changed = 0
            for i in 0..<n {
                let w = qw[i], old = Float(L[i])
                var slx = sumlx - w * x[i] * old
                var sl2 = suml2 - w * old * old
                guard slx > 0 && sl2 > 0 else { continue }
                let newL = Swift.min(nmax, nearestInt(x[i] * sl2 / slx))
                guard newL != Int32(L[i]) else { continue }
                let fl = Float(newL)
                slx += w * x[i] * fl
                sl2 += w * fl * fl
                if slx * slx * suml2 > sumlx * sumlx * sl2 {
                    L[i] = UInt8(truncatingIfNeeded: newL)
                    sumlx = slx
                    suml2 = sl2
                    changed += 1
                }
            }
            if changed == 0 { break }
        }
        return suml2 > 0 ? sumlx / suml2 : 0
    }
}
