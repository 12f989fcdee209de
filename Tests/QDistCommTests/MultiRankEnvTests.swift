import Foundation
import QDistTestSupport
import XCTest

/// `qdist env` under `mpirun -n N`: the MPI communicator runs every collective (plain and
/// chunked) on N ranks, only rank 0 prints, and one dying rank stops the whole job.
final class MultiRankEnvTests: XCTestCase {
    /// Runs `mpirun -n ranks qdist env --json --bandwidth-mib 4` (4 MiB keeps the test fast).
    private func envJSON(ranks: Int, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let result = try QdistProcess.run(["env", "--json", "--bandwidth-mib", "4"], ranks: ranks, timeout: 120)
        XCTAssertEqual(result.status, 0, "stderr:\n\(result.stderr)", file: file, line: line)
        XCTAssertEqual(result.stdout.components(separatedBy: "\"world_size\"").count - 1, 1,
                       "exactly one JSON object (only rank 0 prints):\n\(result.stdout)", file: file, line: line)
        return try QdistProcess.jsonObject(result, file: file, line: line)
    }

    private func assertHealthyWorld(ranks: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let json = try envJSON(ranks: ranks, file: file, line: line)
        XCTAssertEqual(json["world_size"] as? Int, ranks, file: file, line: line)
        XCTAssertEqual(json["communicator"] as? String, "mpi", file: file, line: line)
        XCTAssertEqual(json["collectives_ok"] as? Bool, true, file: file, line: line)
        XCTAssertEqual((json["hosts"] as? [String])?.count, ranks, file: file, line: line)
        XCTAssertTrue((json["mpi_library"] as? String)?.contains("Open MPI") ?? false, file: file, line: line)
        let checks = json["checks"] as? [[String: Any]] ?? []
        XCTAssertGreaterThanOrEqual(checks.count, 40, file: file, line: line)
        for check in checks {
            XCTAssertEqual(check["ok"] as? Bool, true, "check \(check) failed at \(ranks) ranks", file: file, line: line)
        }
        // The small-chunk pass is how chunking is tested under MPI: its checks must be present.
        let names = Set(checks.compactMap { $0["name"] as? String })
        for name in ["chunked.broadcast.Float.everyRoot", "chunked.reduce.sum.Double.rootLast",
                     "chunked.allreduce.sum.Float", "chunked.allreduce.max.Int64", "chunked.allgather.Int32",
                     "chunked.allgatherv.Float.unevenWithZero", "chunked.reduceScatter.sum.Float.uneven",
                     "chunked.sendReceive.ring.Int64", "chunked.communicator.maxChunkElements",
                     "mpi.errorsReturnAsCommunicatorError", "chunked.mpi.errorsReturnAsCommunicatorError"] {
            XCTAssertTrue(names.contains(name), "missing \(name)", file: file, line: line)
        }
        if ranks >= 2 {
            let gbps = json["allreduce_gbps"] as? Double ?? 0
            XCTAssertGreaterThan(gbps, 0, file: file, line: line)
            XCTAssertEqual(json["allreduce_bytes"] as? Int, 4 << 20, file: file, line: line)
        } else {
            XCTAssertTrue(json["allreduce_gbps"] is NSNull, file: file, line: line)
        }
    }

    func testOneRankUnderMpirunPassesEveryCheck() throws { try assertHealthyWorld(ranks: 1) }
    func testTwoRanksPassEveryCheckAndMeasureBandwidth() throws { try assertHealthyWorld(ranks: 2) }
    func testThreeRanksPassEveryCheckAndMeasureBandwidth() throws { try assertHealthyWorld(ranks: 3) }
    func testFourRanksOversubscribedPassEveryCheckAndMeasureBandwidth() throws { try assertHealthyWorld(ranks: 4) }

    func testHumanOutputUnderMpirunListsEveryRankHostOnce() throws {
        let result = try QdistProcess.run(["env", "--bandwidth-mib", "1"], ranks: 2, timeout: 120)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout.components(separatedBy: "world size:").count - 1, 1, result.stdout)
        XCTAssertTrue(result.stdout.contains("world size:   2"), result.stdout)
        XCTAssertTrue(result.stdout.contains("rank 1:"), result.stdout)
        XCTAssertTrue(result.stdout.contains("communicator: mpi (launcher: mpirun)"), result.stdout)
        XCTAssertTrue(result.stdout.contains("GB/s"), result.stdout)
        XCTAssertFalse(result.stdout.contains("✗"), result.stdout)
    }

    func testOneRankAbortingStopsTheWholeJobAndNamesRankAndReason() throws {
        let start = Date()
        let result = try QdistProcess.run(["env", "--fail-on-rank", "1"], ranks: 3, timeout: 60)
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertNotEqual(result.status, 124, "the job hung until the timeout instead of aborting")
        XCTAssertLessThan(elapsed, 20, "abort should stop every rank within seconds")
        XCTAssertTrue(result.stderr.contains("qdist: rank 1/3"), result.stderr)
        XCTAssertTrue(result.stderr.contains("requested failure for testing"), result.stderr)
        XCTAssertFalse(result.stdout.contains("world size:"), "rank 0 must not finish its report:\n\(result.stdout)")
    }
}
