import QDistTensor

/// Which group each processed column uses and where its parameters come from: the bookkeeping
/// of act-order and groups, separated from the arithmetic.
///
/// Parameters are kept transposed, `(groups, rows)`, so the column loop reads one contiguous
/// scale vector per column. Group numbers are in group-creation order: original order unless
/// `actorder == .group`, where group g holds processing positions `g·gs ..< (g+1)·gs`.
struct GPTQPlan {
    let args: QuantizationArgs
    let rows: Int
    let columns: Int
    let groupSize: Int
    let groupCount: Int
    let groupParameters: GPTQSolver.GroupParameters
    /// order[k] = original column processed at position k.
    var order: [Int]
    /// (groupCount, rows) scales and zero points.
    var scalesT: [Float]
    var zerosT: [Float]

    init(args: QuantizationArgs, rows: Int, columns: Int, groupParameters: GPTQSolver.GroupParameters) {
        self.args = args
        self.rows = rows
        self.columns = columns
        groupSize = args.effectiveGroupSize(inFeatures: columns)
        groupCount = args.strategy == .group ? (columns + groupSize - 1) / groupSize : 1
        self.groupParameters = groupParameters
        order = Array(0..<columns)
        scalesT = [Float](repeating: 1, count: groupCount * rows)
        zerosT = [Float](repeating: 0, count: groupCount * rows)
    }

    /// True when no parameters are computed inside the column loop.
    var usesStaticParameters: Bool {
        args.strategy != .group || groupParameters == .static || args.actorder == .static
    }

    /// Takes parameters computed before the loop (tensor: broadcast to every row).
    mutating func setUpfront(_ p: QuantizationParameters) {
        for g in 0..<groupCount {
            for r in 0..<rows {
                let i = p.index(row: r, group: g)
                scalesT[g * rows + r] = p.scales[i]
                zerosT[g * rows + r] = p.zeroPoints[i]
            }
        }
    }

    /// The group of the column processed at position `k`.
    @inline(__always)
    func group(atPosition k: Int) -> Int {
        guard args.strategy == .group else { return 0 }
        return args.actorder == .static ? order[k] / groupSize : k / groupSize
    }

    /// g_idx: original column → group.
    func groupIndex() -> [Int32] {
        guard args.strategy == .group else { return [Int32](repeating: 0, count: columns) }
        var g = [Int32](repeating: 0, count: columns)
        for k in 0..<columns {
            g[order[k]] = Int32(args.actorder == .group ? k / groupSize : order[k] / groupSize)
        }
        return g
    }

    /// The parameters in compressed-tensors layout ([1], [rows, 1] or [rows, groups]).
    func parameters() -> QuantizationParameters {
        var p = QuantizationParameters(strategy: args.strategy, rows: rows, columns: columns, groupSize: groupSize)
        for r in 0..<(args.strategy == .tensor ? 1 : rows) {
            for g in 0..<groupCount {
                p.scales[p.index(row: r, group: g)] = scalesT[g * rows + r]
                p.zeroPoints[p.index(row: r, group: g)] = zerosT[g * rows + r]
            }
        }
        return p
    }
}

/// Quantizes one column of GPTQ's loop on a grid fixed before the loop: for every row r, the
/// code `code[r]`, its value `value[r]` and the scaled error `error[r] = (x[r] − value[r])/d`;
/// returns Σ error². `column` is the original column index (groups follow it under act-order).
protocol GPTQColumnQuantizer: AnyObject {
    /// Called before the column at processing `position` (original index `column`) is quantized;
    /// `current(p)` is the column at position p as it stands (all rows), for a grid that sets its
    /// parameters from the updated weights. At a 16-column boundary every later column is current.
    func willQuantize(position: Int, column: Int, current: (Int) -> UnsafePointer<Float>)
    func quantize(column: Int, _ x: UnsafePointer<Float>, d: Float, code: UnsafeMutablePointer<Float>,
                  value: UnsafeMutablePointer<Float>, error: UnsafeMutablePointer<Float>, rows: Int) -> Float
}

/// The blocked column loop of `fasterquant`, on the weight held transposed — `wt` is
/// (columns, rows) in processing order — so a column is a contiguous vector: quantizing it, its
/// error, and each in-block rank-1 update are unit-stride SIMD loops, and the lazy update of the
/// remaining columns is one sgemm per block: `Wᵀ[i2:, :] −= U[i1:i2, i2:]ᵀ · Errᵀ`.
enum GPTQColumnLoop {
    /// Columns per in-block sub-block: rank-1 updates inside it, an sgemm after it. Changes only
    /// the summation order of the in-block updates, not which values they use.
    static let subBlockSize = 16

    struct Output {
        var weight: QuantizedWeight
        var dequantized: Tensor
        var loss: Double
    }

    /// `keep` (row-major, 1 or 0), when given, masks every update: a weight marked 0 is never
    /// moved, so an exact zero (a pruned weight) stays zero and quantizes to the grid's zero.
    /// `prune`, when given, prunes in the same pass (SparseGPT's masks, chosen as `SparseGPT`
    /// chooses them: unstructured at each block's start from the slab's scores, N:M at each
    /// block-local multiple of M from the in-block-updated weights); a pruned weight is quantized
    /// as 0 (the grid's zero point) and its whole value is the error spread to later columns.
    /// Processing must be in column order (no act-order) then.
    /// `columnQuantizer`, when given, replaces the plan's grid for every column (a grid whose
    /// parameters were fixed before the loop, e.g. a ggml block type's); the plan must then be
    /// static, and the result's codes are that quantizer's integer codes (its parameters are not
    /// in the returned `QuantizedWeight`).
    static func run(weight w: Tensor, order: [Int], hinvUpper u: Tensor, plan initialPlan: GPTQPlan,
                    grid: QuantizationGrid, observer: any WeightRangeObserver, blockSize: Int, keep: [Float]? = nil,
                    prune: SparseGPT.Settings? = nil, columnQuantizer: (any GPTQColumnQuantizer)? = nil) -> Output {
        var plan = initialPlan
        let m = w.rows, n = w.columns
        // wt: (n, m), W transposed in processing order. After column k is quantized its row holds
        // q (the dequantized values): nothing reads that row as weights again.
        let wt = UnsafeMutablePointer<Float>.allocate(capacity: n * m)
        let codeT = UnsafeMutablePointer<Float>.allocate(capacity: n * m)
        let w1 = UnsafeMutablePointer<Float>.allocate(capacity: blockSize * m)  // the block, in-block-updated
        let errT = UnsafeMutablePointer<Float>.allocate(capacity: blockSize * m)  // (w − q)/d per column
        defer { wt.deallocate(); codeT.deallocate(); w1.deallocate(); errT.deallocate() }
        w.withUnsafeBufferPointer { src in
            order.withUnsafeBufferPointer { gatherTransposed(src.baseAddress!, rows: m, columns: n, order: $0.baseAddress!, into: wt) }
        }
        // The update mask in the same layout as wt (nil: every weight moves).
        let keepT: UnsafeMutablePointer<Float>? = keep.map { k in
            let t = UnsafeMutablePointer<Float>.allocate(capacity: n * m)
            k.withUnsafeBufferPointer { src in
                order.withUnsafeBufferPointer { gatherTransposed(src.baseAddress!, rows: m, columns: n, order: $0.baseAddress!, into: t) }
            }
            return t
        }
        defer { keepT?.deallocate() }
        /// Columns [k0, k0 + columns) of a (·, m) column-major buffer starting at `x` masked.
        func masked(_ x: UnsafeMutablePointer<Float>, fromColumn k0: Int, columns: Int) {
            guard let keepT else { return }
            let k = keepT + k0 * m
            for i in 0..<(columns * m) { x[i] *= k[i] }
        }
        var loss = 0.0
        let dynamic = !plan.usesStaticParameters
        let subBlock = min(subBlockSize, blockSize)
        let isInt = grid.args.type == .int

        u.withUnsafeBufferPointer { ub in
            let up = ub.baseAddress!
            for i1 in stride(from: 0, to: n, by: blockSize) {
                let i2 = min(i1 + blockSize, n), count = i2 - i1
                w1.update(from: wt + i1 * m, count: count * m)
                // Joint pruning: the block's mask, (count, m) like w1.
                var pruneMask = [Bool](repeating: false, count: prune == nil ? 0 : count * m)
                func score(_ i: Int, _ r: Int) -> Float {
                    let d = up[(i1 + i) * n + i1 + i], x = w1[i * m + r]
                    return x * x / (d * d)
                }
                if let p = prune, p.m == 0 {
                    var all = [Float](repeating: 0, count: count * m)
                    for i in 0..<count { for r in 0..<m { all[i * m + r] = score(i, r) } }
                    pruneMask = SparseGPT.slabMask(all, sparsity: p.sparsity)
                }
                for i in 0..<count {
                    let k = i1 + i
                    if let p = prune, p.m > 0, p.n > 0, i % p.m == 0 {
                        let group = i..<min(i + p.m, count)
                        for r in 0..<m {
                            for a in SparseGPT.smallest(p.n, of: group, score: { score($0, r) }) { pruneMask[a * m + r] = true }
                        }
                    }
                    // A pruned weight is quantized as 0; its value becomes its error below.
                    var prunedValues: [(row: Int, value: Float)] = []
                    if prune != nil {
                        let x = w1 + i * m
                        for r in 0..<m where pruneMask[i * m + r] { prunedValues.append((r, x[r])); x[r] = 0 }
                    }
                    if dynamic && k % plan.groupSize == 0 {
                        computeGroup(k / plan.groupSize, positions: k..<min(k + plan.groupSize, n), wt: wt,
                                     plan: &plan, grid: grid, observer: observer)
                    }
                    let g = plan.group(atPosition: k), d = up[k * n + k]
                    let x = w1 + i * m, e = errT + i * m, c = codeT + k * m, q = wt + k * m
                    // Column p's weights as they stand now: in-block-updated inside this block
                    // (complete for every later column at a 16-column sub-block boundary), lazily
                    // updated beyond it.
                    columnQuantizer?.willQuantize(position: k, column: order[k]) { p in
                        UnsafePointer(p < i2 ? w1 + (p - i1) * m : wt + p * m)
                    }
                    let columnLoss = columnQuantizer.map { $0.quantize(column: order[k], x, d: d, code: c, value: q, error: e, rows: m) }
                        ?? plan.scalesT.withUnsafeBufferPointer { sc in
                        plan.zerosT.withUnsafeBufferPointer { zp in
                            let s = sc.baseAddress! + g * m, z = zp.baseAddress! + g * m
                            return isInt
                                ? quantizeIntColumn(x, scale: s, zero: z, d: d, grid: grid, code: c, value: q, error: e, count: m)
                                : quantizeColumn(x, scale: s, zero: z, d: d, grid: grid, code: c, value: q, error: e, count: m)
                        }
                    }
                    loss += Double(columnLoss) / 2
                    for (r, value) in prunedValues {
                        let err = value / d
                        e[r] = err
                        loss += Double(err) * Double(err) / 2
                    }
                    // In-block update W1[:, j] −= err · U[k, i1 + j] for j > i: rank-1 within the
                    // sub-block, then one sgemm for the block's later columns when it is done.
                    let subEnd = min((i / subBlock + 1) * subBlock, count)
                    for j in (i + 1)..<max(subEnd, i + 1) {
                        let h = up[k * n + i1 + j]
                        if h != 0 {
                            subtractScaled(e, h, from: w1 + j * m, count: m)
                            masked(w1 + j * m, fromColumn: i1 + j, columns: 1)
                        }
                    }
                    if i + 1 == subEnd && subEnd < count {
                        let s1 = subEnd - subBlock
                        BLAS.sgemm(transposeA: true, transposeB: false, m: count - subEnd, n: m, k: subBlock, alpha: -1,
                                   a: up + (i1 + s1) * n + i1 + subEnd, lda: n, b: errT + s1 * m, ldb: m,
                                   beta: 1, c: w1 + subEnd * m, ldc: m)
                        masked(w1 + subEnd * m, fromColumn: i1 + subEnd, columns: count - subEnd)
                    }
                }
                if i2 < n {
                    // Lazy batch update of all later columns: one sgemm, 2·(n−i2)·m·count flops.
                    BLAS.sgemm(transposeA: true, transposeB: false, m: n - i2, n: m, k: count, alpha: -1,
                               a: up + i1 * n + i2, lda: n, b: errT, ldb: m, beta: 1, c: wt + i2 * m, ldc: m)
                    masked(wt + i2 * m, fromColumn: i2, columns: n - i2)
                }
            }
        }

        // Back to (rows, columns) in original column order, in tiles.
        var codes = [Int8](repeating: 0, count: m * n)
        var dq = [Float](repeating: 0, count: m * n)
        codes.withUnsafeMutableBufferPointer { co in
            dq.withUnsafeMutableBufferPointer { dp in
                order.withUnsafeBufferPointer { o in
                    forEachTile(rows: m, columns: n) { r, k in
                        let src = k * m + r, dst = r * n + o[k]
                        dp[dst] = wt[src]
                        co[dst] = grid.storedCode(codeT[src])
                    }
                }
            }
        }
        let qw = QuantizedWeight(args: grid.args, codes: codes, parameters: plan.parameters(),
                                 groupIndex: plan.groupIndex())
        return Output(weight: qw, dequantized: Tensor(shape: [m, n], scalars: dq), loss: loss)
    }

    /// `dst[k·rows + r] = src[r·columns + order[k]]`: the transpose of W[:, order], in tiles so
    /// both sides stay in cache.
    static func gatherTransposed(_ src: UnsafePointer<Float>, rows m: Int, columns n: Int, order: UnsafePointer<Int>,
                                 into dst: UnsafeMutablePointer<Float>) {
        forEachTile(rows: m, columns: n) { r, k in dst[k * m + r] = src[r * n + order[k]] }
    }

    /// Calls `body(r, k)` for every (row, column) of a (rows, columns) matrix, 32×32 tile by tile.
    @inline(__always)
    static func forEachTile(rows m: Int, columns n: Int, _ body: (Int, Int) -> Void) {
        let tile = 32
        for r0 in stride(from: 0, to: m, by: tile) {
            let r1 = min(r0 + tile, m)
            for k0 in stride(from: 0, to: n, by: tile) {
                let k1 = min(k0 + tile, n)
                for r in r0..<r1 { for k in k0..<k1 { body(r, k) } }
            }
        }
    }

    /// Quantizes one column on an integer grid (`AffineColumnRounding` on the uniform grid):
    /// codes, values, and the scaled error `(x − q)/d`; returns `Σ err²`.
    @inline(__always)
    static func quantizeIntColumn(_ x: UnsafePointer<Float>, scale s: UnsafePointer<Float>, zero z: UnsafePointer<Float>,
                                  d: Float, grid: QuantizationGrid, code c: UnsafeMutablePointer<Float>,
                                  value q: UnsafeMutablePointer<Float>, error e: UnsafeMutablePointer<Float>,
                                  count m: Int) -> Float {
        AffineColumnRounding.round(x, on: UniformColumnGrid(scale: s, zero: z), codeMin: grid.codeMin, codeMax: grid.codeMax,
                                   d: d, code: c, value: q, error: e, count: m)
    }

    /// The same for any grid (FP8), one value at a time through `QuantizationGrid.code`.
    static func quantizeColumn(_ x: UnsafePointer<Float>, scale s: UnsafePointer<Float>, zero z: UnsafePointer<Float>,
                               d: Float, grid: QuantizationGrid, code c: UnsafeMutablePointer<Float>,
                               value q: UnsafeMutablePointer<Float>, error e: UnsafeMutablePointer<Float>,
                               count m: Int) -> Float {
        var loss: Float = 0
        for r in 0..<m {
            c[r] = grid.code(x[r], scale: s[r], zeroPoint: z[r])
            q[r] = grid.value(code: c[r], scale: s[r], zeroPoint: z[r])
            e[r] = (x[r] - q[r]) / d
            loss += e[r] * e[r]
        }
        return loss
    }

    /// `t −= e · h` over `count` floats.
    @inline(__always)
    static func subtractScaled(_ e: UnsafePointer<Float>, _ h: Float, from t: UnsafeMutablePointer<Float>, count m: Int) {
        typealias V = SIMD8<Float>
        let hv = V(repeating: h)
        var r = 0
        while r + 8 <= m {
            let tv = UnsafeRawPointer(t + r).loadUnaligned(as: V.self) - UnsafeRawPointer(e + r).loadUnaligned(as: V.self) * hv
            UnsafeMutableRawPointer(t + r).storeBytes(of: tv, as: V.self)
            r += 8
        }
        while r < m { t[r] -= e[r] * h; r += 1 }
    }

    /// Scale and zero point of group `g` for every row, from processing positions `positions`
    /// of `wt` (the weights as gptq's `W`: lazy updates of finished blocks applied, the current
    /// block's in-block updates not).
    static func computeGroup(_ g: Int, positions: Range<Int>, wt: UnsafePointer<Float>, plan: inout GPTQPlan,
                             grid: QuantizationGrid, observer: any WeightRangeObserver) {
        let m = plan.rows, len = positions.count
        if observer is MinMaxObserver {
            var mins = Array(UnsafeBufferPointer(start: wt + positions.lowerBound * m, count: m)), maxs = mins
            mins.withUnsafeMutableBufferPointer { lo in
                maxs.withUnsafeMutableBufferPointer { hi in
                    for k in positions.dropFirst() {
                        let col = wt + k * m
                        for r in 0..<m {
                            lo[r] = min(lo[r], col[r])
                            hi[r] = max(hi[r], col[r])
                        }
                    }
                }
            }
            for r in 0..<m {
                (plan.scalesT[g * m + r], plan.zerosT[g * m + r]) = grid.parameters(min: mins[r], max: maxs[r])
            }
            return
        }
        var scratch = [Float](repeating: 0, count: m * len)
        for (j, k) in positions.enumerated() { for r in 0..<m { scratch[r * len + j] = wt[k * m + r] } }
        scratch.withUnsafeBufferPointer { sp in
            for r in 0..<m {
                let range = observer.range(of: UnsafeBufferPointer(rebasing: sp[r * len..<(r + 1) * len]), grid: grid)
                (plan.scalesT[g * m + r], plan.zerosT[g * m + r]) = grid.parameters(min: range.min, max: range.max)
            }
        }
    }
}
