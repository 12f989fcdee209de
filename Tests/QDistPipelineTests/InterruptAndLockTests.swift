import Foundation
import QDistTestSupport
import XCTest

/// SIGTERM (a batch system's time limit) ends a quantize job at once with 143 and a one-line
/// hint, keeps its finished blocks, and the same command resumes; while a job runs, a second
/// one into the same output is refused in one line (issue 12, parts 3 and 4).
final class InterruptAndLockTests: XCTestCase {
    func testSIGTERMKeepsFinishedBlocksAndAConcurrentJobIsRefused() throws {
        let dir = try QdistProcess.temporaryDirectory(self)
        let model = dir.appendingPathComponent("m")
        let made = try QdistProcess.run(["tiny-model", model.path, "--layers", "12", "--hidden", "128", "--heads", "4",
                                         "--kv-heads", "2", "--intermediate", "256", "--seed", "4"])
        XCTAssertEqual(made.status, 0, made.stderr)
        let recipe = dir.appendingPathComponent("r.yaml")
        try Data("""
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 24, seq_len: 128}
            sequential: linear
            recipe: {GPTQModifier: {config_groups: {g: {targets: [Linear], weights: {num_bits: 4, strategy: group, group_size: 32}}}}}
            """.utf8).write(to: recipe)
        let out = dir.appendingPathComponent("q")
        let args = ["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path]

        let job = Process()
        job.executableURL = try QdistProcess.binary
        job.arguments = args
        let err = Pipe()
        job.standardError = err
        job.standardOutput = FileHandle.nullDevice
        try job.run()
        // Wait until the first block is recorded, then act while the job is mid-way.
        let record = dir.appendingPathComponent(".q.qdist-partial/blocks/block-00000.json")
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: record.path) && job.isRunning && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTAssertTrue(job.isRunning, "the job must still be running to be interrupted (make it longer)")

        let second = try QdistProcess.run(args)
        XCTAssertNotEqual(second.status, 0)
        XCTAssertTrue(second.stderr.contains("another qdist job is writing this output"), second.stderr)

        let signalled = Date()
        kill(job.processIdentifier, SIGTERM)
        job.waitUntilExit()
        XCTAssertLessThan(Date().timeIntervalSince(signalled), 5, "ends within seconds")
        XCTAssertEqual(job.terminationStatus, 143)
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(message.contains("interrupted") && message.contains("rerun the same command to resume"), message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "no output from an interrupted job")

        let resumed = try QdistProcess.run(args, timeout: 600)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resuming after block"), resumed.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent(".q.qdist-lock").path), "the lock file goes with a finished job")
    }
}
