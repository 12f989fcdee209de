import Foundation

/// Exact, order-free sums of floating-point values: each value is rounded once onto a fixed
/// grid (2^−fractionBits) and kept as `limbs` signed 40-bit digits in Int64, so sums — local,
/// or through MPI's Allreduce / Reduce_scatter(SUM) on MPI_INT64_T — are integer additions and
/// give the same bits whatever the order, the split across ranks or the reduction tree.
///
/// Why: data-parallel training adds every rank's micro-batch gradients; a Float32 Allreduce
/// adds them in an order that depends on the number of ranks, so the losses of a run would
/// depend on P in their last bits and drift from there. The grid is data-independent (no extra
/// collective to agree on a scale): gradients use 3 limbs at 2^−80 (|g| < 2^40, values below
/// 2^−56 keep fewer than 24 bits, far below anything that moves a weight), squared norms 6 limbs
/// at 2^−160. A value outside the range or non-finite is reported, never wrapped.
public struct FixedPointLimbs: Sendable, Equatable {
    public static let limbBits = 40
    /// Digits per value.
    public let limbs: Int
    /// The grid step is 2^−fractionBits.
    public let fractionBits: Int

    /// Gradients: |g| < 2^40 on a 2^−80 grid.
    public static let gradients = FixedPointLimbs(limbs: 3, fractionBits: 80)
    /// Sums of squares: < 2^80 on a 2^−160 grid (a Float32 squared is exact in Double).
    public static let squares = FixedPointLimbs(limbs: 6, fractionBits: 160)

    public init(limbs: Int, fractionBits: Int) {
        precondition(limbs >= 1 && limbs * Self.limbBits <= 1000, "\(limbs) limbs")
        self.limbs = limbs
        self.fractionBits = fractionBits
    }

    /// Adds `value` onto the digits at `digits[0..<limbs]` (least significant first). Returns
    /// false, adding nothing, when the value is not finite or outside the grid's range.
    @inline(__always)
    public func add(_ value: Double, to digits: UnsafeMutablePointer<Int64>) -> Bool {
        var x = (value * Self.power(fractionBits)).rounded()
        guard x.isFinite, abs(x) < Self.power(limbs * Self.limbBits - 1) else { return false }
        // From the top digit down; truncation toward zero gives every digit x's sign and
        // |digit| < 2^40; each subtraction is exact (it clears the leading bits of x).
        for k in stride(from: limbs - 1, through: 1, by: -1) {
            let unit = Self.power(k * Self.limbBits)
            let d = (x / unit).rounded(.towardZero)
            x -= d * unit
            digits[k] &+= Int64(d)
        }
        digits[0] &+= Int64(x)
        return true
    }

    /// The value of digits whose sums may have outgrown 40 bits: carries are propagated upward
    /// (exact integer work), then the digits are combined from the top, rounding the same way
    /// wherever the same digits are combined.
    public func value(of digits: UnsafePointer<Int64>) -> Double {
        var d = (0..<limbs).map { digits[$0] }
        for k in 0..<(limbs - 1) {
            let carry = d[k] >> Int64(Self.limbBits)  // floor division by 2^40
            d[k] -= carry << Int64(Self.limbBits)
            d[k + 1] &+= carry
        }
        var v = 0.0
        for k in stride(from: limbs - 1, through: 0, by: -1) { v += Double(d[k]) * Self.power(k * Self.limbBits) }
        return v * Self.power(-fractionBits)
    }

    /// Adds every element of `values` onto its digits (`digits` holds `limbs` per element).
    /// Returns false when some element was non-finite or out of range (it added nothing).
    public func add(_ values: UnsafeBufferPointer<Float>, to digits: UnsafeMutableBufferPointer<Int64>) -> Bool {
        precondition(digits.count == values.count * limbs, "\(digits.count) digits for \(values.count) values of \(limbs) limbs")
        var ok = true
        for i in values.indices where values[i] != 0 {
            if !add(Double(values[i]), to: digits.baseAddress! + i * limbs) { ok = false }
        }
        return ok
    }

    /// The Float32 values of `digits` (`limbs` per element).
    public func floats(_ digits: [Int64]) -> [Float] {
        precondition(digits.count % limbs == 0, "\(digits.count) digits are not whole values of \(limbs) limbs")
        return digits.withUnsafeBufferPointer { p in
            (0..<(digits.count / limbs)).map { Float(value(of: p.baseAddress! + $0 * limbs)) }
        }
    }

    @inline(__always)
    static func power(_ e: Int) -> Double { Double(sign: .plus, exponent: e, significand: 1) }
}
