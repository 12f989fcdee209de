import QDistQuant
import QDistTensor
import XCTest

/// The original AWQ's clip search against a float64 re-implementation of llm-awq's
/// `auto_clip_layer` (with every token instead of 512 sampled ones): per row and group, the
/// shrink whose quantized output error Σ_tokens (x_g·(q_g − w_g))² is smallest, computed
/// directly from the tokens rather than through the Hessian as qdist does.
final class AWQClipSearchTests: XCTestCase {
    func testChosenClipsMatchADirectFloat64Search() throws {
        var rng = SeededGenerator(seed: 17)
        let (rows, columns, tokens, size) = (12, 48, 80, 16)
        // Heavy-tailed weights so that clipping pays off for some groups and not for others.
        let w = Tensor(shape: [rows, columns], scalars: (0..<(rows * columns)).map { _ in
            let v = rng.normal()
            return abs(v) > 2 ? v * 3 : v
        })
        let x = (0..<tokens).map { _ in (0..<columns).map { j in Double(rng.normal()) * (j % 7 == 0 ? 4 : 1) } }
        var hValues = [Float](repeating: 0, count: columns * columns)
        for a in 0..<columns { for b in 0..<columns { hValues[a * columns + b] = Float(x.reduce(0) { $0 + $1[a] * $1[b] }) } }
        let args = QuantizationArgs(numBits: 4, type: .int, symmetric: false, strategy: .group, groupSize: size)
        let clipped = try AWQClipSearch.clipped(w, hessian: Tensor(shape: [columns, columns], scalars: hValues), args: args)

        var expected = w.scalars
        var shrunk = 0
        for r in 0..<rows {
            for g in 0..<(columns / size) {
                let range = (g * size)..<((g + 1) * size)
                let group = range.map { w.scalars[r * columns + $0] }
                let original = group.map(abs).max()!
                var best = (error: Double.infinity, limit: original)
                for i in 0..<10 {
                    let limit = original * (1 - Float(i) / 20)
                    let c = group.map { min(max($0, -limit), limit) }
                    // compressed-tensors' asymmetric 4-bit grid (codes rounded in float32, as any
                    // float32 quantizer does: the extremes sit on exact code ties).
                    let lo = min(c.min()!, 0), hi = max(c.max()!, 0)
                    let scale = max((hi - lo) / 15, Float.ulpOfOne)
                    let zero = min(max(-8 - lo / scale, -8), 7).rounded(.toNearestOrEven)
                    let q = c.map { (min(max(($0 / scale + zero).rounded(.toNearestOrEven), -8), 7) - zero) * scale }
                    let error = x.reduce(0.0) { total, t in
                        let d = range.enumerated().reduce(0.0) { $0 + t[$1.element] * (Double(q[$1.offset]) - Double(group[$1.offset])) }
                        return total + d * d
                    }
                    if error < best.error { best = (error, limit) }
                }
                if best.limit < original { shrunk += 1 }
                for j in range { expected[r * columns + j] = min(max(w.scalars[r * columns + j], -best.limit), best.limit) }
            }
        }
        XCTAssertGreaterThan(shrunk, 0, "some groups are clipped")
        XCTAssertLessThan(shrunk, rows * columns / size, "and some are not")
        XCTAssertEqual(clipped.scalars, expected)
    }
}
