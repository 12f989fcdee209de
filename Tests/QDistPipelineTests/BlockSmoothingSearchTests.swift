import QDistComm
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor
import XCTest
@testable import QDistPipeline

/// AWQ's scale search and SmoothQuant's scales against float64 re-implementations of
/// llm-compressor's formulas (FORMATS.md 10.1, 10.2) on a random block: the per-channel
/// statistics, the candidate scales, every candidate's output loss (the MLP parent through its
/// nonlinearity; down_proj through the Hessian shortcut) and the chosen candidate.
final class BlockSmoothingSearchTests: XCTestCase {
    let comm = SingleProcessCommunicator()
    var block: LlamaBlock!
    var windows: [Tensor] = []
    let args = QuantizationArgs(numBits: 4, type: .int, symmetric: false, strategy: .group, groupSize: 16)

    override func setUpWithError() throws {
        let config = RandomModelWeights.configuration(layers: 1, hidden: 32, heads: 4, kvHeads: 4, intermediate: 64)
        let weights = try LlamaBlockWeights.load(block: 0, from: InMemoryWeights(RandomModelWeights.make(for: config, seed: 21)), config: config)
        block = LlamaBlock(index: 0, weights: weights, config: config, rotary: LlamaModel.rotary(for: config))
        var rng = SeededGenerator(seed: 4)
        // Three windows with a few outlier channels, as real activations have.
        windows = (0..<3).map { _ in
            Tensor(shape: [12, 32], scalars: (0..<(12 * 32)).map { i in rng.normal() * (i % 32 < 3 ? 8 : 1) })
        }
    }

    /// The inputs of `group` on the staged forward, in window order.
    func inputs(_ group: LinearGroup) -> (LinearStageCalibration, [Tensor]) {
        var calibration = LinearStageCalibration(activations: windows)
        for g in LinearGroup.allCases.prefix(through: LinearGroup.allCases.firstIndex(of: group)!) { calibration.advance(to: g, block: block) }
        var xs: [Tensor] = []
        calibration.forEachInput(block: block) { xs.append($0) }
        return (calibration, xs)
    }

    // MARK: float64 reference

    func rows(_ t: Tensor) -> [[Double]] { (0..<t.rows).map { r in (0..<t.columns).map { Double(t.scalars[r * t.columns + $0]) } } }

    /// compressed-tensors' asymmetric group round-to-nearest, in Double.
    func fakeQuantize(_ w: [[Double]], bits: Int, group: Int) -> [[Double]] {
        let qmin = -Double(1 << (bits - 1)), qmax = Double(1 << (bits - 1)) - 1
        return w.map { row in
            var out = row
            for start in stride(from: 0, to: row.count, by: group) {
                let g = row[start..<min(start + group, row.count)]
                let lo = min(0, g.min()!), hi = max(0, g.max()!)
                var scale = (hi - lo) / (qmax - qmin)
                if scale == 0 { scale = Double(Float.ulpOfOne) }
                let zp = min(max((qmin - lo / scale).rounded(.toNearestOrEven), qmin), qmax)
                for j in g.indices {
                    let q = min(max((row[j] / scale + zp).rounded(.toNearestOrEven), qmin), qmax)
                    out[j] = (q - zp) * scale
                }
            }
            return out
        }
    }

    func matmulT(_ x: [[Double]], _ w: [[Double]]) -> [[Double]] {
        x.map { xr in w.map { wr in zip(xr, wr).reduce(0) { $0 + $1.0 * $1.1 } } }
    }

    /// llm-compressor's duo-scaling candidates from x_mean and w_mean, in Double.
    func referenceCandidates(_ xs: [Tensor], balance: [Tensor], group: Int) -> [[Double]] {
        let n = xs[0].columns
        var xSum = [Double](repeating: 0, count: n), count = 0.0
        for x in xs { for r in rows(x) { for j in 0..<n { xSum[j] += abs(r[j]) }; count += 1 } }
        let xMean = xSum.map { $0 / count }
        var wSum = [Double](repeating: 0, count: n), wRows = 0.0
        for w in balance {
            for r in rows(w) {
                for start in stride(from: 0, to: n, by: group) {
                    let m = r[start..<start + group].map(abs).max()! + 1e-6
                    for j in start..<start + group { wSum[j] += abs(r[j]) / m }
                }
                wRows += 1
            }
        }
        let wMean = wSum.map { $0 / wRows }
        let grid: [(Double, Bool)] = [(0, false)] + (0..<19).map { (Double($0) / 18, true) }
        return grid.map { r, duo in
            var s = (0..<n).map { j in max(duo ? pow(xMean[j], r) / (pow(wMean[j], 1 - r) + 1e-4) : pow(xMean[j], r), 1e-4) }
            let norm = (s.max()! * s.min()!).squareRoot()
            s = s.map { $0 / norm }
            return s
        }
    }

    func assertSearchMatchesReference(_ mapping: SmoothingMapping, parent: ([[Double]], [[[Double]]]) -> [[Double]]) throws {
        let (calibration, xs) = inputs(mapping.group)
        let balance = mapping.balance(block.weights)
        let statistic = try SequentialQuantizer.channelStatistic(.meanAbsolute, calibration: calibration, block: block,
                                                                 tokens: 36, windows: 3, communicator: comm)
        let candidates = try AWQSmoothing().candidates(statistic: statistic, balance: balance, args: balance.map { _ in args })
        let expected = referenceCandidates(xs, balance: balance.map(\.weight), group: 16)
        XCTAssertEqual(candidates.count, 20)
        for (c, e) in zip(candidates, expected) {
            for j in c.indices { XCTAssertEqual(Double(c[j]), e[j], accuracy: 1e-5 * max(1, e[j]), "\(mapping) scale \(j)") }
        }
        let losses = try SequentialQuantizer.candidateLosses(candidates, mapping: mapping, block: block, grids: balance.map { _ in SmoothingSearchGrid(args: args) },
                                                             calibration: calibration, windows: 3, tokens: 36, communicator: comm)
        let weights = balance.map { rows($0.weight) }
        let referenceLosses = expected.map { s -> Double in
            let trial = weights.map { w in
                fakeQuantize(w.map { r in r.indices.map { r[$0] * s[$0] } }, bits: 4, group: 16).map { r in r.indices.map { r[$0] / s[$0] } }
            }
            return xs.reduce(0.0) { total, x in
                let a = parent(rows(x), weights), b = parent(rows(x), trial)
                return total + zip(a, b).reduce(0) { $0 + zip($1.0, $1.1).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
            }
        }
        // The Hessian shortcut reports (2/N)·Σ; compare shapes of the loss curves.
        let ratio = losses[0] / referenceLosses[0]
        for (l, r) in zip(losses, referenceLosses) { XCTAssertEqual(l / ratio, r, accuracy: 2e-3 * r, "\(mapping) loss") }
        let chosen = losses.indices.min { losses[$0] < losses[$1] }!
        let expectedChoice = referenceLosses.indices.min { referenceLosses[$0] < referenceLosses[$1] }!
        XCTAssertEqual(chosen, expectedChoice, "\(mapping): the same candidate wins")
        XCTAssertGreaterThan(Set(losses).count, 10, "the candidates differ")
    }

    func testAWQSearchOverTheMLPParentMatchesFloat64() throws {
        try assertSearchMatchesReference(.postAttentionNormToGateUp) { x, w in
            let g = matmulT(x, w[0]), u = matmulT(x, w[1])
            let h = zip(g, u).map { zip($0, $1).map { a, b in a / (1 + exp(-a)) * b } }
            return matmulT(h, rows(self.block.weights.down.weight))
        }
    }

    func testAWQSearchOverDownProjThroughTheHessianMatchesFloat64() throws {
        try assertSearchMatchesReference(.upToDown) { x, w in self.matmulT(x, w[0]) }
    }

    func testSmoothQuantScalesFollowTheFormula() throws {
        let (calibration, xs) = inputs(.qkv)
        let range = try SequentialQuantizer.channelStatistic(.range, calibration: calibration, block: block, tokens: 36, windows: 3,
                                                              communicator: comm)
        let balance = SmoothingMapping.inputNormToQKV.balance(block.weights)
        for alpha in [0.5, 0.8] {
            let s = try SmoothQuantSmoothing(strength: .fixed(alpha), ignore: []).candidates(statistic: range, balance: balance, args: [nil, nil, nil])
            XCTAssertEqual(s.count, 1)
            for j in 0..<32 {
                let column = xs.flatMap { x in (0..<x.rows).map { Double(x.scalars[$0 * 32 + j]) } }
                let act = column.max()! - column.min()!
                let w = 2 * balance.map { l in (0..<l.outFeatures).map { abs(Double(l.weight.scalars[$0 * 32 + j])) }.max()! }.max()!
                XCTAssertEqual(Double(s[0][j]), max(pow(act, alpha) / pow(w, 1 - alpha), 1e-5), accuracy: 1e-5 * Double(s[0][j]))
            }
        }
    }

    /// `smoothing_strength: auto` for static W8A8: every α of the grid is judged with the input
    /// scale its smoothed range implies (x/s into Q(W·s) behind a static per-tensor int8
    /// quantizer) — checked against float64 on the MLP parent — and the first minimum wins.
    func testSmoothQuantAutoJudgesEachAlphaWithTheStaticInputScaleItImplies() throws {
        let mapping = SmoothingMapping.postAttentionNormToGateUp
        let (calibration, xs) = inputs(mapping.group)
        let w8 = QuantizationArgs(numBits: 8, type: .int, symmetric: true, strategy: .channel)
        let entries = mapping.group.members.map {
            QuantizationPlan.Entry(block: 0, suffix: $0, inFeatures: 32, outFeatures: 64, args: w8,
                                   inputActivations: InputActivationScheme(symmetric: true, strategy: .tensor, dynamic: false, observer: "static_minmax"))
        }
        let range = try SequentialQuantizer.channelStatistic(.range, calibration: calibration, block: block, tokens: 36, windows: 3, communicator: comm)
        let balance = mapping.balance(block.weights)
        let candidates = try SmoothQuantSmoothing(strength: .auto, ignore: []).candidates(statistic: range, balance: balance, args: [w8, w8])
        XCTAssertEqual(candidates.count, SmoothQuantSmoothing.Strength.autoGrid.count)
        let input = try XCTUnwrap(try SequentialQuantizer.candidateInputQuantizer(entries: entries, calibration: calibration, block: block, communicator: comm))
        let losses = try SequentialQuantizer.candidateLosses(candidates, mapping: mapping, block: block, grids: [SmoothingSearchGrid(args: w8), SmoothingSearchGrid(args: w8)], calibration: calibration,
                                                             windows: 3, tokens: 36, communicator: comm, inputQuantizer: input)
        let weights = balance.map { rows($0.weight) }
        let down = rows(block.weights.down.weight)
        func mlp(_ x: [[Double]], _ w: [[[Double]]]) -> [[Double]] {
            let g = matmulT(x, w[0]), u = matmulT(x, w[1])
            return matmulT(zip(g, u).map { zip($0, $1).map { a, b in a / (1 + exp(-a)) * b } }, down)
        }
        let reference = candidates.map { sf -> Double in
            let s = sf.map(Double.init)
            // Static symmetric int8 scale from the smoothed extremes over every token.
            let smoothed = xs.map { rows($0).map { r in r.indices.map { r[$0] / s[$0] } } }
            let absMax = smoothed.flatMap { $0.flatMap { $0 } }.map(abs).max()!
            // The largest |x/s| lands exactly on ±127.5 codes, a rounding tie: the codes of x
            // are rounded in float32 as the model does, so the tie breaks the same way.
            let scale = Double(Float(absMax / 127.5))
            func code(_ v: Double) -> Double { Double((Float(v) / Float(scale)).rounded(.toNearestOrEven)) }
            let trial = weights.map { w in
                // Per-channel symmetric int8 of W·s. A row's largest |w·s| sits exactly on ±127.5
                // codes (a tie), so, as for x, the codes are rounded in float32 as the quantizer does.
                w.map { r -> [Double] in
                    let row = r.indices.map { Float(r[$0]) * sf[$0] }
                    let sc = max(row.map(abs).max()! / 127.5, Float.ulpOfOne)
                    return row.map { Double(min(max(($0 / sc).rounded(.toNearestOrEven), -128), 127) * sc) }
                }
            }
            return zip(xs, smoothed).reduce(0.0) { total, pair in
                let q = pair.1.map { $0.map { min(max(code($0), -128), 127) * scale } }
                let a = mlp(rows(pair.0), weights), b = mlp(q, trial)
                return total + zip(a, b).reduce(0) { $0 + zip($1.0, $1.1).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
            }
        }
        for (l, r) in zip(losses, reference) { XCTAssertEqual(l, r, accuracy: 2e-3 * r, "loss with input quantization") }
        XCTAssertEqual(losses.indices.min { losses[$0] < losses[$1] }, reference.indices.min { reference[$0] < reference[$1] })
    }
}

/// The smoothing search at shapes where OpenBLAS threads its products (hidden 256, windows of
/// 64 tokens): every statistic and every candidate's loss has the same bits for 1, 2 and 3 BLAS
/// threads, so the chosen scales cannot depend on the thread count.
final class BlockSmoothingThreadIndependenceTests: XCTestCase {
    func testSearchLossesHaveTheSameBitsForAnyBLASThreadCount() throws {
        let comm = SingleProcessCommunicator()
        let config = RandomModelWeights.configuration(layers: 1, hidden: 256, heads: 4, kvHeads: 2, intermediate: 512)
        let weights = try LlamaBlockWeights.load(block: 0, from: InMemoryWeights(RandomModelWeights.make(for: config, seed: 5)), config: config)
        let block = LlamaBlock(index: 0, weights: weights, config: config, rotary: LlamaModel.rotary(for: config))
        var rng = SeededGenerator(seed: 8)
        let windows = (0..<6).map { _ in Tensor(shape: [64, 256], scalars: (0..<(64 * 256)).map { i in rng.normal() * (i % 256 < 5 ? 6 : 1) }) }
        let args = QuantizationArgs(numBits: 4, type: .int, symmetric: false, strategy: .group, groupSize: 32)
        func run() throws -> [[Double]] {
            var results: [[Double]] = []
            for mapping in SmoothingMapping.allCases {
                var calibration = LinearStageCalibration(activations: windows)
                for g in LinearGroup.allCases.prefix(through: LinearGroup.allCases.firstIndex(of: mapping.group)!) {
                    calibration.advance(to: g, block: block)
                }
                let statistic = try SequentialQuantizer.channelStatistic(.meanAbsolute, calibration: calibration, block: block,
                                                                         tokens: 6 * 64, windows: 6, communicator: comm)
                let balance = mapping.balance(block.weights)
                let candidates = try AWQSmoothing().candidates(statistic: statistic, balance: balance, args: balance.map { _ in args })
                let losses = try SequentialQuantizer.candidateLosses(candidates, mapping: mapping, block: block,
                                                                     grids: balance.map { _ in SmoothingSearchGrid(args: args) },
                                                                     calibration: calibration, windows: 6, tokens: 6 * 64, communicator: comm)
                results.append(statistic)
                results.append(losses)
            }
            return results
        }
        let threads = BLASThreads.current
        defer { BLASThreads.set(threads) }
        BLASThreads.set(1)
        let one = try run()
        for t in [2, 3] {
            BLASThreads.set(t)
            let other = try run()
            for (i, (a, b)) in zip(one, other).enumerated() {
                XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "\(t) threads: \(SmoothingMapping.allCases[i / 2]) \(i % 2 == 0 ? "statistic" : "losses")")
            }
        }
    }
}
