import QDistTestSupport
import XCTest

/// `qdist env` started by hand (no mpirun): the single-process communicator, no MPI at all.
final class EnvCommandTests: XCTestCase {
    func testJSONWithoutMpirunReportsOneRankCheckedAndNoBandwidth() throws {
        let result = try QdistProcess.run(["env", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try QdistProcess.jsonObject(result)
        XCTAssertEqual(json["world_size"] as? Int, 1)
        XCTAssertEqual(json["collectives_ok"] as? Bool, true)
        XCTAssertTrue(json["allreduce_gbps"] is NSNull, "\(String(describing: json["allreduce_gbps"]))")
        XCTAssertEqual(json["communicator"] as? String, "single-process")
        XCTAssertTrue(json["mpi_library"] is NSNull, "MPI_Get_library_version must not run without a launcher")
        XCTAssertEqual((json["hosts"] as? [String])?.count, 1)
        let notes = json["notes"] as? [String] ?? []
        XCTAssertTrue(notes.contains { $0.contains("single-process communicator") }, "\(notes)")
    }

    func testJSONCarriesVersionsAndBLASSetUp() throws {
        let json = try QdistProcess.jsonObject(try QdistProcess.run(["env", "--json", "--skip-checks"]))
        XCTAssertNotNil(json["version"] as? String)
        XCTAssertTrue(["6.3", "6.4", "6.5", ">=7.0"].contains(json["swift"] as? String ?? ""), "\(json["swift"] ?? "nil")")
        XCTAssertTrue((json["open_mpi"] as? String)?.hasPrefix("4.") ?? false)
        XCTAssertTrue((json["openblas"] as? String)?.hasPrefix("OpenBLAS") ?? false)
        XCTAssertFalse((json["blas_core"] as? String ?? "").isEmpty)
        XCTAssertGreaterThanOrEqual(json["blas_threads"] as? Int ?? 0, 1)
        XCTAssertNotNil(json["blas_threads_from_env"] as? Bool)
        XCTAssertGreaterThanOrEqual(json["cpu_cores"] as? Int ?? 0, 1)
    }

    func testSkipChecksLeavesCollectivesUnknownAndExitsZero() throws {
        let result = try QdistProcess.run(["env", "--json", "--skip-checks"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try QdistProcess.jsonObject(result)
        XCTAssertTrue(json["collectives_ok"] is NSNull)
        XCTAssertEqual((json["checks"] as? [Any])?.count, 0)
    }

    func testEnvironmentBLASThreadSettingWinsAndIsReported() throws {
        let json = try QdistProcess.jsonObject(
            try QdistProcess.run(["env", "--json", "--skip-checks"], environment: ["OPENBLAS_NUM_THREADS": "1"]))
        XCTAssertEqual(json["blas_threads"] as? Int, 1)
        XCTAssertEqual(json["blas_threads_from_env"] as? Bool, true)
    }

    func testHaswellCoreOnAVX512CPUIsCalledOut() throws {
        let result = try QdistProcess.run(["env", "--skip-checks"], environment: ["OPENBLAS_CORETYPE": "Haswell"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        guard cpuinfo.contains(" avx512f") else { throw XCTSkip("this CPU has no AVX-512") }
        XCTAssertTrue(result.stdout.contains("OpenBLAS uses Haswell kernels although the CPU has AVX-512; OPENBLAS_CORETYPE=SkylakeX may be faster"),
                      result.stdout)
    }

    func testHumanOutputHasAlignedKeyLinesAndTickedChecks() throws {
        let result = try QdistProcess.run(["env"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        for key in ["qdist:", "swift:", "open mpi:", "communicator:", "openblas:", "blas core:", "blas threads:",
                    "cpu cores:", "world size:", "rank 0:", "collectives:", "allreduce:", "checks:"] {
            XCTAssertTrue(lines.contains { $0.hasPrefix(key) }, "no line starting with \(key):\n\(result.stdout)")
        }
        // Values start in one column.
        let keyed = lines.prefix { !$0.hasPrefix("checks:") }.filter { !$0.hasPrefix(" ") }
        let columns = Set(keyed.map { line in line.firstIndex(of: ":").map { idx in
            line[line.index(after: idx)...].prefix { $0 == " " }.count + line.distance(from: line.startIndex, to: idx)
        } ?? -1 })
        XCTAssertEqual(columns.count, 1, "values not aligned:\n\(result.stdout)")
        XCTAssertTrue(lines.contains("  ✓ allreduce.sum.Float"), result.stdout)
        XCTAssertTrue(lines.contains("  ✓ chunked.reduceScatter.sum.Float.uneven"), result.stdout)
        XCTAssertTrue(result.stdout.contains("world size:   1"), result.stdout)
    }

    func testHelpExplainsMpirunUse() throws {
        let result = try QdistProcess.run(["env", "--help"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.contains("mpirun -n 4 qdist env"), result.stdout)
        XCTAssertTrue(result.stdout.contains("--bandwidth-mib"), result.stdout)
        XCTAssertTrue(result.stdout.contains("--skip-checks"), result.stdout)
        XCTAssertFalse(result.stdout.contains("--fail-on-rank"), "the test-only option must stay hidden")
    }

    func testNegativeBandwidthIsRejected() throws {
        let result = try QdistProcess.run(["env", "--bandwidth-mib", "-1"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--bandwidth-mib"), result.stderr)
    }

    func testFailOnRankZeroWithoutMpirunExitsWithReason() throws {
        let result = try QdistProcess.run(["env", "--fail-on-rank", "0"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("qdist: rank 0/1"), result.stderr)
        XCTAssertTrue(result.stderr.contains("requested failure for testing"), result.stderr)
    }
}
