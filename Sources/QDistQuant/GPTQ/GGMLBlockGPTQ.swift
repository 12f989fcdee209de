import Foundation
import QDistIO
import QDistTensor

/// GPTQ on the grid of a ggml block type (Q4_0 … Q8_0, Q2_K … Q6_K), so its output is a standard
/// GGUF tensor that llama.cpp runs, with GPTQ's error compensation in its codes.
///
/// The scales and mins are llama.cpp's own: the whole weight is first encoded by the reference
/// encoder of the type (`GGMLQuantize`, bit-identical to ggml's; its `_impl` form with an
/// importance matrix), which fixes every block's `d`, `dmin` and packed sub-block scales. GPTQ
/// then chooses every code on that fixed grid (`GGMLBlockCodes`: `a_j·q + b_j` per sub-block),
/// column by column, pushing each column's rounding error onto the columns not yet quantized
/// (optionally in act-order: the grid is fixed, so any processing order is allowed), and the
/// codes are written back into the reference blocks. With an identity Hessian there is no error
/// to push and the result is round-to-nearest on the reference grid — the reference encoder's
/// own codes for every k-type (they recompute theirs that way).
///
/// A pure function of (weight, Hessian, type, importance, settings); rows are independent, so a
/// linear may be split across ranks by rows. Errors: `GPTQError` (shapes, non-finite values, a
/// Hessian that stays indefinite), `GGMLQuantizeError` (a row not a multiple of the block size).
public enum GGMLBlockGPTQ {
    /// What the solve produced for one weight.
    public struct Result: Sendable {
        /// The encoded rows, `rows × type.byteCount(elements: columns)` bytes: a GGUF tensor's data.
        public var bytes: [UInt8]
        /// The weight the bytes decode to (ggml's dequantizer, bit for bit).
        public var dequantized: Tensor
        /// gptq's loss `Σ ((w − q)/d)² / 2`.
        public var loss: Double
        public var dampening: Double
        public var dampeningRetries: Int
    }

    /// The types GPTQ can solve on (those with an affine integer grid).
    public static func supports(_ type: GGMLType) -> Bool { GGMLBlockCodes.layout(type) != nil }

    /// Where the block scales come from.
    public enum Scales: String, Sendable, CaseIterable {
        /// The reference encoder on the original weight, all blocks before the loop (any
        /// processing order, act-order included).
        case original
        /// The reference encoder on each block's weights as GPTQ has updated them when the loop
        /// reaches the block (gptq's dynamic groups; columns in order only). The encoder's
        /// `_impl` row statistic (σ² = mean x²) is then the block's, not the whole row's.
        case updated
        /// Two passes: GPTQ on the original weights' scales, then the reference encoder on the
        /// weights as that pass left them just before each was rounded (every column updated by
        /// all earlier errors), and GPTQ again on those scales. Works with act-order.
        case refined
    }

    /// Quantizes `w` (rows = output features, columns = input features, a multiple of the
    /// type's block size) to `type`; `importance` (one value per input column, llama.cpp's
    /// imatrix) drives the reference encoder's choice of scales.
    public static func quantize(_ w: Tensor, hessian: Tensor, type: GGMLType, importance: [Float]?, actOrder: Bool,
                                scales: Scales = .original, blockSize: Int = 128, dampening: Double = 0.01,
                                maxDampeningRetries: Int = 3, threads: Int = 1) throws -> Result {
        var unshared: GPTQSolver.Prepared? = nil
        return try quantize(w, hessian: hessian, type: type, importance: importance, actOrder: actOrder, scales: scales, blockSize: blockSize,
                            dampening: dampening, maxDampeningRetries: maxDampeningRetries, threads: threads, sharing: &unshared)
    }

    /// `quantize` of the same weight and Hessian to each of `types` (a budget's candidates):
    /// element k is exactly `quantize(w, hessian:, type: types[k], …)`, but the dead-column
    /// masking, act-order permutation and Cholesky factor of the damped inverse are computed
    /// once for all of them.
    public static func quantizeCandidates(_ w: Tensor, hessian: Tensor, types: [GGMLType], importance: [Float]?, actOrder: Bool,
                                          scales: Scales = .original, blockSize: Int = 128, dampening: Double = 0.01,
                                          maxDampeningRetries: Int = 3, threads: Int = 1) throws -> [Result] {
        var shared: GPTQSolver.Prepared? = nil
        return try types.map { type in
            try quantize(w, hessian: hessian, type: type, importance: importance, actOrder: actOrder, scales: scales, blockSize: blockSize,
                         dampening: dampening, maxDampeningRetries: maxDampeningRetries, threads: threads, sharing: &shared)
        }
    }

    /// `quantize` with the factorization taken from `prepared` when set, and left there (after
    /// the inputs are validated) when not, for the next type of the same weight.
    static func quantize(_ w: Tensor, hessian: Tensor, type: GGMLType, importance: [Float]?, actOrder: Bool,
                         scales: Scales, blockSize: Int, dampening: Double, maxDampeningRetries: Int, threads: Int,
                         sharing prepared: inout GPTQSolver.Prepared?) throws -> Result {
        guard let layout = GGMLBlockCodes.layout(type) else {
            throw GPTQError.invalidArguments("\(type.traits.name) has no integer grid GPTQ can solve on")
        }
        guard w.rank == 2, hessian.shape == [w.columns, w.columns] else {
            throw GPTQError.shapeMismatch("weight \(w.shape) needs a [\(w.columns), \(w.columns)] Hessian, got \(hessian.shape)")
        }
        guard blockSize > 0, dampening >= 0 else {
            throw GPTQError.invalidArguments("block size must be > 0 and dampening ≥ 0 (got \(blockSize), \(dampening))")
        }
        guard !(actOrder && scales == .updated) else {
            throw GPTQError.invalidArguments("scales from the updated weights need columns in order: no act-order")
        }
        guard GPTQSolver.allFinite(w) else { throw GPTQError.nonFinite("weight") }
        guard GPTQSolver.allFinite(hessian) else { throw GPTQError.nonFinite("Hessian") }
        let rows = w.rows, n = w.columns
        let blockElements = type.traits.blockSize
        guard n % blockElements == 0 else {
            throw GPTQError.invalidArguments("\(type.traits.name) needs rows that are a multiple of \(blockElements); this weight's rows have \(n)")
        }
        if let importance, importance.count != n {
            throw GPTQError.shapeMismatch("\(importance.count) importance values for \(n) input columns")
        }
        let initial = try w.withUnsafeBufferPointer { try GGMLQuantize.quantize(type, rows: $0, rowLength: n, importance: importance, threads: threads) }
        let factorized = try prepared ?? GPTQSolver.prepare(w, hessian: hessian, actOrder: actOrder, dampening: dampening,
                                                            maxDampeningRetries: maxDampeningRetries)
        prepared = factorized
        let order = factorized.order ?? Array(0..<n)
        // The loop's own grid is not used (the column quantizer replaces it); a static plan
        // keeps it from computing parameters.
        let args = QuantizationArgs(numBits: 8, type: .int, symmetric: true, strategy: .channel)
        var plan = GPTQPlan(args: args, rows: rows, columns: n, groupParameters: .static)
        plan.order = order
        var grid = BlockGridColumns(type: type, layout: layout, rows: rows, columns: n, bytes: initial, importance: importance,
                                    updated: scales == .updated, recording: scales == .refined)
        var run = GPTQColumnLoop.run(weight: factorized.weight, order: order, hinvUpper: factorized.factor, plan: plan,
                                     grid: try QuantizationGrid(args), observer: args.makeWeightObserver(), blockSize: blockSize,
                                     columnQuantizer: grid)
        if let failure = grid.failure { throw failure }
        if scales == .refined, let seen = grid.recorded {
            // The weights each column had when it was rounded, back to (rows, columns).
            var updatedWeights = [Float](repeating: 0, count: rows * n)
            for c in 0..<n { for r in 0..<rows { updatedWeights[r * n + c] = seen[c * rows + r] } }
            let rescaled = try GGMLQuantize.quantize(type, updatedWeights, rowLength: n, importance: importance)
            grid = BlockGridColumns(type: type, layout: layout, rows: rows, columns: n, bytes: rescaled, importance: importance,
                                    updated: false, recording: false)
            run = GPTQColumnLoop.run(weight: factorized.weight, order: order, hinvUpper: factorized.factor, plan: plan,
                                     grid: try QuantizationGrid(args), observer: args.makeWeightObserver(), blockSize: blockSize,
                                     columnQuantizer: grid)
        }
        var bytes = grid.bytes
        let blocksPerRow = n / blockElements, blockBytes = type.traits.typeSize
        run.weight.codes.withUnsafeBufferPointer { codes in
            bytes.withUnsafeMutableBytes { raw in
                for r in 0..<rows {
                    for c in 0..<n {
                        let block = raw.baseAddress! + (r * blocksPerRow + c / blockElements) * blockBytes
                        GGMLBlockCodes.setCode(type, block: block, element: c % blockElements, Int(codes[r * n + c]))
                    }
                }
            }
        }
        return Result(bytes: bytes, dequantized: run.dequantized, loss: run.loss,
                      dampening: factorized.dampening, dampeningRetries: factorized.retries)
    }
}

/// A column of GPTQ on a ggml grid: `q = clamp(round((x − b)/a))`, value `a·q + b` (ggml's
/// dequantization), eight rows at a time. A sub-block whose scale is 0 gives code 0 (value b).
/// Holds the encoded blocks whose scale fields define the grid; with `updated`, each block is
/// re-encoded from the current weights when the loop reaches it.
final class BlockGridColumns: GPTQColumnQuantizer {
    let type: GGMLType
    let rows: Int, blockElements: Int, blockBytes: Int, blocksPerRow: Int, subBlock: Int
    let codeMin: Float, codeMax: Float
    let importance: [Float]?
    let updated: Bool
    /// Every block, row after row (scale fields final; codes are written by the caller).
    var bytes: [UInt8]
    /// a, b and 1/a (0 where a is 0) per (sub-block, row).
    var scalesT: [Float], offsetsT: [Float], inverseT: [Float]
    /// A re-encoding that failed (cannot happen for validated shapes; reported, not trapped).
    var failure: (any Error)?
    /// With `recording`: each column's weights as they were when rounded, (column, row) by
    /// original column index.
    var recorded: [Float]?

    init(type: GGMLType, layout: GGMLBlockCodes.Layout, rows: Int, columns: Int, bytes: [UInt8], importance: [Float]?, updated: Bool,
         recording: Bool = false) {
        (self.type, self.rows, self.bytes, self.importance, self.updated) = (type, rows, bytes, importance, updated)
        recorded = recording ? [Float](repeating: 0, count: rows * columns) : nil
        blockElements = type.traits.blockSize
        blockBytes = type.traits.typeSize
        blocksPerRow = columns / blockElements
        subBlock = layout.subBlock
        (codeMin, codeMax) = (Float(layout.codeMin), Float(layout.codeMax))
        let subPerRow = columns / subBlock
        scalesT = [Float](repeating: 0, count: subPerRow * rows)
        offsetsT = scalesT
        inverseT = scalesT
        for blk in 0..<blocksPerRow { readGrid(block: blk) }
    }

    /// Decodes the (a, b) of block column `blk` of every row into the transposed arrays.
    func readGrid(block blk: Int) {
        let perBlock = blockElements / subBlock
        var a = [Float](repeating: 0, count: perBlock), b = a
        bytes.withUnsafeBytes { raw in
            for r in 0..<rows {
                GGMLBlockCodes.grid(type, block: raw.baseAddress! + (r * blocksPerRow + blk) * blockBytes, scales: &a, offsets: &b)
                for j in 0..<perBlock {
                    let i = (blk * perBlock + j) * rows + r
                    (scalesT[i], offsetsT[i], inverseT[i]) = (a[j], b[j], a[j] == 0 ? 0 : 1 / a[j])
                }
            }
        }
    }

    func willQuantize(position: Int, column: Int, current: (Int) -> UnsafePointer<Float>) {
        guard updated, position % blockElements == 0 else { return }
        let blk = position / blockElements, m = rows
        var values = [Float](repeating: 0, count: m * blockElements)
        for j in 0..<blockElements {
            let col = current(position + j)
            for r in 0..<m { values[r * blockElements + j] = col[r] }
        }
        do {
            let encoded = try GGMLQuantize.quantize(type, values, rowLength: blockElements,
                                                    importance: importance.map { Array($0[position..<position + blockElements]) })
            for r in 0..<m {
                let dst = (r * blocksPerRow + blk) * blockBytes
                bytes.replaceSubrange(dst..<dst + blockBytes, with: encoded[r * blockBytes..<(r + 1) * blockBytes])
            }
            readGrid(block: blk)
        } catch {
            failure = failure ?? error
        }
    }

    func quantize(column: Int, _ x: UnsafePointer<Float>, d: Float, code c: UnsafeMutablePointer<Float>,
                  value q: UnsafeMutablePointer<Float>, error e: UnsafeMutablePointer<Float>, rows m: Int) -> Float {
        _ = recorded?.withUnsafeMutableBufferPointer { (buffer: inout UnsafeMutableBufferPointer<Float>) in
            (buffer.baseAddress! + column * m).update(from: x, count: m)
        }
        let j = column / subBlock
        return scalesT.withUnsafeBufferPointer { sp in
            offsetsT.withUnsafeBufferPointer { op in
                inverseT.withUnsafeBufferPointer { ip in
                    let grid = GGMLColumnGrid(scale: sp.baseAddress! + j * m, offset: op.baseAddress! + j * m, inverse: ip.baseAddress! + j * m)
                    return AffineColumnRounding.round(x, on: grid, codeMin: codeMin, codeMax: codeMax, d: d, code: c, value: q, error: e, count: m)
                }
            }
        }
    }
}
