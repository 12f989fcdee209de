import QDistComm
import XCTest

/// The self-check and the bandwidth measurement are pure over `Communicator`: on the
/// single-process communicator they run every check (both passes) and pass.
final class CollectiveSelfCheckTests: XCTestCase {
    func testSelfCheckPassesOnSingleProcessCommunicator() throws {
        let report = try CollectiveSelfCheck.run(on: SingleProcessCommunicator())
        XCTAssertTrue(report.passed, "\(report.checks.filter { !$0.passed })")
        XCTAssertTrue(report.checks.allSatisfy { $0.detail == "ok" })
    }

    func testSelfCheckCoversEveryCollectiveTheProjectUses() throws {
        let names = try CollectiveSelfCheck.run(on: SingleProcessCommunicator()).checks.map(\.name)
        for expected in ["barrier", "broadcast.Float.everyRoot", "reduce.sum.Double.rootLast",
                         "allgather.Int32", "allgatherv.Float.unevenWithZero", "reduceScatter.sum.Float.uneven",
                         "sendReceive.ring.Int64", "allgatherStrings"] {
            XCTAssertTrue(names.contains(expected), "missing \(expected) in \(names)")
        }
        for op in ["sum", "max", "min"] {
            for type in ["Float", "Double", "Int32", "Int64"] {
                XCTAssertTrue(names.contains("allreduce.\(op).\(type)"), "missing allreduce.\(op).\(type)")
            }
        }
    }

    func testSelfCheckRepeatsEveryCheckThroughTheSmallChunkCommunicator() throws {
        let names = try CollectiveSelfCheck.run(on: SingleProcessCommunicator()).checks.map(\.name)
        let plain = names.filter { !$0.hasPrefix(CollectiveSelfCheck.chunkedPrefix) }
        for name in plain {
            XCTAssertTrue(names.contains(CollectiveSelfCheck.chunkedPrefix + name), "no chunked twin of \(name)")
        }
        XCTAssertTrue(names.contains("chunked.communicator.maxChunkElements"))
        XCTAssertEqual(CollectiveSelfCheck.chunkedMaxElements, 1000)
    }

    func testSelfCheckReportFailsWhenAnyCheckFails() {
        var report = CollectiveSelfCheckReport(checks: [
            CollectiveCheckResult(name: "a", passed: true, detail: "ok"),
            CollectiveCheckResult(name: "b", passed: true, detail: "ok"),
        ])
        XCTAssertTrue(report.passed)
        report.checks[1].passed = false
        XCTAssertFalse(report.passed)
    }

    func testBandwidthMeasurementUsesWholeFloatsAndMedian() throws {
        let m = try AllreduceBandwidth.measure(SingleProcessCommunicator(), bytes: 1_000_003, iterations: 3)
        XCTAssertEqual(m.bytes, 1_000_000)
        XCTAssertEqual(m.iterations, 3)
        XCTAssertEqual(m.ranks, 1)
        XCTAssertGreaterThan(m.gigabytesPerSecond, 0)
        XCTAssertLessThanOrEqual(m.bestSeconds, m.medianSeconds)
        XCTAssertGreaterThanOrEqual(m.bestGigabytesPerSecond, m.gigabytesPerSecond)
        XCTAssertEqual(m.busGigabytesPerSecond, 0)
    }

    func testBandwidthArithmeticIsBytesPerSecondInDecimalGigabytes() {
        let m = AllreduceBandwidth.Measurement(bytes: 64 << 20, ranks: 4, iterations: 5,
                                               medianSeconds: 0.5, bestSeconds: 0.25)
        XCTAssertEqual(m.gigabytesPerSecond, Double(64 << 20) / 0.5 / 1e9, accuracy: 1e-12)
        XCTAssertEqual(m.bestGigabytesPerSecond, Double(64 << 20) / 0.25 / 1e9, accuracy: 1e-12)
        XCTAssertEqual(m.busGigabytesPerSecond, m.gigabytesPerSecond * 1.5, accuracy: 1e-12)
    }
}
