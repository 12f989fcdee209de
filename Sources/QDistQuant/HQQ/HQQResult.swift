import QDistTensor

/// What `HQQSolver.quantize` returns: unsigned codes with one float scale and one float zero
/// point per group, laid out as the hqq library stores them for `axis=1`, plus the solver's
/// error record.
///
/// Why its own type and not `QuantizedWeight` directly: HQQ's zero points are fractional (the
/// optimiser moves them off the integer grid), and its dequantization is
/// `(code − zero)·scale` with unsigned codes. `quantizedWeight()` converts to qdist's signed
/// convention for the pipeline. Failure mode: checkpoint writers that store zero points as
/// integers round the fractional HQQ zeros and lose part of what the solver gained.
public struct HQQResult: Sendable, Equatable {
    /// Output features.
    public let rows: Int
    /// Input features.
    public let columns: Int
    public let nbits: Int
    /// Consecutive input columns per group; divides `columns`.
    public let groupSize: Int
    /// (rows, columns) row-major, each in `0...2^nbits − 1` (the library's `W_q`).
    public let codes: [UInt8]
    /// (rows, columns / groupSize): `1/s`, the library's stored `scale`.
    public let scales: [Float]
    /// (rows, columns / groupSize): the library's stored `zero`, in code units.
    public let zeros: [Float]
    /// `mean|W − W_r|` over the whole weight measured at each step (with that step's incoming
    /// zero points); its length is the number of steps run.
    public let errorHistory: [Double]
    /// True when a step's error was not below the best before it (the library's `break`).
    public let stoppedEarly: Bool

    public init(rows: Int, columns: Int, nbits: Int, groupSize: Int, codes: [UInt8], scales: [Float],
                zeros: [Float], errorHistory: [Double], stoppedEarly: Bool) {
        self.rows = rows
        self.columns = columns
        self.nbits = nbits
        self.groupSize = groupSize
        self.codes = codes
        self.scales = scales
        self.zeros = zeros
        self.errorHistory = errorHistory
        self.stoppedEarly = stoppedEarly
    }

    /// Groups along one row.
    public var groupsPerRow: Int { columns / groupSize }

    /// Proximal steps the solver ran.
    public var steps: Int { errorHistory.count }

    /// `(code − zero)·scale` for every weight, (rows, columns): the library's `dequantize`.
    public func dequantized() -> Tensor {
        var out = [Float](repeating: 0, count: rows * columns)
        let gs = groupSize
        out.withUnsafeMutableBufferPointer { dst in
            for g in 0..<scales.count {
                let scale = scales[g], zero = zeros[g]
                for j in g * gs..<(g + 1) * gs { dst[j] = (Float(codes[j]) - zero) * scale }
            }
        }
        return Tensor(shape: [rows, columns], scalars: out)
    }

    /// The grid in compressed-tensors terms: int, asymmetric, grouped.
    public var quantizationArgs: QuantizationArgs {
        QuantizationArgs(numBits: nbits, type: .int, symmetric: false, strategy: .group, groupSize: groupSize)
    }

    /// The same weight in qdist's signed convention: `code − 2^(b−1)` and `zero − 2^(b−1)` (a
    /// fractional Float), so `(code − zero)·scale` is unchanged up to float rounding of the
    /// shifted zero. Failure mode: see the type's note on integer zero-point writers.
    public func quantizedWeight() -> QuantizedWeight {
        let half = 1 << (nbits - 1)
        var p = QuantizationParameters(strategy: .group, rows: rows, columns: columns, groupSize: groupSize)
        p.scales = scales
        p.zeroPoints = zeros.map { $0 - Float(half) }
        let signed = codes.map { Int8(Int($0) - half) }
        return QuantizedWeight(args: quantizationArgs, codes: signed, parameters: p,
                               groupIndex: p.consecutiveGroupIndex())
    }
}
