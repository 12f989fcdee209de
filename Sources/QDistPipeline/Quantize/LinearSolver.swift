import QDistIO
import QDistQuant
import QDistTensor

/// How a quantizing modifier turns one linear's weights (some of its rows) into codes: the
/// solve step of the block pipeline. Solvers are pure: the pipeline hands them the rows and,
/// when `needsHessian`, the combined calibration Hessian of the linear's input.
public protocol LinearSolver: Sendable {
    /// Whether `solve` needs the input Hessian Σ xxᵀ (the pipeline then calibrates and
    /// delivers one per linear group).
    var needsHessian: Bool { get }
    /// The act-order a grouped config group gets when neither it nor the modifier sets one.
    var defaultActOrder: WeightArgsConfig.ActOrder? { get }
    /// GPTQ's dampening, recorded by checkpoint formats that carry one (`damp_percent`).
    var dampening: Double { get }
    /// Quantizes `w` (rows, in) with `args`; returns the quantized weight and the solver's own
    /// loss where it has one.
    func solve(_ w: Tensor, hessian: Tensor?, args: QuantizationArgs) throws -> (weight: QuantizedWeight, loss: Double?)
    /// Whether its zero points are floats (HQQ): only the float-zero format stores them.
    var producesFractionalZeroPoints: Bool { get }
    /// Whether solving a block of rows alone gives those rows' result (GPTQ, RTN per row); when
    /// false, a linear is never split across ranks, so results cannot depend on P.
    var rowsAreIndependent: Bool { get }
    /// Whether it can keep a pruned weight's exact zero a zero (`solve(…, keepingZeros: true)`):
    /// round-to-nearest always does (0 is on every integer, FP8 and NF4 grid); GPTQ masks its
    /// updates; HQQ's float zero points cannot.
    var keepsZeros: Bool { get }
    /// `solve` for a pruned weight: every exact zero of `w` must come back as 0.
    func solve(_ w: Tensor, hessian: Tensor?, args: QuantizationArgs, keepingZeros: Bool) throws -> (weight: QuantizedWeight, loss: Double?)
    /// Whether it prunes inside its own loop (SparseGPT with a scheme): the pipeline then hands
    /// a targeted linear over dense, and `keepingZeros: true` means "prune it while solving".
    var prunesWhileSolving: Bool { get }
    /// Whether it can encode a linear as a ggml block type (`--format gguf`).
    var writesGGMLBlocks: Bool { get }
    /// Encodes `w` (rows, in) as rows of ggml block `type`, the scales chosen by llama.cpp's
    /// reference encoder with `importance` (an imatrix vector, one value per input column);
    /// returns the bytes and the solver's own loss where it has one. `scales` says whether a
    /// solver that updates weights (GPTQ) encodes each block's scales from the original weights
    /// or from the weights as updated when it reaches the block.
    func solveGGML(_ w: Tensor, hessian: Tensor?, type: GGMLType, importance: [Float]?, actOrder: Bool, scales: GGMLBlockGPTQ.Scales) throws -> (bytes: [UInt8], loss: Double?)
    /// `solve` of the same rows under each of `args` (a budget's candidates): element k is
    /// `solve(w, hessian:, args: args[k])`; a solver may share work between them.
    func solveCandidates(_ w: Tensor, hessian: Tensor?, args: [QuantizationArgs]) throws -> [(weight: QuantizedWeight, loss: Double?)]
    /// `solveGGML` of the same rows to each of `types`: element k is `solveGGML(…, type:
    /// types[k], …)`; a solver may share work between them.
    func solveGGMLCandidates(_ w: Tensor, hessian: Tensor?, types: [GGMLType], importance: [Float]?, actOrder: Bool,
                             scales: GGMLBlockGPTQ.Scales) throws -> [(bytes: [UInt8], loss: Double?)]
}

extension LinearSolver {
    public var producesFractionalZeroPoints: Bool { false }
    public var rowsAreIndependent: Bool { true }
    public var keepsZeros: Bool { true }
    public var prunesWhileSolving: Bool { false }
    public var writesGGMLBlocks: Bool { false }
    public func solveGGML(_ w: Tensor, hessian: Tensor?, type: GGMLType, importance: [Float]?, actOrder: Bool, scales: GGMLBlockGPTQ.Scales) throws -> (bytes: [UInt8], loss: Double?) {
        throw QuantizePlanError(description: "this modifier cannot write ggml block types: use GPTQModifier or QuantizationModifier with scheme: GGUF")
    }
    public func solve(_ w: Tensor, hessian: Tensor?, args: QuantizationArgs, keepingZeros: Bool) throws -> (weight: QuantizedWeight, loss: Double?) {
        try solve(w, hessian: hessian, args: args)
    }
    public func solveCandidates(_ w: Tensor, hessian: Tensor?, args: [QuantizationArgs]) throws -> [(weight: QuantizedWeight, loss: Double?)] {
        try args.map { try solve(w, hessian: hessian, args: $0) }
    }
    public func solveGGMLCandidates(_ w: Tensor, hessian: Tensor?, types: [GGMLType], importance: [Float]?, actOrder: Bool,
                                    scales: GGMLBlockGPTQ.Scales) throws -> [(bytes: [UInt8], loss: Double?)] {
        try types.map { try solveGGML(w, hessian: hessian, type: $0, importance: importance, actOrder: actOrder, scales: scales) }
    }
}

/// HQQ (`HQQModifier`): calibration-free, zero points tuned by the half-quadratic solver.
public struct HQQLinearSolver: LinearSolver {
    public var settings: HQQSolver.Settings
    /// Round the optimised zero points and re-quantize (`integer_zero`), for formats that store
    /// integer zeros.
    public var integerZeros: Bool
    public init(settings: HQQSolver.Settings, integerZeros: Bool = false) { (self.settings, self.integerZeros) = (settings, integerZeros) }
    public var needsHessian: Bool { false }
    public var defaultActOrder: WeightArgsConfig.ActOrder? { nil }
    public var dampening: Double { 0.01 }
    public var producesFractionalZeroPoints: Bool { !integerZeros }
    /// A zero weight lands on `(round(z) − z)·scale`, not 0.
    public var keepsZeros: Bool { false }
    /// Its early stop watches the mean error of the whole weight.
    public var rowsAreIndependent: Bool { false }
    public func solve(_ w: Tensor, hessian: Tensor?, args: QuantizationArgs) throws -> (weight: QuantizedWeight, loss: Double?) {
        var s = settings
        s.nbits = args.numBits
        s.groupSize = args.groupSize ?? s.groupSize
        do {
            let result = try HQQSolver.quantize(w, settings: s)
            return ((integerZeros ? result.withIntegerZeros(of: w) : result).quantizedWeight(), nil)
        } catch {
            throw QuantizePlanError(description: "\(error)")
        }
    }
}

/// Round-to-nearest with the config group's observer (`QuantizationModifier`, and `AWQModifier`
/// on its own).
public struct RoundToNearestSolver: LinearSolver {
    public init() {}
    public var needsHessian: Bool { false }
    public var defaultActOrder: WeightArgsConfig.ActOrder? { nil }
    public var dampening: Double { 0.01 }
    public func solve(_ w: Tensor, hessian: Tensor?, args: QuantizationArgs) throws -> (weight: QuantizedWeight, loss: Double?) {
        (try QuantizationGrid(args).quantize(w), nil)
    }

    /// llama.cpp's own encoder (`quantize_row_*_ref`, or `_impl` with importance): the bytes
    /// llama-quantize writes.
    public var writesGGMLBlocks: Bool { true }
    public func solveGGML(_ w: Tensor, hessian: Tensor?, type: GGMLType, importance: [Float]?, actOrder: Bool, scales: GGMLBlockGPTQ.Scales) throws -> (bytes: [UInt8], loss: Double?) {
        (try w.withUnsafeBufferPointer { try GGMLQuantize.quantize(type, rows: $0, rowLength: w.columns, importance: importance) }, nil)
    }
}

/// GPTQ (`GPTQModifier`): error-compensating column by column against the input Hessian.
public struct GPTQLinearSolver: LinearSolver {
    public var blockSize: Int
    public var dampening: Double
    public init(blockSize: Int, dampening: Double) { (self.blockSize, self.dampening) = (blockSize, dampening) }
    public var needsHessian: Bool { true }
    /// llm-compressor's GPTQModifier default: activation order with groups kept in column order.
    public var defaultActOrder: WeightArgsConfig.ActOrder? { .static }
    public func solve(_ w: Tensor, hessian: Tensor?, args: QuantizationArgs) throws -> (weight: QuantizedWeight, loss: Double?) {
        try solve(w, hessian: hessian, args: args, keepingZeros: false)
    }

    public func solve(_ w: Tensor, hessian: Tensor?, args: QuantizationArgs, keepingZeros: Bool) throws -> (weight: QuantizedWeight, loss: Double?) {
        guard let hessian else { throw QuantizePlanError(description: "GPTQ needs the calibration Hessian of its input") }
        // Every thread count gives the same bits: products through `BLAS` (depth split), the
        // factorizations on one thread (`BLASThreads.withOneThread` inside the solver).
        let r = try GPTQSolver.quantizeWeight(w, hessian: hessian, args: args, blockSize: blockSize, dampening: dampening,
                                              preservingZeros: keepingZeros)
        return (r.weight, r.loss)
    }

    /// One factorization of the damped inverse Hessian for every candidate.
    public func solveCandidates(_ w: Tensor, hessian: Tensor?, args: [QuantizationArgs]) throws -> [(weight: QuantizedWeight, loss: Double?)] {
        guard let hessian else { throw QuantizePlanError(description: "GPTQ needs the calibration Hessian of its input") }
        return try GPTQSolver.quantizeWeightCandidates(w, hessian: hessian, candidates: args, blockSize: blockSize, dampening: dampening)
            .map { ($0.weight, $0.loss) }
    }

    /// GPTQ's codes on the scales llama.cpp's encoder chooses (`GGMLBlockGPTQ`).
    public var writesGGMLBlocks: Bool { true }
    public func solveGGML(_ w: Tensor, hessian: Tensor?, type: GGMLType, importance: [Float]?, actOrder: Bool, scales: GGMLBlockGPTQ.Scales) throws -> (bytes: [UInt8], loss: Double?) {
        guard let hessian else { throw QuantizePlanError(description: "GPTQ needs the calibration Hessian of its input") }
        let r = try GGMLBlockGPTQ.quantize(w, hessian: hessian, type: type, importance: importance, actOrder: actOrder,
                                           scales: scales, blockSize: blockSize, dampening: dampening)
        return (r.bytes, r.loss)
    }

    /// One factorization of the damped inverse Hessian for every block type.
    public func solveGGMLCandidates(_ w: Tensor, hessian: Tensor?, types: [GGMLType], importance: [Float]?, actOrder: Bool,
                                    scales: GGMLBlockGPTQ.Scales) throws -> [(bytes: [UInt8], loss: Double?)] {
        guard let hessian else { throw QuantizePlanError(description: "GPTQ needs the calibration Hessian of its input") }
        return try GGMLBlockGPTQ.quantizeCandidates(w, hessian: hessian, types: types, importance: importance, actOrder: actOrder,
                                                    scales: scales, blockSize: blockSize, dampening: dampening).map { ($0.bytes, $0.loss) }
    }
}

/// SparseGPT with a quantization scheme in the same modifier: one pass that prunes and
/// quantizes each targeted linear together (the original IST-DASLab code: the masks chosen as
/// SparseGPT chooses them, each kept weight quantized as it is visited, every error — pruned or
/// rounded — spread over the columns not yet visited). Linears the pruning does not target are
/// plain GPTQ. Columns go in order (no act-order); group scales are computed at each group's
/// first column from the weights as updated so far.
public struct SparseGPTJointSolver: LinearSolver {
    public var settings: SparseGPT.Settings
    public init(settings: SparseGPT.Settings) { self.settings = settings }
    public var needsHessian: Bool { true }
    public var defaultActOrder: WeightArgsConfig.ActOrder? { nil }
    public var dampening: Double { settings.dampening }
    public var prunesWhileSolving: Bool { true }
    public func solve(_ w: Tensor, hessian: Tensor?, args: QuantizationArgs) throws -> (weight: QuantizedWeight, loss: Double?) {
        try solve(w, hessian: hessian, args: args, keepingZeros: false)
    }

    public func solve(_ w: Tensor, hessian: Tensor?, args: QuantizationArgs, keepingZeros prune: Bool) throws -> (weight: QuantizedWeight, loss: Double?) {
        guard let hessian else { throw QuantizePlanError(description: "SparseGPTModifier needs the calibration Hessian of its input") }
        do {
            let r = try GPTQSolver.quantizeWeight(w, hessian: hessian, args: args, blockSize: settings.blockSize, dampening: settings.dampening,
                                                  pruning: prune ? settings : nil)
            return (r.weight, r.loss)
        } catch let e as GPTQError {
            throw QuantizePlanError(description: "SparseGPTModifier: \(e)")
        }
    }
}
