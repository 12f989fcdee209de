/// A per-row affine integer grid that one GPTQ column is rounded onto: `realCode` maps a weight to
/// its unrounded code, `value` maps an integer code back to a weight. The two grids qdist solves
/// on write these maps differently, and each must keep its own arithmetic to stay bit-exact with
/// its reference: the uniform grid of compressed-tensors/GPTQ (`x/s + z`, `(q − z)·s`, as torch
/// computes it) and ggml's block grids (`(x − b)·(1/a)`, `a·q + b`, as ggml dequantizes).
protocol AffineColumnGrid {
    func realCode(_ x: SIMD8<Float>, row r: Int) -> SIMD8<Float>
    func realCode(_ x: Float, row r: Int) -> Float
    func value(code: SIMD8<Float>, row r: Int) -> SIMD8<Float>
    func value(code: Float, row r: Int) -> Float
}

/// The shared inner step of GPTQ's column loop on an affine grid.
enum AffineColumnRounding {
    /// Rounds one column of `m` rows onto `grid`, eight rows at a time: codes (clamped to
    /// [codeMin, codeMax], half to even), values, and the scaled error `(x − q)/d`; returns
    /// `Σ err²`. Rounding adds and subtracts 1.5·2²³: exact half-to-even for |v| < 2²², which
    /// clamped codes always are; it equals `rounded(.toNearestOrEven)` but vectorizes without
    /// SSE4.1. Generic so each grid gets its own specialized loop.
    @inline(__always)
    static func round<G: AffineColumnGrid>(_ x: UnsafePointer<Float>, on grid: G, codeMin: Float, codeMax: Float, d: Float,
                                           code c: UnsafeMutablePointer<Float>, value q: UnsafeMutablePointer<Float>,
                                           error e: UnsafeMutablePointer<Float>, count m: Int) -> Float {
        typealias V = SIMD8<Float>
        let magic: Float = 12_582_912
        let lo = V(repeating: codeMin), hi = V(repeating: codeMax), mv = V(repeating: magic), dv = V(repeating: d)
        var acc = V()
        var r = 0
        while r + 8 <= m {
            let xv = UnsafeRawPointer(x + r).loadUnaligned(as: V.self)
            let cv = (grid.realCode(xv, row: r).clamped(lowerBound: lo, upperBound: hi) + mv) - mv
            let qv = grid.value(code: cv, row: r)
            let ev = (xv - qv) / dv
            UnsafeMutableRawPointer(c + r).storeBytes(of: cv, as: V.self)
            UnsafeMutableRawPointer(q + r).storeBytes(of: qv, as: V.self)
            UnsafeMutableRawPointer(e + r).storeBytes(of: ev, as: V.self)
            acc += ev * ev
            r += 8
        }
        var loss = acc.sum()
        while r < m {
            let cv = (min(max(grid.realCode(x[r], row: r), codeMin), codeMax) + magic) - magic
            c[r] = cv
            q[r] = grid.value(code: cv, row: r)
            e[r] = (x[r] - q[r]) / d
            loss += e[r] * e[r]
            r += 1
        }
        return loss
    }
}

/// compressed-tensors' uniform grid per row: code `x/s + z`, value `(q − z)·s` (division, as
/// torch does, so codes match a PyTorch reference bit for bit).
struct UniformColumnGrid: AffineColumnGrid {
    let scale: UnsafePointer<Float>, zero: UnsafePointer<Float>

    @inline(__always) func realCode(_ x: SIMD8<Float>, row r: Int) -> SIMD8<Float> {
        x / UnsafeRawPointer(scale + r).loadUnaligned(as: SIMD8<Float>.self) + UnsafeRawPointer(zero + r).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) func realCode(_ x: Float, row r: Int) -> Float { x / scale[r] + zero[r] }
    @inline(__always) func value(code: SIMD8<Float>, row r: Int) -> SIMD8<Float> {
        (code - UnsafeRawPointer(zero + r).loadUnaligned(as: SIMD8<Float>.self)) * UnsafeRawPointer(scale + r).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) func value(code: Float, row r: Int) -> Float { (code - zero[r]) * scale[r] }
}

/// ggml's block grid per row: code `(x − b)·(1/a)`, value `a·q + b` (ggml's dequantization); a
/// sub-block whose scale is 0 has inverse 0, so its code is 0 and its value b.
struct GGMLColumnGrid: AffineColumnGrid {
    let scale: UnsafePointer<Float>, offset: UnsafePointer<Float>, inverse: UnsafePointer<Float>

    @inline(__always) func realCode(_ x: SIMD8<Float>, row r: Int) -> SIMD8<Float> {
        (x - UnsafeRawPointer(offset + r).loadUnaligned(as: SIMD8<Float>.self)) * UnsafeRawPointer(inverse + r).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) func realCode(_ x: Float, row r: Int) -> Float { (x - offset[r]) * inverse[r] }
    @inline(__always) func value(code: SIMD8<Float>, row r: Int) -> SIMD8<Float> {
        UnsafeRawPointer(scale + r).loadUnaligned(as: SIMD8<Float>.self) * code + UnsafeRawPointer(offset + r).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) func value(code: Float, row r: Int) -> Float { scale[r] * code + offset[r] }
}
