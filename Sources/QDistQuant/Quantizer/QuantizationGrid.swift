import QDistTensor

/// The uniform grid of compressed-tensors (FORMATS.md §5.2): scale and zero point from a
/// clipping range, and quantize/dequantize of single values and whole weights.
///
/// Why one type: GPTQ quantizes column by column, RTN a whole tensor, observers try candidate
/// ranges; all must round identically or "GPTQ with H = I equals RTN" stops being true. The
/// formulas are `calculate_qparams` and `_quantize/_dequantize` of compressed-tensors:
/// - symmetric: `scale = max(|min|, |max|) / ((qmax − qmin)/2)` (int4: ÷7.5, int8: ÷127.5;
///   FP8: ÷448), `zero = 0`;
/// - asymmetric: `scale = (max − min)/(qmax − qmin)`, `zero = round(clamp(qmin − min/scale))`;
/// - `scale = max(scale, Float32 eps)`; the range is first widened to include 0;
/// - `q = round(clamp(x/scale + zero, qmin, qmax))` (half to even; FP8 rounds onto E4M3),
///   `x̂ = (q − zero)·scale`.
/// NF4/FP4 (bitsandbytes' code books, FORMATS.md §6.3) use the same symmetric scale with the
/// range ±1, so `scale` is the group's absmax, and a code is the book entry bitsandbytes' kernel
/// picks for `x · (1/scale)`; it is stored as its index 0…15.
/// These equal gptq `quant.py`'s unsigned grid shifted by 2^(b−1). Failure mode: NaN inputs give
/// NaN scales (nothing here checks); the GPTQ solver rejects non-finite weights first.
public struct QuantizationGrid: Sendable {
    public let args: QuantizationArgs
    /// The smallest and largest code (int4: −8 and 7; FP8: ±448).
    public let codeMin: Float
    public let codeMax: Float

    public init(_ args: QuantizationArgs) throws(QuantizationArgsError) {
        try args.validateStructure()
        self.args = args
        (codeMin, codeMax) = args.codeRange
    }

    /// compressed-tensors `calculate_qparams` for one group's clipping range.
    @inlinable
    public func parameters(min lo: Float, max hi: Float) -> (scale: Float, zeroPoint: Float) {
        let lo = Swift.min(lo, 0), hi = Swift.max(hi, 0)
        let span = codeMax - codeMin
        if args.symmetric {
            let scale = Swift.max(Swift.max(-lo, hi) / (span / 2), Float.ulpOfOne)
            return (scale, 0)
        }
        let scale = Swift.max((hi - lo) / span, Float.ulpOfOne)
        let zero = Swift.min(Swift.max(codeMin - lo / scale, codeMin), codeMax).rounded(.toNearestOrEven)
        return (scale, zero)
    }

    /// The code of `x` as a Float: an integer in `codeMin...codeMax`, or an E4M3 value for FP8.
    @inlinable
    public func code(_ x: Float, scale: Float, zeroPoint: Float) -> Float {
        if let book = args.type.fourBitType {
            // bitsandbytes multiplies by the block's reciprocal and picks the code with its
            // kernel's decision tree (no clamp: the tree saturates at ±1).
            return book.codeBook[Int(book.code(forScaled: x * (1 / scale)))]
        }
        let clamped = Swift.min(Swift.max(x / scale + zeroPoint, codeMin), codeMax)
        if args.type == .float { return FloatBits.float(fromFP8E4M3: FloatBits.fp8E4M3(fromFloat: clamped)) }
        return clamped.rounded(.toNearestOrEven)
    }

    /// The value a code stands for.
    @inlinable
    public func value(code: Float, scale: Float, zeroPoint: Float) -> Float {
        (code - zeroPoint) * scale
    }

    /// Quantize then dequantize (what GPTQ's error feedback sees).
    @inlinable
    public func fakeQuantize(_ x: Float, scale: Float, zeroPoint: Float) -> Float {
        value(code: code(x, scale: scale, zeroPoint: zeroPoint), scale: scale, zeroPoint: zeroPoint)
    }

    /// A code as stored: the signed integer, or the E4M3 bit pattern for FP8.
    @inlinable
    public func storedCode(_ code: Float) -> Int8 {
        switch args.type {
        case .float: return Int8(bitPattern: FloatBits.fp8E4M3(fromFloat: code))
        case .nf4, .fp4: return Int8(args.type.fourBitType!.index(ofValue: code))
        case .int: return Int8(code)
        }
    }

    /// Scales and zero points of a weight (rows = output features, columns = input features),
    /// one per tensor, row, or (row, group of consecutive columns; the last may be shorter),
    /// with clipping ranges from `observer` (nil: the one `args.observer` names).
    public func findParameters(_ w: Tensor, observer: (any WeightRangeObserver)? = nil) -> QuantizationParameters {
        precondition(w.rank == 2, "findParameters needs a (out, in) matrix, got \(w.shape)")
        let observer = observer ?? args.makeWeightObserver()
        let rows = w.rows, cols = w.columns
        var p = QuantizationParameters(strategy: args.strategy, rows: rows, columns: cols,
                                       groupSize: args.effectiveGroupSize(inFeatures: cols))
        w.withUnsafeBufferPointer { src in
            if args.strategy == .tensor {
                let r = observer.range(of: src, grid: self)
                (p.scales[0], p.zeroPoints[0]) = parameters(min: r.min, max: r.max)
                return
            }
            for row in 0..<rows {
                for g in 0..<p.groupsPerRow {
                    let lo = row * cols + g * p.groupSize, hi = row * cols + Swift.min((g + 1) * p.groupSize, cols)
                    let r = observer.range(of: UnsafeBufferPointer(rebasing: src[lo..<hi]), grid: self)
                    let i = row * p.groupsPerRow + g
                    (p.scales[i], p.zeroPoints[i]) = parameters(min: r.min, max: r.max)
                }
            }
        }
        return p
    }

    /// Round-to-nearest codes of `w` with given parameters; `groupIndex` maps each input column
    /// to its group (nil: consecutive groups of `parameters.groupSize`).
    public func quantize(_ w: Tensor, parameters p: QuantizationParameters, groupIndex: [Int32]? = nil) -> QuantizedWeight {
        precondition(w.rank == 2 && w.rows == p.rows && w.columns == p.columns,
                     "quantize: weight \(w.shape) does not match parameters (\(p.rows), \(p.columns))")
        let gIdx = groupIndex ?? p.consecutiveGroupIndex()
        precondition(gIdx.count == p.columns, "groupIndex has \(gIdx.count) entries for \(p.columns) columns")
        var codes = [Int8](repeating: 0, count: w.count)
        let cols = p.columns
        w.withUnsafeBufferPointer { src in
            for row in 0..<p.rows {
                for c in 0..<cols {
                    let i = p.index(row: row, group: Int(gIdx[c]))
                    codes[row * cols + c] = storedCode(code(src[row * cols + c], scale: p.scales[i], zeroPoint: p.zeroPoints[i]))
                }
            }
        }
        return QuantizedWeight(args: args, codes: codes, parameters: p, groupIndex: gIdx)
    }

    /// Round-to-nearest (RTN): `findParameters` then `quantize`, the baseline GPTQ improves on.
    public func quantize(_ w: Tensor, observer: (any WeightRangeObserver)? = nil) -> QuantizedWeight {
        quantize(w, parameters: findParameters(w, observer: observer))
    }
}

/// Scales and zero points of one quantized weight, laid out as compressed-tensors stores them:
/// `[1]` (tensor), `[out, 1]` (channel), `[out, groups]` (group; row-major).
///
/// Why explicit: writers (GPTQ packs `[groups, out]`, compressed-tensors `[out, groups]`) and
/// GPTQ's act-order groups index the same numbers. Zero points are integer-valued Floats (0 when
/// symmetric). Failure mode: indexing with a group past `groupsPerRow` traps.
public struct QuantizationParameters: Sendable, Equatable {
    public let strategy: QuantizationArgs.Strategy
    public let rows: Int
    public let columns: Int
    /// Input columns per group (all columns for tensor and channel strategies).
    public let groupSize: Int
    public var scales: [Float]
    public var zeroPoints: [Float]

    public init(strategy: QuantizationArgs.Strategy, rows: Int, columns: Int, groupSize: Int) {
        self.strategy = strategy
        self.rows = rows
        self.columns = columns
        self.groupSize = Swift.max(groupSize, 1)
        let count = strategy == .tensor ? 1 : rows * (strategy == .group ? (columns + self.groupSize - 1) / self.groupSize : 1)
        scales = [Float](repeating: 1, count: count)
        zeroPoints = [Float](repeating: 0, count: count)
    }

    /// Groups along one row: `ceil(columns / groupSize)` for `.group`, else 1.
    public var groupsPerRow: Int { strategy == .group ? (columns + groupSize - 1) / groupSize : 1 }

    /// The stored shape of `scales` (and of unpacked zero points).
    public var scaleShape: [Int] {
        switch strategy {
        case .tensor: return [1]
        case .channel: return [rows, 1]
        case .group: return [rows, groupsPerRow]
        }
    }

    /// Position in `scales` of (row, group).
    @inlinable
    public func index(row: Int, group: Int) -> Int {
        switch strategy {
        case .tensor: return 0
        case .channel: return row
        case .group: return row * groupsPerRow + group
        }
    }

    /// g_idx without act-order: column c is in group c / groupSize (0 for tensor/channel).
    public func consecutiveGroupIndex() -> [Int32] {
        (0..<columns).map { strategy == .group ? Int32($0 / groupSize) : 0 }
    }
}

/// A weight as codes plus the parameters to read them back: the input to the GPTQ and
/// compressed-tensors writers (packing happens there, not here).
///
/// Codes are row-major `(out, in)`, signed (int4: −8…7; add 2^(b−1) for GPTQ's unsigned codes)
/// or, for FP8, E4M3 bit patterns. `groupIndex[c]` is the group of input column c (g_idx).
/// Failure mode: mixing parameters from another weight is only caught by shape.
public struct QuantizedWeight: Sendable, Equatable {
    public let args: QuantizationArgs
    public var codes: [Int8]
    public var parameters: QuantizationParameters
    public var groupIndex: [Int32]

    public init(args: QuantizationArgs, codes: [Int8], parameters: QuantizationParameters, groupIndex: [Int32]) {
        precondition(codes.count == parameters.rows * parameters.columns, "codes do not match the parameters' shape")
        self.args = args
        self.codes = codes
        self.parameters = parameters
        self.groupIndex = groupIndex
    }

    public var rows: Int { parameters.rows }
    public var columns: Int { parameters.columns }

    /// The code at (row, column) as the number it encodes before scaling.
    @inlinable
    public func codeValue(row: Int, column: Int) -> Float {
        let c = codes[row * columns + column]
        switch args.type {
        case .float: return FloatBits.float(fromFP8E4M3: UInt8(bitPattern: c))
        case .nf4, .fp4: return args.type.fourBitType!.codeBook[Int(c)]
        case .int: return Float(c)
        }
    }

    /// `(q − zero)·scale` for every weight: what an inference kernel computes.
    public func dequantized() -> Tensor {
        var out = [Float](repeating: 0, count: rows * columns)
        for row in 0..<rows {
            for c in 0..<columns {
                let i = parameters.index(row: row, group: Int(groupIndex[c]))
                out[row * columns + c] = (codeValue(row: row, column: c) - parameters.zeroPoints[i]) * parameters.scales[i]
            }
        }
        return Tensor(shape: [rows, columns], scalars: out)
    }

    /// True when g_idx is not simply column / groupSize (act-order "group"): the checkpoint must
    /// store it.
    public var needsGroupIndex: Bool { groupIndex != parameters.consecutiveGroupIndex() }
}
