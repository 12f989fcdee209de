import Foundation
import QDistTensor

/// cos and sin of every (position, frequency) pair up to some length, computed once per training
/// step and shared by every block and both passes (a block applies RoPE six times a step).
struct RotaryTable: Sendable {
    let half: Int
    let positions: Int
    let cosines: [Float]  // (positions, half)
    let sines: [Float]  // (positions, half)

    /// The same Double angle and Float rounding as `RotaryEmbedding.apply(to:heads:positionOffset:)`.
    init(_ rotary: RotaryEmbedding, positions: Int) {
        half = rotary.headDim / 2
        self.positions = positions
        var c = [Float](repeating: 0, count: positions * half), s = c
        for t in 0..<positions {
            for i in 0..<half {
                let angle = Double(t) * rotary.inverseFrequencies[i]
                c[t * half + i] = Float(cos(angle))
                s[t * half + i] = Float(sin(angle))
            }
        }
        cosines = c
        sines = s
    }
}

extension RotaryEmbedding {
    /// Rotates the rows of several sequences packed one after another in x (rows, heads·headDim):
    /// row `segment.lowerBound + t` sits at position t. With `inverse`, rotates by −angle instead,
    /// which is the backward of the rotation (a rotation's transpose is its inverse), so
    /// dL/dq = R(−θ)·dL/dq_rotated.
    ///
    /// The forward arithmetic is `apply(to:heads:positionOffset:)`'s, so packed training and
    /// single-sequence eval agree to the bit.
    public func apply(to x: inout Tensor, heads: Int, segments: [Range<Int>], inverse: Bool = false) {
        apply(to: &x, heads: heads, segments: segments, inverse: inverse,
              table: RotaryTable(self, positions: segments.map(\.count).max() ?? 0))
    }

    func apply(to x: inout Tensor, heads: Int, segments: [Range<Int>], inverse: Bool, table: RotaryTable) {
        let half = headDim / 2, width = heads * headDim, rows = x.rows
        precondition(x.columns == width, "rotary: \(x.shape) is not (tokens, \(heads)×\(headDim))")
        precondition(segments.allSatisfy { $0.lowerBound >= 0 && $0.upperBound <= rows && $0.count <= table.positions },
                     "rotary: segments \(segments) outside \(rows) rows or \(table.positions) positions")
        let sign: Float = inverse ? -1 : 1
        x.withUnsafeMutableBufferPointer { p in
            table.cosines.withUnsafeBufferPointer { cosines in
                table.sines.withUnsafeBufferPointer { sines in
                    for segment in segments {
                        for (t, row) in segment.enumerated() {
                            for h in 0..<heads {
                                let base = row * width + h * headDim
                                for i in 0..<half {
                                    let c = cosines[t * half + i], s = sign * sines[t * half + i]
                                    let a = p[base + i], b = p[base + i + half]
                                    p[base + i] = a * c - b * s
                                    p[base + i + half] = b * c + a * s
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
