import Foundation
import QDistTensor

/// The integer grid on which `HessianAccumulator` sums `2·XᵀX` exactly, fixed from what every
/// rank agrees on *before* any batch is folded in: per input column an exponent e_i with
/// |x_i| ≤ 2^e_i over all calibration tokens of all ranks (the Allreduce(MAX) of each rank's
/// `foldAbsMax`), and t with 2·(all tokens) < 2^t.
///
/// Then |Σ 2·x_i·x_j| < 2^(t + e_i + e_j) (Cauchy–Schwarz per token), so entry (i, j) in units
/// of 2^(e_i + e_j + t − 61) stays below 2^61 — an Int64 sum cannot overflow, in any order —
/// while keeping 61 bits relative to its own bound (a quiet channel is not drowned by a loud
/// one, as it would be with one scale per matrix). All factors are powers of two, so the
/// conversions are exact but for the one rounding to an integer.
public struct HessianFixedPointScale: Sendable, Equatable {
    /// Bits below the bound of every entry.
    public static let fractionBits = 61

    /// e_i per column: |x_i| ≤ 2^e_i.
    public let columnExponents: [Int]
    /// t: 2·(all tokens) < 2^t.
    public let tokenExponent: Int
    public var columns: Int { columnExponents.count }

    /// The grid for inputs whose per-column absolute maxima over *every* rank are `columnAbsMax`
    /// and that hold `totalTokens` tokens in all. A non-finite maximum (a NaN or infinite
    /// activation) gets the largest exponent; the batch itself then poisons the Hessian.
    public init(columnAbsMax: [Float], totalTokens: Int) {
        columnExponents = columnAbsMax.map { m in
            guard m.isFinite else { return 128 }
            guard m > 0 else { return -126 }  // a dead column: its entries are exactly 0
            return Int(m.exponent) + 1  // m < 2^(⌊log2 m⌋ + 1)
        }
        let twiceTokens = max(2 * totalTokens, 1)
        tokenExponent = Int.bitWidth - twiceTokens.leadingZeroBitCount
    }

    /// 2^(61 − t − e_i) per row i: a Float32 product entry times `rowScales[i]·columnScales[j]`
    /// is its fixed-point value.
    public var rowScales: [Double] {
        columnExponents.map { Self.powerOfTwo(Self.fractionBits - tokenExponent - $0) }
    }

    /// 2^(−e_j) per column j.
    public var columnScales: [Double] { columnExponents.map { Self.powerOfTwo(-$0) } }

    /// 2^(e_i + t − 61): the inverse of `rowScales`.
    public var rowUnits: [Double] {
        columnExponents.map { Self.powerOfTwo($0 + tokenExponent - Self.fractionBits) }
    }

    /// 2^(e_j): the inverse of `columnScales`.
    public var columnUnits: [Double] { columnExponents.map { Self.powerOfTwo($0) } }

    /// Raises `absMax[c]` to the largest |x[·, c]| of `inputs` (any rank, columns last); a NaN
    /// counts as infinite.
    public static func foldAbsMax(_ inputs: Tensor, into absMax: inout [Float]) {
        let n = inputs.columns
        precondition(absMax.count == n, "absmax of \(absMax.count) columns for inputs with \(n)")
        inputs.withUnsafeBufferPointer { x in
            absMax.withUnsafeMutableBufferPointer { m in
                for r in 0..<(n == 0 ? 0 : x.count / n) {
                    let row = r * n
                    for c in 0..<n {
                        let a = abs(x[row + c])
                        if !(a <= m[c]) { m[c] = a.isNaN ? .infinity : a }
                    }
                }
            }
        }
    }

    static func powerOfTwo(_ e: Int) -> Double { Double(sign: .plus, exponent: e, significand: 1) }
}
