// A loop-by-loop float64 port of IST-DASLab/gptq `GPTQ.fasterquant` (gptq.py, commit 2d65066)
// with the compressed-tensors grid (quantization/utils/helpers.py `calculate_qparams`,
// lifecycle/forward.py `_quantize`). No BLAS, no LAPACK, no shared code with the solver under
// test: plain nested loops over [Double], so it is an independent oracle.

/// The reference's settings, spelled independently of `QuantizationArgs`.
struct ReferenceGPTQSettings {
    enum Strategy { case tensor, channel, group(Int) }
    enum ActOrder { case none, weight, group }  // weight = compressed-tensors "static"
    var bits = 4
    var symmetric = true
    var strategy = Strategy.group(64)
    var actOrder = ActOrder.none
    var staticGroups = false
    var blockSize = 128
    var percdamp = 0.01
    /// llm-compressor ≤ 0.12's sparsity-preserving GPTQ: updates multiplied by W ≠ 0 (taken after
    /// the dead columns are zeroed, before any update).
    var preserveZeros = false
    /// SparseGPT in the same pass (IST-DASLab sparsegpt `fasterprune` with a quantizer, masks
    /// chosen with llm-compressor's timing): unstructured `sparsity` per block slab at the block's
    /// start, or N:M (`n` of every `m`) at block-local multiples of M; a pruned weight is
    /// quantized as 0. `m == 0` is unstructured.
    var prune: (sparsity: Double, n: Int, m: Int)? = nil
}

struct ReferenceGPTQResult {
    var codes: [[Int]]  // (rows, columns), original column order
    var q: [[Double]]
    var loss: Double
    var gIdx: [Int]
}

enum ReferenceGPTQ {
    static func run(w w0: [[Double]], h h0: [[Double]], _ s: ReferenceGPTQSettings) -> ReferenceGPTQResult {
        let rows = w0.count, n = w0[0].count
        let qmin = -Double(1 << (s.bits - 1)), qmax = Double(1 << (s.bits - 1)) - 1
        let eps = Double(Float.ulpOfOne)

        // calculate_qparams over each row of a column slice.
        func findParams(_ w: [[Double]], _ cols: Range<Int>) -> [(scale: Double, zero: Double)] {
            (0..<rows).map { r in
                var lo = 0.0, hi = 0.0
                for c in cols { lo = min(lo, w[r][c]); hi = max(hi, w[r][c]) }
                if s.symmetric {
                    return (max(max(-lo, hi) / ((qmax - qmin) / 2), eps), 0)
                }
                let scale = max((hi - lo) / (qmax - qmin), eps)
                return (scale, min(max(qmin - lo / scale, qmin), qmax).rounded(.toNearestOrEven))
            }
        }
        func quantize(_ x: Double, _ p: (scale: Double, zero: Double)) -> (code: Double, value: Double) {
            let code = min(max(x / p.scale + p.zero, qmin), qmax).rounded(.toNearestOrEven)
            return (code, (code - p.zero) * p.scale)
        }

        var w = w0, h = h0
        var gs = n
        var params: [(scale: Double, zero: Double)]
        switch s.strategy {
        case .tensor:
            let whole = tensorParams(w.flatMap { $0 }, symmetric: s.symmetric, qmin: qmin, qmax: qmax, eps: eps)
            params = Array(repeating: whole, count: rows)
        case .channel: params = findParams(w, 0..<n)
        case .group(let g): gs = g; params = findParams(w, 0..<n)
        }
        let grouped: Bool = { if case .group = s.strategy { return true } else { return false } }()

        for i in 0..<n where h[i][i] == 0 {
            h[i][i] = 1
            for r in 0..<rows { w[r][i] = 0 }
        }
        let useStatic = grouped && (s.staticGroups || s.actOrder == .weight)
        var groups: [[(scale: Double, zero: Double)]] = []
        if useStatic && s.actOrder != .group {
            for g in stride(from: 0, to: n, by: gs) { groups.append(findParams(w, g..<min(g + gs, n))) }
        }
        var keep = w.map { row in row.map { s.preserveZeros && $0 == 0 ? 0.0 : 1.0 } }
        var perm = Array(0..<n)
        if s.actOrder != .none {
            perm.sort { h[$0][$0] > h[$1][$1] || (h[$0][$0] == h[$1][$1] && $0 < $1) }
            w = w.map { row in perm.map { row[$0] } }
            keep = keep.map { row in perm.map { row[$0] } }
            h = perm.map { i in perm.map { j in h[i][j] } }
        }
        if useStatic && s.actOrder == .group {
            for g in stride(from: 0, to: n, by: gs) { groups.append(findParams(w, g..<min(g + gs, n))) }
        }

        var mean = 0.0
        for i in 0..<n { mean += h[i][i] }
        let damp = s.percdamp * mean / Double(n)
        for i in 0..<n { h[i][i] += damp }
        let l = cholesky(h)
        let hinvFull = choleskyInverse(l)
        let u = transpose(cholesky(hinvFull))  // torch.linalg.cholesky(·, upper=True)

        var qOut = Array(repeating: Array(repeating: 0.0, count: n), count: rows)
        var codes = qOut
        var loss = 0.0
        for i1 in stride(from: 0, to: n, by: s.blockSize) {
            let i2 = min(i1 + s.blockSize, n), count = i2 - i1
            var w1 = w.map { Array($0[i1..<i2]) }
            var err1 = Array(repeating: Array(repeating: 0.0, count: count), count: rows)
            var mask = Array(repeating: Array(repeating: false, count: count), count: rows)
            func score(_ r: Int, _ i: Int) -> Double { w1[r][i] * w1[r][i] / (u[i1 + i][i1 + i] * u[i1 + i][i1 + i]) }
            if let p = s.prune, p.m == 0 {
                let sorted = (0..<rows).flatMap { r in (0..<count).map { score(r, $0) } }.sorted()
                let threshold = sorted[min(Int(Double(sorted.count) * p.sparsity), sorted.count - 1)]
                for r in 0..<rows { for i in 0..<count where score(r, i) <= threshold { mask[r][i] = true } }
            }
            for i in 0..<count {
                if let p = s.prune, p.m > 0, i % p.m == 0 {
                    for r in 0..<rows {
                        let ranked = (i..<min(i + p.m, count)).sorted { (score(r, $0), $0) < (score(r, $1), $1) }
                        for c in ranked.prefix(p.n) { mask[r][c] = true }
                    }
                }
                if grouped {
                    if !useStatic {
                        if (i1 + i) % gs == 0 { params = findParams(w, (i1 + i)..<min(i1 + i + gs, n)) }
                    } else {
                        var idx = i1 + i
                        if s.actOrder == .weight { idx = perm[idx] }
                        params = groups[idx / gs]
                    }
                }
                let d = u[i1 + i][i1 + i]
                for r in 0..<rows {
                    let x = w1[r][i]
                    let (code, q) = quantize(mask[r][i] ? 0 : x, params[r])
                    codes[r][i1 + i] = code
                    qOut[r][i1 + i] = q
                    loss += (x - q) * (x - q) / (d * d) / 2
                    let e = (x - q) / d
                    for j in i..<count { w1[r][j] -= e * u[i1 + i][i1 + j] * keep[r][i1 + j] }
                    err1[r][i] = e
                }
            }
            for r in 0..<rows {
                for c in i2..<n {
                    var acc = 0.0
                    for i in 0..<count { acc += err1[r][i] * u[i1 + i][c] }
                    w[r][c] -= acc * keep[r][c]
                }
            }
        }
        var gIdx = (0..<n).map { grouped ? $0 / gs : 0 }
        if s.actOrder == .group { for k in 0..<n { gIdx[perm[k]] = k / gs } }
        var outCodes = Array(repeating: Array(repeating: 0, count: n), count: rows)
        var outQ = qOut
        for r in 0..<rows {
            for k in 0..<n {
                outCodes[r][perm[k]] = Int(codes[r][k])
                outQ[r][perm[k]] = qOut[r][k]
            }
        }
        return ReferenceGPTQResult(codes: outCodes, q: outQ, loss: loss, gIdx: gIdx)
    }

    private static func tensorParams(_ v: [Double], symmetric: Bool, qmin: Double, qmax: Double,
                                     eps: Double) -> (scale: Double, zero: Double) {
        var lo = 0.0, hi = 0.0
        for x in v { lo = min(lo, x); hi = max(hi, x) }
        if symmetric { return (max(max(-lo, hi) / ((qmax - qmin) / 2), eps), 0) }
        let scale = max((hi - lo) / (qmax - qmin), eps)
        return (scale, min(max(qmin - lo / scale, qmin), qmax).rounded(.toNearestOrEven))
    }

    /// Lower Cholesky factor, textbook loops (traps if not positive definite).
    static func cholesky(_ a: [[Double]]) -> [[Double]] {
        let n = a.count
        var l = Array(repeating: Array(repeating: 0.0, count: n), count: n)
        for j in 0..<n {
            var s = a[j][j]
            for k in 0..<j { s -= l[j][k] * l[j][k] }
            precondition(s > 0, "reference Cholesky: not positive definite at \(j)")
            l[j][j] = s.squareRoot()
            for i in (j + 1)..<max(n, j + 1) {
                var t = a[i][j]
                for k in 0..<j { t -= l[i][k] * l[j][k] }
                l[i][j] = t / l[j][j]
            }
        }
        return l
    }

    /// torch.cholesky_inverse: (L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹ from the lower factor.
    static func choleskyInverse(_ l: [[Double]]) -> [[Double]] {
        let n = l.count
        var inv = Array(repeating: Array(repeating: 0.0, count: n), count: n)  // L⁻¹, lower
        for j in 0..<n {
            inv[j][j] = 1 / l[j][j]
            for i in (j + 1)..<max(n, j + 1) {
                var s = 0.0
                for k in j..<i { s += l[i][k] * inv[k][j] }
                inv[i][j] = -s / l[i][i]
            }
        }
        var out = Array(repeating: Array(repeating: 0.0, count: n), count: n)
        for i in 0..<n {
            for j in 0...i {
                var s = 0.0
                for k in i..<n { s += inv[k][i] * inv[k][j] }
                out[i][j] = s
                out[j][i] = s
            }
        }
        return out
    }

    static func transpose(_ a: [[Double]]) -> [[Double]] {
        (0..<a[0].count).map { j in a.map { $0[j] } }
    }
}
