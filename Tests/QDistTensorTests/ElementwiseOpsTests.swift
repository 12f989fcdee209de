import Foundation
import XCTest
@testable import QDistTensor

/// Transformer element-wise operations against float64 re-computations.
final class ElementwiseOpsTests: XCTestCase {
    func testRMSNormMatchesFloat64Reference() {
        let x = LinearAlgebraTests.random([5, 16], seed: 11)
        let w = LinearAlgebraTests.random([16], seed: 12)
        let y = x.rmsNormalized(weight: w, epsilon: 1e-5)
        for r in 0..<5 {
            let ms = (0..<16).reduce(0.0) { $0 + pow(Double(x[r, $1]), 2) } / 16
            for j in 0..<16 {
                XCTAssertEqual(Double(y[r, j]), Double(x[r, j]) / (ms + 1e-5).squareRoot() * Double(w.scalars[j]), accuracy: 1e-5)
            }
        }
    }

    func testSoftmaxAndLogSoftmaxAgreeWithFloat64() {
        var x = LinearAlgebraTests.random([4, 33], seed: 13) * 20
        x[0, 0] = 80  // large logits must not overflow
        let p = x.softmaxRows(), lp = x.logSoftmaxRows()
        for r in 0..<4 {
            let row = (0..<33).map { Double(x[r, $0]) }
            let m = row.max()!
            let z = row.reduce(0) { $0 + exp($1 - m) }
            for j in 0..<33 {
                XCTAssertEqual(Double(p[r, j]), exp(row[j] - m) / z, accuracy: 1e-6)
                XCTAssertEqual(Double(lp[r, j]), row[j] - m - log(z), accuracy: 1e-4)
            }
        }
    }

    func testSwiGLUIsSiluOfGateTimesUp() {
        let g = LinearAlgebraTests.random([3, 7], seed: 14) * 6, u = LinearAlgebraTests.random([3, 7], seed: 15)
        let y = Tensor.swiGLU(gate: g, up: u)
        let s = g.silu()
        for i in 0..<21 {
            let gd = Double(g.scalars[i])
            XCTAssertEqual(Double(y.scalars[i]), gd / (1 + exp(-gd)) * Double(u.scalars[i]), accuracy: 1e-6)
            XCTAssertEqual(Double(s.scalars[i]), gd / (1 + exp(-gd)), accuracy: 1e-6)
        }
    }

    func testArithmeticReductionsAndSlicing() {
        let a = Tensor(shape: [2, 3], scalars: [1, -5, 3, 4, 2, -6])
        let b = Tensor(repeating: 2, shape: [2, 3])
        XCTAssertEqual((a + b).scalars, [3, -3, 5, 6, 4, -4])
        XCTAssertEqual((a * b).scalars, [2, -10, 6, 8, 4, -12])
        XCTAssertEqual(a.absMax(), 6)
        XCTAssertEqual(a.minMax().min, -6)
        XCTAssertEqual(a.sum(), -1)
        XCTAssertEqual(a.rows(1..<2).scalars, [4, 2, -6])
        XCTAssertEqual(a.columns(1..<3).scalars, [-5, 3, 2, -6])
        XCTAssertEqual(a.addingRowVector(Tensor(shape: [3], scalars: [1, 1, 1])).scalars, [2, -4, 4, 5, 3, -5])
        XCTAssertEqual(Tensor.concatenateRows([a, a.rows(0..<1)]).shape, [3, 3])
        var c = a
        c.addScaled(b, alpha: -0.5)
        XCTAssertEqual(c.scalars, [0, -6, 2, 3, 1, -7])
    }

    func testStoredTensorRoundTripsThroughEveryDType() {
        let t = Tensor(shape: [2, 4], scalars: [0, 1, -2, 3.5, 96, -0.25, 7, -8])
        for dtype in DType.allCases {
            let stored = StoredTensor(t, as: dtype)
            XCTAssertEqual(stored.bytes.count, 8 * dtype.byteSize, "\(dtype)")
            let back = stored.toTensor()
            let isUnsigned = [DType.u8, .u16, .u32, .u64, .bool].contains(dtype)
            for i in 0..<8 where !isUnsigned || t.scalars[i] >= 0 {
                let x = t.scalars[i]
                let expected: Float = dtype == .bool ? (x != 0 ? 1 : 0) : (dtype.isFloatingPoint ? x : x.rounded(.toNearestOrEven))
                XCTAssertEqual(back.scalars[i], expected, "\(dtype) element \(i)")
            }
        }
        XCTAssertEqual(StoredTensor(Tensor(shape: [1], scalars: [300]), as: .i8).bytes, [127], "integers clamp")
    }
}
