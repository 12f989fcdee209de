import Foundation
import XCTest
import QDistIO
import QDistTensor
@testable import QDistQuant

/// HQQSolver against the hqq library itself on SmolLM2 weights. Needs the file that
/// Benchmarks/hqq_reference.sh writes (torch and hqq are not part of the Swift test
/// environment), named by QDIST_HQQ_REFERENCE; without it the test reports an XCTSkip that
/// says how to make the file.
final class HQQLibraryAgreementTests: XCTestCase {
    private struct Tally {
        var linears = 0, groups = 0, codes = 0, identicalCodes = 0, sameSteps = 0, plateauTies = 0, groupsOff = 0
        var worst = ""
        var maxZeroDiff: Float = 0, maxRelativeScaleDiff: Float = 0, zeroDiffSum = 0.0
        var seconds = 0.0
    }

    func testZerosScalesAndCodesAgreeWithTheHQQLibraryOnSmolLM2Linears() throws {
        guard let path = ProcessInfo.processInfo.environment["QDIST_HQQ_REFERENCE"], !path.isEmpty else {
            throw XCTSkip("set QDIST_HQQ_REFERENCE to the safetensors file Benchmarks/hqq_reference.sh writes "
                          + "(hqq library output on SmolLM2 linears) to compare HQQSolver with the library")
        }
        let file = try SafetensorsReader(path: path)
        guard let groupSize = file.metadata["group_size"].flatMap(Int.init) else {
            return XCTFail("\(path) has no group_size metadata; rerun Benchmarks/hqq_reference.sh")
        }
        let weights = file.tensorNames.filter { $0.hasSuffix(".weight") }
        XCTAssertFalse(weights.isEmpty, "\(path) holds no weights")
        var tallies: [Int: Tally] = [:]
        for weightName in weights {
            let name = String(weightName.dropLast(".weight".count))
            let w = try file.tensor(weightName)
            for nbits in HQQSolver.Settings.supportedBits where file.contains("\(name).nbits\(nbits).zero") {
                let key = "\(name).nbits\(nbits)"
                let start = Date()
                let ours = try HQQSolver.quantize(w, settings: .init(nbits: nbits, groupSize: groupSize))
                var t = tallies[nbits, default: Tally()]
                t.seconds += Date().timeIntervalSince(start)
                let zeros = try file.tensor(key + ".zero").scalars
                let scales = try file.tensor(key + ".scale").scalars
                let codes = try file.tensor(key + ".W_q").scalars
                XCTAssertEqual(zeros.count, ours.zeros.count, key)
                XCTAssertEqual(codes.count, ours.codes.count, key)
                for g in 0..<min(zeros.count, ours.zeros.count) {
                    let dz = abs(zeros[g] - ours.zeros[g])
                    if dz > 1e-3 { t.groupsOff += 1 }
                    if dz > t.maxZeroDiff { t.worst = "\(key) group \(g): library \(zeros[g]), ours \(ours.zeros[g])" }
                    t.maxZeroDiff = max(t.maxZeroDiff, dz)
                    t.zeroDiffSum += Double(dz)
                    t.maxRelativeScaleDiff = max(t.maxRelativeScaleDiff, abs(scales[g] - ours.scales[g]) / abs(scales[g]))
                }
                for i in 0..<min(codes.count, ours.codes.count) where Float(ours.codes[i]) == codes[i] { t.identicalCodes += 1 }
                if let steps = file.metadata[key + ".steps"].flatMap(Int.init), steps != ours.steps {
                    // The library compares float32 means that its own vectorised sum rounds
                    // differently from the exact mean by up to ~2 ulps; where one implementation
                    // stopped and the other went on, the two errors must be that close.
                    let k = min(steps, ours.steps) - 1
                    let a = ours.errorHistory[k], b = ours.errorHistory[max(k - 1, 0)]
                    XCTAssertLessThanOrEqual(abs(a - b), 4 * Double(Float(b).ulp),
                                             "\(key): the library ran \(steps) steps, we \(ours.steps), and the errors were not a float32 tie")
                    t.plateauTies += 1
                } else {
                    t.sameSteps += 1
                }
                t.linears += 1
                t.groups += zeros.count
                t.codes += codes.count
                tallies[nbits] = t
            }
        }
        XCTAssertFalse(tallies.isEmpty, "\(path) holds no <name>.nbits<b>.zero tensors")
        for (nbits, t) in tallies.sorted(by: { $0.key > $1.key }) {
            let share = Double(t.identicalCodes) / Double(max(t.codes, 1))
            print(String(format: "HQQ library nbits %d: %d linears, %d groups, max |Δzero| %.3g, mean |Δzero| %.3g, "
                         + "groups with |Δzero| > 1e-3: %d, max relative Δscale %.3g, identical codes %.5f %%, "
                         + "same step count %d/%d (others float32 ties), Swift %.2f s; worst: %@",
                         nbits, t.linears, t.groups, t.maxZeroDiff, t.zeroDiffSum / Double(max(t.groups, 1)),
                         t.groupsOff, t.maxRelativeScaleDiff, 100 * share, t.sameSteps, t.linears, t.seconds, t.worst))
            // The library sums in float32 vector lanes, we in Double: zero points differ in the
            // last bits, and where W·s + z is an exact tie (bf16 weights make many) that last bit
            // can send a group to a neighbouring fixed point. Such groups must stay rare.
            XCTAssertLessThanOrEqual(t.maxRelativeScaleDiff, 1e-6, "nbits \(nbits): scales")
            XCTAssertLessThanOrEqual(Double(t.groupsOff), 1e-4 * Double(t.groups), "nbits \(nbits): groups with |Δzero| > 1e-3")
            XCTAssertLessThanOrEqual(t.maxZeroDiff, 0.5, "nbits \(nbits): zero points")
            XCTAssertGreaterThanOrEqual(share, 0.9999, "nbits \(nbits): identical codes")
        }
    }
}
