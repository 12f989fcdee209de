import XCTest
import QDistTensor
@testable import QDistQuant

/// GPTQSolver against round-to-nearest and against the float64 port of gptq's fasterquant.
final class GPTQSolverTests: XCTestCase {
    private func layer(rows: Int, columns: Int, tokens: Int, seed: UInt64) -> (w: Tensor, x: Tensor, h: Tensor) {
        let w = QuantTestData.gaussian(rows, columns, std: 0.02, seed: seed, outlierFraction: 0.002, outlierScale: 6)
        let x = QuantTestData.correlatedInputs(tokens: tokens, columns: columns, seed: seed + 100)
        return (w, x, QuantTestData.hessian(x))
    }

    private func double(_ t: Tensor) -> [[Double]] {
        (0..<t.rows).map { r in (0..<t.columns).map { Double(t[r, $0]) } }
    }

    /// Runs both implementations and checks codes (≥ 99.9 % equal), loss (1e-3 relative), g_idx.
    private func assertMatchesReference(_ w: Tensor, _ h: Tensor, args: QuantizationArgs, reference: ReferenceGPTQSettings,
                                        groupParameters: GPTQSolver.GroupParameters = .dynamic, blockSize: Int = 128,
                                        file: StaticString = #filePath, line: UInt = #line) throws {
        let label = "\(args.strategy) gs \(args.groupSize ?? 0) actorder \(args.actorder?.rawValue ?? "none") \(groupParameters) block \(blockSize)"
        let result = try GPTQSolver.quantizeWeight(w, hessian: h, args: args, blockSize: blockSize,
                                                   groupParameters: groupParameters)
        let ref = ReferenceGPTQ.run(w: double(w), h: double(h), reference)
        let refCodes = ref.codes.flatMap { $0 }.map { Int8($0) }
        let agreement = QuantTestData.agreement(result.codes, refCodes)
        XCTAssertGreaterThanOrEqual(agreement, 0.999, "code agreement \(agreement): \(label)", file: file, line: line)
        XCTAssertEqual(result.loss, ref.loss, accuracy: 1e-3 * ref.loss, "loss: \(label)", file: file, line: line)
        XCTAssertEqual(result.gIdx.map(Int.init), ref.gIdx, "g_idx: \(label)", file: file, line: line)
        // Codes, parameters and g_idx describe exactly the weight the solver computed with.
        XCTAssertEqual(result.weight.dequantized(), result.dequantized, "dequantized: \(label)", file: file, line: line)
    }

    func testWithIdentityHessianGPTQEqualsRoundToNearestExactly() throws {
        let w = QuantTestData.gaussian(40, 200, seed: 1, outlierFraction: 0.01)
        let h = Tensor.identity(200)
        let configs: [QuantizationArgs] = [
            QuantizationArgs(numBits: 4, strategy: .group, groupSize: 64),
            QuantizationArgs(numBits: 4, symmetric: false, strategy: .group, groupSize: 32),
            QuantizationArgs(numBits: 8, strategy: .channel),
            QuantizationArgs(numBits: 3, symmetric: false, strategy: .tensor),
        ]
        for args in configs {
            let gptq = try GPTQSolver.quantizeWeight(w, hessian: h, args: args, blockSize: 48)
            let rtn = try QuantizationGrid(args).quantize(w)
            XCTAssertEqual(gptq.codes, rtn.codes, "\(args.strategy) \(args.numBits)-bit")
            XCTAssertEqual(gptq.weight.parameters, rtn.parameters)
            XCTAssertEqual(gptq.dequantized, rtn.dequantized())
        }
    }

    func testMatchesTheFloat64ReferencePortOnACorrelatedHessian() throws {
        let (w, _, h) = layer(rows: 128, columns: 256, tokens: 1024, seed: 2)
        try assertMatchesReference(w, h, args: .w4a16(groupSize: 64),
                                   reference: ReferenceGPTQSettings(strategy: .group(64)))
        try assertMatchesReference(w, h, args: QuantizationArgs(numBits: 4, symmetric: false, strategy: .channel),
                                   reference: ReferenceGPTQSettings(symmetric: false, strategy: .channel))
    }

    func testOutputErrorIsBelowRoundToNearestOnTheCalibrationInputs() throws {
        let (w, x, h) = layer(rows: 96, columns: 192, tokens: 768, seed: 3)
        let configs: [QuantizationArgs] = [
            .w4a16(groupSize: 64),
            QuantizationArgs(numBits: 3, symmetric: false, strategy: .channel, actorder: .static),
            QuantizationArgs(numBits: 4, strategy: .group, groupSize: 32, observer: .mse, actorder: .group),
            QuantizationArgs(numBits: 8, type: .float, strategy: .channel),
        ]
        for args in configs {
            let gptq = try GPTQSolver.quantizeWeight(w, hessian: h, args: args)
            let rtn = try QuantizationGrid(args).quantize(w).dequantized()
            let eGPTQ = QuantTestData.outputError(w, gptq.dequantized, x), eRTN = QuantTestData.outputError(w, rtn, x)
            XCTAssertLessThan(eGPTQ, 0.9 * eRTN, "\(args.type) \(args.numBits)-bit \(args.strategy): GPTQ \(eGPTQ) vs RTN \(eRTN)")
        }
    }

    func testActOrderStaticAndGroupAndAShorterLastGroupMatchTheReference() throws {
        // 200 columns: groups of 48 leave a last group of 8, and 48 does not divide the block.
        let (w, _, h) = layer(rows: 64, columns: 200, tokens: 800, seed: 4)
        let gs = 48
        try assertMatchesReference(w, h, args: QuantizationArgs(numBits: 4, strategy: .group, groupSize: gs, actorder: .static),
                                   reference: ReferenceGPTQSettings(strategy: .group(gs), actOrder: .weight))
        try assertMatchesReference(w, h, args: QuantizationArgs(numBits: 4, strategy: .group, groupSize: gs, actorder: .group),
                                   reference: ReferenceGPTQSettings(strategy: .group(gs), actOrder: .group))
        try assertMatchesReference(w, h, args: QuantizationArgs(numBits: 4, symmetric: false, strategy: .group, groupSize: gs,
                                                                actorder: .group),
                                   reference: ReferenceGPTQSettings(symmetric: false, strategy: .group(gs), actOrder: .group,
                                                                    staticGroups: true),
                                   groupParameters: .static)
        try assertMatchesReference(w, h, args: QuantizationArgs(numBits: 4, strategy: .group, groupSize: gs),
                                   reference: ReferenceGPTQSettings(strategy: .group(gs), staticGroups: true, blockSize: 32),
                                   groupParameters: .static, blockSize: 32)
        try assertMatchesReference(w, h, args: QuantizationArgs(numBits: 2, symmetric: false, strategy: .group, groupSize: gs),
                                   reference: ReferenceGPTQSettings(bits: 2, symmetric: false, strategy: .group(gs), blockSize: 64),
                                   blockSize: 64)
        try assertMatchesReference(w, h, args: QuantizationArgs(numBits: 8, strategy: .tensor, actorder: .static),
                                   reference: ReferenceGPTQSettings(bits: 8, strategy: .tensor, actOrder: .weight))
    }

    func testActOrderGroupRecordsANonMonotonicGIdxWithFullGroups() throws {
        let (w, _, h) = layer(rows: 32, columns: 128, tokens: 512, seed: 5)
        let r = try GPTQSolver.quantizeWeight(w, hessian: h, args: QuantizationArgs(numBits: 4, strategy: .group, groupSize: 32,
                                                                                    actorder: .group))
        XCTAssertTrue(r.weight.needsGroupIndex)
        XCTAssertNotNil(r.order)
        for g in 0..<4 { XCTAssertEqual(r.gIdx.filter { $0 == g }.count, 32) }
        // Column processed first (largest H_ii) is in group 0.
        XCTAssertEqual(r.gIdx[r.order![0]], 0)
        let s = try GPTQSolver.quantizeWeight(w, hessian: h, args: QuantizationArgs(numBits: 4, strategy: .group, groupSize: 32,
                                                                                    actorder: .static))
        XCTAssertFalse(s.weight.needsGroupIndex)
    }

    /// After 2:4 pruning, GPTQ with `preservingZeros` never updates a zero, so every pruned
    /// weight quantizes to exactly 0 — matching the reference with masked updates (llm-compressor
    /// ≤ 0.12) — while plain GPTQ refills some of them.
    func testPreservingZerosKeepsAPrunedPatternAndMatchesTheMaskedReference() throws {
        var (w, _, h) = layer(rows: 48, columns: 128, tokens: 512, seed: 8)
        for r in 0..<48 { for g in stride(from: 0, to: 128, by: 4) { w[r, g + (r % 3)] = 0; w[r, g + 3] = 0 } }
        for (args, reference) in [(QuantizationArgs(numBits: 4, symmetric: false, strategy: .group, groupSize: 32),
                                   ReferenceGPTQSettings(symmetric: false, strategy: .group(32), blockSize: 32, preserveZeros: true)),
                                  (QuantizationArgs(numBits: 8, strategy: .channel),
                                   ReferenceGPTQSettings(bits: 8, strategy: .channel, blockSize: 32, preserveZeros: true))] {
            // Blocks of 32 over 128 columns: the in-block and the lazy trailing updates both run.
            let masked = try GPTQSolver.quantizeWeight(w, hessian: h, args: args, blockSize: 32, preservingZeros: true)
            let ref = ReferenceGPTQ.run(w: double(w), h: double(h), reference)
            XCTAssertGreaterThanOrEqual(QuantTestData.agreement(masked.codes, ref.codes.flatMap { $0 }.map { Int8($0) }), 0.999)
            XCTAssertEqual(masked.loss, ref.loss, accuracy: 1e-3 * ref.loss)
            let zeros = (0..<w.count).filter { w.scalars[$0] == 0 }
            XCTAssertEqual(zeros.count, 48 * 64)
            XCTAssertTrue(zeros.allSatisfy { masked.dequantized.scalars[$0] == 0 }, "every pruned weight stays 0")
            let plain = try GPTQSolver.quantizeWeight(w, hessian: h, args: args, blockSize: 32)
            XCTAssertGreaterThan(zeros.filter { plain.dequantized.scalars[$0] != 0 }.count, 100, "unmasked GPTQ refills zeros")
        }
    }

    /// SparseGPT and GPTQ in one pass (the original sparsegpt code's quantizer inside the
    /// pruning loop): the masks follow SparseGPT's timing, a pruned weight is the grid's zero,
    /// and codes and loss match the Float64 loop; 2:4 holds on every row and unstructured
    /// prunes at least half of every block slab.
    func testPruningInTheSamePassMatchesTheReferenceAndKeepsThePattern() throws {
        let (w, _, h) = layer(rows: 48, columns: 128, tokens: 512, seed: 11)
        for (settings, reference) in [(SparseGPT.Settings(n: 2, m: 4), (sparsity: 0.0, n: 2, m: 4)),
                                      (SparseGPT.Settings(sparsity: 0.5), (sparsity: 0.5, n: 0, m: 0))] {
            let args = QuantizationArgs(numBits: 4, symmetric: false, strategy: .group, groupSize: 32)
            let r = try GPTQSolver.quantizeWeight(w, hessian: h, args: args, blockSize: 32, pruning: settings)
            var ref = ReferenceGPTQSettings(symmetric: false, strategy: .group(32), blockSize: 32)
            ref.prune = reference
            let expected = ReferenceGPTQ.run(w: double(w), h: double(h), ref)
            XCTAssertGreaterThanOrEqual(QuantTestData.agreement(r.codes, expected.codes.flatMap { $0 }.map { Int8($0) }), 0.998, "\(settings)")
            XCTAssertEqual(r.loss, expected.loss, accuracy: 2e-3 * expected.loss, "\(settings)")
            let q = r.dequantized.scalars
            if settings.m > 0 {
                for row in 0..<48 {
                    for g in stride(from: 0, to: 128, by: 4) {
                        XCTAssertGreaterThanOrEqual((g..<g + 4).filter { q[row * 128 + $0] == 0 }.count, 2, "row \(row) inputs \(g)…")
                    }
                }
            } else {
                for a in stride(from: 0, to: 128, by: 32) {
                    let zeros = (0..<48).reduce(0) { n, row in n + (a..<a + 32).filter { q[row * 128 + $0] == 0 }.count }
                    XCTAssertGreaterThanOrEqual(zeros, 48 * 16 + 1, "block at \(a)")
                }
            }
        }
        let actOrder = QuantizationArgs(numBits: 4, strategy: .group, groupSize: 32, actorder: .static)
        XCTAssertThrowsError(try GPTQSolver.quantizeWeight(w, hessian: h, args: actOrder, pruning: SparseGPT.Settings(n: 2, m: 4))) {
            XCTAssertTrue("\($0)".contains("no actorder"), "\($0)")
        }
    }

    func testDeadColumnsAreZeroedCountedAndMatchTheReference() throws {
        var (w, x, _) = layer(rows: 48, columns: 96, tokens: 384, seed: 6)
        for t in 0..<x.rows { for c in [0, 17, 95] { x[t, c] = 0 } }
        let h = QuantTestData.hessian(x)
        let r = try GPTQSolver.quantizeWeight(w, hessian: h, args: .w4a16(groupSize: 32))
        XCTAssertEqual(r.deadColumns, 3)
        for row in 0..<48 { for c in [0, 17, 95] { XCTAssertEqual(r.dequantized[row, c], 0) } }
        try assertMatchesReference(w, h, args: QuantizationArgs(numBits: 4, strategy: .group, groupSize: 32, actorder: .group),
                                   reference: ReferenceGPTQSettings(strategy: .group(32), actOrder: .group))
        w[0, 0] = .nan
        XCTAssertThrowsError(try GPTQSolver.quantizeWeight(w, hessian: h, args: .w4a16(groupSize: 32))) {
            XCTAssertEqual($0 as? GPTQError, .nonFinite("weight"))
        }
    }

    /// A budget's candidates solved together share one factorization; each result must still be
    /// bit for bit the solve of that candidate alone (dead columns, act-order static and group,
    /// per channel, asymmetric, 2 to 8 bits).
    func testCandidatesSolvedTogetherEqualEachSolvedAlone() throws {
        var (w, x, _) = layer(rows: 40, columns: 128, tokens: 512, seed: 12)
        for t in 0..<x.rows { x[t, 5] = 0 }
        let h = QuantTestData.hessian(x)
        let candidates = [QuantizationArgs(numBits: 2, symmetric: false, strategy: .group, groupSize: 32, actorder: .static),
                          QuantizationArgs(numBits: 3, symmetric: false, strategy: .group, groupSize: 64, actorder: .static),
                          QuantizationArgs(numBits: 4, strategy: .group, groupSize: 32, actorder: .group),
                          QuantizationArgs(numBits: 4, strategy: .group, groupSize: 32),
                          QuantizationArgs(numBits: 8, strategy: .channel)]
        let together = try GPTQSolver.quantizeWeightCandidates(w, hessian: h, candidates: candidates, blockSize: 32, dampening: 0.02)
        XCTAssertEqual(together.count, candidates.count)
        for (args, shared) in zip(candidates, together) {
            let alone = try GPTQSolver.quantizeWeight(w, hessian: h, args: args, blockSize: 32, dampening: 0.02)
            XCTAssertEqual(shared.codes, alone.codes, "\(args)")
            XCTAssertEqual(shared.dequantized, alone.dequantized, "\(args)")
            XCTAssertEqual(shared.loss, alone.loss, "\(args)")
            XCTAssertEqual(shared.gIdx, alone.gIdx, "\(args)")
            XCTAssertEqual(shared.deadColumns, 1)
        }
        XCTAssertGreaterThan(together[0].loss, together[4].loss, "2 bits lose more than 8")
    }

    func testAnIndefiniteHessianTriggersTheExtraDampeningPath() throws {
        // Fewer tokens than columns: H is singular; subtracting 5 % of its mean diagonal makes it
        // indefinite, so 1 % dampening fails and 10 % succeeds.
        let (w, x, _) = layer(rows: 16, columns: 64, tokens: 32, seed: 7)
        var h = QuantTestData.hessian(x)
        let mean = (0..<64).reduce(Float(0)) { $0 + h[$1, $1] } / 64
        for i in 0..<64 { h[i, i] -= 0.05 * mean }
        let r = try GPTQSolver.quantizeWeight(w, hessian: h, args: .w4a16(groupSize: 32))
        XCTAssertEqual(r.dampeningRetries, 1)
        XCTAssertEqual(r.dampening, 0.1, accuracy: 1e-12)

        XCTAssertThrowsError(try GPTQSolver.quantizeWeight(w, hessian: Tensor.identity(64) * -1, args: .w4a16(groupSize: 32))) {
            guard case .hessianNotPositiveDefinite(_, let retries, _)? = $0 as? GPTQError else {
                return XCTFail("unexpected \($0)")
            }
            XCTAssertEqual(retries, 3)
            XCTAssertTrue("\($0)".contains("calibration samples"))
        }
    }

    func testUpperCholeskyOfInverseEqualsTheThreeStepTorchRecipe() throws {
        let x = QuantTestData.correlatedInputs(tokens: 300, columns: 40, seed: 8)
        let h = QuantTestData.hessian(x)
        let u = try GPTQSolver.upperCholeskyOfInverse(h, addingToDiagonal: 0.01)
        var damped = h
        for i in 0..<40 { damped[i, i] += 0.01 }
        let expected = try damped.choleskyInverse().cholesky(.upper)
        let worst = zip(u.scalars, expected.scalars).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst, 1e-4 * expected.absMax())
    }

    func testBenchmarkEntryPointTimesASmallLayer() {
        let seconds = GPTQBenchmark.run(rows: 32, columns: 64, groupSize: 16, actOrder: true, repeats: 1, tokens: 256)
        XCTAssertGreaterThan(seconds, 0)
        XCTAssertLessThan(seconds, 5)
        // 576×1536: 2·1536³/3 (factorization) + 1.25 G (lazy updates) + 0.11 G (in-block).
        XCTAssertEqual(GPTQBenchmark.flops(rows: 576, columns: 1536) / 1e9, 3.78, accuracy: 0.01)
    }
}
