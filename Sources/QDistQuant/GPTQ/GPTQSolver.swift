import CBLAS  // LAPACKE, column-major (see upperCholeskyOfInverse); also a dependency of QDistTensor
import QDistTensor

/// GPTQ (Frantar et al. 2022; IST-DASLab `gptq.py` `fasterquant`, FORMATS.md §3.3) for one
/// weight: quantize input columns one at a time and push each column's rounding error onto the
/// columns not yet quantized, weighted by the inverse Hessian, so that ‖(W − Q)X‖ stays small.
///
/// A pure function of (weight, Hessian, settings): no files, no ranks. Cost for a (m, n) weight
/// with block size B: `n³/3` (Cholesky of H) + `n³/3` (triangular inverse) + `m·n²` (lazy block
/// updates, one sgemm per block) + `m·n·B` (in-block updates: rank-1 inside 16-column
/// sub-blocks, an sgemm between them) + `O(m·n)` for the grid and the transposes. At SmolLM2's
/// 576×1536 that is ≈ 3.8 GFLOP, two thirds of it in the factorization.
/// Failure modes are thrown as `GPTQError`: non-finite inputs, shapes that disagree, and a
/// Hessian that stays indefinite after `maxDampeningRetries` ×10 increases of the dampening.
public enum GPTQSolver {
    /// When a group's scale and zero point are computed.
    public enum GroupParameters: String, Sendable, CaseIterable {
        /// At the group's first column, from the weights as updated by the error feedback so far
        /// (gptq's default, `static_groups=False`; groups follow the processing order). As in
        /// gptq, the group's columns inside the current block have not yet received that block's
        /// in-block updates when they are observed.
        case dynamic
        /// All groups up front from the (dead-column-masked) weights before any update: gptq's
        /// `static_groups=True`, and how llm-compressor always does it.
        case `static`
    }

    /// Quantizes `w` (rows = output features, columns = input features) with GPTQ.
    ///
    /// - Parameters:
    ///   - hessian: (columns, columns), e.g. from `HessianAccumulator`; not modified.
    ///   - args: grid, strategy, group size, observer and `actorder` (nil, `.static`, `.group`).
    ///     `.static` keeps groups over original consecutive columns (always static parameters);
    ///     `.group` forms groups in processing order and the result's g_idx records them.
    ///   - blockSize: columns per lazy-update block (gptq: 128).
    ///   - dampening: fraction of mean(diag H) added to the diagonal (gptq `percdamp`: 0.01).
    ///   - groupParameters: `.dynamic` (gptq default) or `.static`.
    ///   - observer: clipping-range observer (nil: the one `args.observer` names).
    ///   - maxDampeningRetries: how often to multiply the dampening by 10 when Cholesky fails.
    ///   - preservingZeros: never update a weight that is exactly 0 (after pruning), so it
    ///     quantizes to 0.
    ///   - pruning: prune in the same pass (SparseGPT jointly with quantization, as the original
    ///     IST-DASLab code): masks chosen as `SparseGPT.prune` chooses them, pruned weights
    ///     quantized to 0 with their value spread as error. `settings.blockSize` is ignored (the
    ///     loop's `blockSize` is the mask block); needs columns in order (no act-order).
    public static func quantizeWeight(
        _ w: Tensor, hessian: Tensor, args: QuantizationArgs, blockSize: Int = 128, dampening: Double = 0.01,
        groupParameters: GroupParameters = .dynamic, observer: (any WeightRangeObserver)? = nil,
        maxDampeningRetries: Int = 3, preservingZeros: Bool = false, pruning: SparseGPT.Settings? = nil
    ) throws -> GPTQResult {
        do { try args.validateStructure() } catch { throw GPTQError.invalidArguments(error.description) }
        if let p = pruning {
            guard args.actorder == nil else {
                throw GPTQError.invalidArguments("pruning in the same pass needs columns in order: no actorder")
            }
            if p.m > 0 {
                guard p.n >= 0, p.n <= p.m, blockSize % p.m == 0 else {
                    throw GPTQError.invalidArguments("mask_structure \(p.n):\(p.m) needs 0 ≤ N ≤ M and M dividing block_size \(blockSize)")
                }
            } else if !(p.sparsity >= 0 && p.sparsity < 1) {
                throw GPTQError.invalidArguments("sparsity \(p.sparsity) is not in [0, 1)")
            }
        }
        try checkInputs(w, hessian: hessian, blockSize: blockSize, dampening: dampening)
        let grid = try QuantizationGrid(args)
        let observer = observer ?? args.makeWeightObserver()
        let rows = w.rows, n = w.columns

        // Tensor/channel parameters come from the untouched weight (gptq: before dead masking).
        var plan = GPTQPlan(args: args, rows: rows, columns: n, groupParameters: groupParameters)
        if args.strategy != .group {
            plan.setUpfront(grid.findParameters(w, observer: observer))
        }

        let prepared = try prepare(w, hessian: hessian, actOrder: args.actorder != nil, dampening: dampening,
                                   maxDampeningRetries: maxDampeningRetries) { weight, order in
            if args.strategy == .group && plan.usesStaticParameters {
                // Over original groups (no act-order, or actorder static), or over processing-order
                // groups (actorder group): llm-compressor's "weight" and "group".
                let source = args.actorder == .group ? permuteColumns(weight, order) : weight
                plan.setUpfront(grid.findParameters(source, observer: observer))
            }
        }
        let (weight, factor) = (prepared.weight, prepared.factor)
        plan.order = prepared.order ?? Array(0..<n)

        // A pruned weight's exact zero is never updated (llm-compressor ≤ 0.12's masked GPTQ,
        // FORMATS.md §12.1.8), so the pattern survives into the codes.
        let keep: [Float]? = preservingZeros ? weight.scalars.map { $0 == 0 ? 0 : 1 } : nil
        let run = GPTQColumnLoop.run(weight: weight, order: plan.order, hinvUpper: factor, plan: plan,
                                     grid: grid, observer: observer, blockSize: blockSize, keep: keep, prune: pruning)
        return GPTQResult(weight: run.weight, dequantized: run.dequantized, loss: run.loss,
                          dampening: prepared.dampening, dampeningRetries: prepared.retries, deadColumns: prepared.deadColumns,
                          order: prepared.order)
    }

    /// GPTQ of the same weight and Hessian under several grids (mixed-precision sensitivity):
    /// each result is exactly `quantizeWeight(w, hessian:, args: candidates[k], …)` with dynamic
    /// group parameters' default, but the dead-column masking, permutation and Cholesky factor
    /// of the damped inverse — two thirds of a solve at SmolLM2's shapes — are computed once per
    /// act-order setting instead of once per candidate.
    public static func quantizeWeightCandidates(
        _ w: Tensor, hessian: Tensor, candidates: [QuantizationArgs], blockSize: Int = 128, dampening: Double = 0.01,
        maxDampeningRetries: Int = 3
    ) throws -> [GPTQResult] {
        try checkInputs(w, hessian: hessian, blockSize: blockSize, dampening: dampening)
        var prepared: [Bool: Prepared] = [:]
        return try candidates.map { args in
            do { try args.validateStructure() } catch { throw GPTQError.invalidArguments("\(error)") }
            let grid = try QuantizationGrid(args)
            let observer = args.makeWeightObserver()
            let actOrder = args.actorder != nil
            let p = try prepared[actOrder] ?? prepare(w, hessian: hessian, actOrder: actOrder, dampening: dampening,
                                                      maxDampeningRetries: maxDampeningRetries)
            prepared[actOrder] = p
            var plan = GPTQPlan(args: args, rows: w.rows, columns: w.columns, groupParameters: .dynamic)
            let order = p.order ?? Array(0..<w.columns)
            if args.strategy != .group {
                plan.setUpfront(grid.findParameters(w, observer: observer))
            } else if plan.usesStaticParameters {
                plan.setUpfront(grid.findParameters(args.actorder == .group ? permuteColumns(p.weight, order) : p.weight, observer: observer))
            }
            plan.order = order
            let run = GPTQColumnLoop.run(weight: p.weight, order: plan.order, hinvUpper: p.factor, plan: plan,
                                         grid: grid, observer: observer, blockSize: blockSize, keep: nil, prune: nil)
            return GPTQResult(weight: run.weight, dequantized: run.dequantized, loss: run.loss, dampening: p.dampening,
                              dampeningRetries: p.retries, deadColumns: p.deadColumns, order: p.order)
        }
    }

    /// Shapes, settings and finiteness every GPTQ entry point requires.
    static func checkInputs(_ w: Tensor, hessian: Tensor, blockSize: Int, dampening: Double) throws {
        guard w.rank == 2, hessian.shape == [w.columns, w.columns] else {
            throw GPTQError.shapeMismatch("weight \(w.shape) needs a [\(w.columns), \(w.columns)] Hessian, got \(hessian.shape)")
        }
        guard blockSize > 0, dampening >= 0 else {
            throw GPTQError.invalidArguments("block size must be > 0 and dampening ≥ 0 (got \(blockSize), \(dampening))")
        }
        guard allFinite(w) else { throw GPTQError.nonFinite("weight") }
        guard allFinite(hessian) else { throw GPTQError.nonFinite("Hessian") }
    }

    /// `prepare`'s result: the dead-masked weight, the processing order (nil: columns in
    /// order), the upper Cholesky factor of the damped inverse, the dampening used and its
    /// retries, the number of dead columns.
    typealias Prepared = (weight: Tensor, order: [Int]?, factor: Tensor, dampening: Double, retries: Int, deadColumns: Int)

    /// What every GPTQ variant does before its column loop: dead inputs (H_ii = 0) get H_ii = 1
    /// and a zero weight column, the act-order permutation (descending diagonal, ties by index),
    /// and the upper Cholesky factor of the damped inverse, the dampening multiplied by 10 up to
    /// `maxDampeningRetries` times while H is not positive definite. `beforeFactor` sees the
    /// dead-masked weight and the processing order (static group parameters are taken there).
    static func prepare(_ w: Tensor, hessian: Tensor, actOrder: Bool, dampening: Double, maxDampeningRetries: Int,
                        beforeFactor: (Tensor, [Int]) throws -> Void = { _, _ in }) throws -> Prepared
    {
        let rows = w.rows, n = w.columns
        var h = hessian, weight = w
        var dead = 0
        for i in 0..<n where h[i, i] == 0 {
            h[i, i] = 1
            for r in 0..<rows { weight[r, i] = 0 }
            dead += 1
        }
        let diag = (0..<n).map { h[$0, $0] }
        let order: [Int]? = actOrder ? Array(0..<n).sorted { diag[$0] > diag[$1] || (diag[$0] == diag[$1] && $0 < $1) } : nil
        try beforeFactor(weight, order ?? Array(0..<n))
        let hp = order.map { permuteSymmetric(h, $0) } ?? h
        let meanDiag = diag.reduce(0.0) { $0 + Double($1) } / Double(max(n, 1))
        var percdamp = dampening, retries = 0
        while true {
            do {
                let factor = try upperCholeskyOfInverse(hp, addingToDiagonal: Float(percdamp * meanDiag))
                return (weight, order, factor, percdamp, retries, dead)
            } catch {
                guard retries < maxDampeningRetries else {
                    throw GPTQError.hessianNotPositiveDefinite(dampening: percdamp, retries: retries, detail: "\(error)")
                }
                retries += 1
                percdamp *= 10
            }
        }
    }

    /// U upper triangular with `UᵀU = (H + damp·I)⁻¹` (torch: `cholesky(cholesky_inverse(
    /// cholesky(H)), upper=True)`), computed as the inverse of the "reversed" Cholesky factor:
    /// with J the exchange matrix, `JHJ = LLᵀ` gives `H = ŨŨᵀ` for the upper `Ũ = JLJ`, so
    /// `H⁻¹ = Ũ⁻ᵀŨ⁻¹` and `U = Ũ⁻¹`: one `spotrf` and one `strtri` (2n³/3 flops) instead of
    /// `spotrf` + `spotri` + `spotrf` (4n³/3), and H⁻¹ is never formed. (J·A·J of a row-major
    /// matrix is its element array reversed.) LAPACK is called column-major on the row-major
    /// buffer with the triangles swapped, which skips LAPACKE's two O(n²) transposes per call —
    /// half the time at n = 1536. Throws `LinearAlgebraError` when H + damp·I is not SPD.
    public static func upperCholeskyOfInverse(_ h: Tensor, addingToDiagonal damp: Float) throws -> Tensor {
        precondition(h.rank == 2 && h.shape[0] == h.shape[1], "Hessian must be square, got \(h.shape)")
        let n = h.shape[0]
        var a = [Float](repeating: 0, count: n * n)
        a.withUnsafeMutableBufferPointer { dst in
            h.withUnsafeBufferPointer { src in
                for i in 0..<(n * n) { dst[n * n - 1 - i] = src[i] }  // J H J
            }
            for i in 0..<n { dst[i * n + i] += damp }
        }
        let upper = Int8(UInt8(ascii: "U")), lower = Int8(UInt8(ascii: "L")), nonUnit = Int8(UInt8(ascii: "N"))
        // Column-major 'U' of the (symmetric) buffer = row-major lower L with JHJ = LLᵀ.
        // One thread: OpenBLAS's threaded factorizations round differently (BLASThreads.withOneThread).
        let info = BLASThreads.withOneThread { a.withUnsafeMutableBufferPointer { p in
            LAPACKE_spotrf_work(LAPACK_COL_MAJOR, upper, Int32(n), p.baseAddress, Int32(max(n, 1)))
        } }
        if info > 0 { throw LinearAlgebraError.notPositiveDefinite(minor: Int(info)) }
        if info < 0 { throw LinearAlgebraError.invalidArgument(info: Int(info)) }
        a.reverse()  // J L J = Ũ, row-major upper = column-major lower
        let info2 = BLASThreads.withOneThread { a.withUnsafeMutableBufferPointer { p in
            LAPACKE_strtri_work(LAPACK_COL_MAJOR, lower, nonUnit, Int32(n), p.baseAddress, Int32(max(n, 1)))
        } }
        if info2 > 0 { throw LinearAlgebraError.singular(index: Int(info2)) }
        if info2 < 0 { throw LinearAlgebraError.invalidArgument(info: Int(info2)) }
        a.withUnsafeMutableBufferPointer { p in  // LAPACK leaves the other triangle as it was
            for i in 1..<max(n, 1) { (p.baseAddress! + i * n).update(repeating: 0, count: i) }
        }
        return Tensor(shape: [n, n], scalars: a)
    }

    /// W[:, order] (columns gathered into processing order; each row stays in cache).
    static func permuteColumns(_ w: Tensor, _ order: [Int]) -> Tensor {
        let rows = w.rows, n = w.columns
        var out = [Float](repeating: 0, count: rows * n)
        w.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                order.withUnsafeBufferPointer { o in
                    for r in 0..<rows {
                        let s = src.baseAddress! + r * n, d = dst.baseAddress! + r * n
                        for k in 0..<n { d[k] = s[o[k]] }
                    }
                }
            }
        }
        return Tensor(shape: [rows, n], scalars: out)
    }

    /// H[order][:, order].
    static func permuteSymmetric(_ h: Tensor, _ order: [Int]) -> Tensor {
        let n = h.shape[0]
        var out = [Float](repeating: 0, count: n * n)
        h.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                order.withUnsafeBufferPointer { o in
                    for i in 0..<n {
                        let s = src.baseAddress! + o[i] * n, d = dst.baseAddress! + i * n
                        for j in 0..<n { d[j] = s[o[j]] }
                    }
                }
            }
        }
        return Tensor(shape: [n, n], scalars: out)
    }

    /// No NaN or infinity in `t`: an OR over `(bits & exponent) + 2^23`, whose sign bit is set
    /// exactly when the exponent is all ones (a loop the optimizer vectorizes).
    static func allFinite(_ t: Tensor) -> Bool {
        t.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: UInt32.self) { bits in
                var any: UInt32 = 0
                for b in bits { any |= (b & 0x7F80_0000) &+ 0x0080_0000 }
                return any & 0x8000_0000 == 0
            }
        }
    }
}

/// What GPTQ produced for one weight: codes and parameters ready for a writer, the dequantized
/// weight for evaluation, and the numbers a log line should show.
///
/// Failure mode worth logging: `dampeningRetries > 0` means H was (numerically) indefinite —
/// too few calibration tokens for the layer width — and the result is closer to RTN.
public struct GPTQResult: Sendable {
    /// Codes (rows, columns) in original column order, scales/zero points per (row, group) in
    /// group-creation order, and g_idx (original column → group).
    public var weight: QuantizedWeight
    /// (rows, columns): `(q − zero)·scale`, what the quantized layer computes with.
    public var dequantized: Tensor
    /// gptq's reported error `Σ (w − q)² / d² / 2` (d = diagonal of the inverse-Hessian factor).
    public var loss: Double
    /// The dampening fraction finally used (≥ the one asked for).
    public var dampening: Double
    /// How many times the dampening was multiplied by 10 before Cholesky succeeded.
    public var dampeningRetries: Int
    /// Input columns whose Hessian diagonal was zero (set to 0 in the result).
    public var deadColumns: Int
    /// The processing order (act-order permutation), nil without act-order.
    public var order: [Int]?

    public var codes: [Int8] { weight.codes }
    public var scales: [Float] { weight.parameters.scales }
    public var zeroPoints: [Float] { weight.parameters.zeroPoints }
    public var gIdx: [Int32] { weight.groupIndex }
}

/// Why GPTQ refused or failed, with what to change.
public enum GPTQError: Error, CustomStringConvertible, Equatable {
    case invalidArguments(String)
    case shapeMismatch(String)
    case nonFinite(String)
    case hessianNotPositiveDefinite(dampening: Double, retries: Int, detail: String)

    public var description: String {
        switch self {
        case .invalidArguments(let s): return "GPTQ: \(s)"
        case .shapeMismatch(let s): return "GPTQ: \(s)"
        case .nonFinite(let what): return "GPTQ: the \(what) contains NaN or infinity; check the checkpoint and the calibration run"
        case .hessianNotPositiveDefinite(let d, let r, let detail):
            return "GPTQ: Hessian not positive definite even with dampening \(d) after \(r) retries (\(detail)); "
                + "use more calibration samples, shuffle the calibration set, or raise dampening_frac"
        }
    }
}
