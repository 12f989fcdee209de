import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest

/// kill -9 for real (issue 12, part 2): a quantize or finetune job under mpirun (or alone) loses a
/// random rank at a random moment — in a forward, a collective, a staging write or the final
/// rename — and the rerun, on the same or another number of ranks, finishes with output
/// byte-identical to an uninterrupted run. Seeded, so a failure names a reproducible kill point.
final class KillAndResumeTests: XCTestCase {
    var dir: URL!
    var model: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = dir.appendingPathComponent("tiny")
        let r = try QdistProcess.run(["tiny-model", model.path, "--layers", "6", "--hidden", "64", "--heads", "4",
                                      "--kv-heads", "2", "--intermediate", "128", "--seed", "9"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    /// Starts `qdist args` (under mpirun with `ranks`), without waiting.
    func start(_ args: [String], ranks: Int?) throws -> Process {
        let p = Process()
        let exe = try QdistProcess.binary.path
        if let ranks {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", String(ranks), exe] + args
        } else {
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = args
        }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// The qdist processes that are children of `launcher` (the ranks mpirun started and that
    /// have already exec'd qdist: a child still named mpirun is not a rank yet).
    func ranks(of launcher: Process) -> [Int32] {
        let pid = launcher.processIdentifier
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [pid] }
        var children: [Int32] = []
        for e in entries {
            guard let child = Int32(e), let stat = try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            let name = stat[stat.index(after: stat.firstIndex(of: "(")!)..<close]
            if fields.count > 2, Int32(fields[1]) == pid, name == "qdist" { children.append(child) }
        }
        return children.sorted()
    }

    /// Kills a random rank of a run of `args` after a random delay in (0, `span`) seconds, then
    /// reruns on `after` ranks; returns whether the kill hit a running job.
    func killAndResume(_ args: [String], before: Int?, after: Int?, span: Double, finished: URL,
                       rng: inout SeededGenerator) throws -> Bool {
        let job = try start(args, ranks: before)
        let delay = 0.05 + Double(rng.nextUniform()) * span
        let deadline = Date().addingTimeInterval(delay)
        while Date() < deadline && job.isRunning { Thread.sleep(forTimeInterval: 0.01) }
        var hit = false
        // Under mpirun the victim is always a rank, never mpirun itself: killing the launcher
        // orphans ranks that keep writing into the output while the rerun reads it (a CI run
        // failed so when an early kill found no rank started yet). So wait for every rank.
        var victims = before == nil ? [job.processIdentifier] : ranks(of: job)
        while let count = before, victims.count < count && job.isRunning {
            Thread.sleep(forTimeInterval: 0.005)
            victims = ranks(of: job)
        }
        if job.isRunning && !victims.isEmpty {
            let victim = victims[Int(rng.next() % UInt64(victims.count))]
            hit = kill(victim, SIGKILL) == 0
        }
        let waitUntil = Date().addingTimeInterval(60)
        while job.isRunning && Date() < waitUntil { Thread.sleep(forTimeInterval: 0.02) }
        if job.isRunning {
            // mpirun can hang after a rank's SIGKILL and then ignore SIGTERM too (seen on an
            // AVX2 EPYC with Open MPI 4.1.4: a CI run waited on it for good). Its ranks first,
            // then the launcher, by SIGKILL.
            let leftover = before == nil ? [] : ranks(of: job)
            job.terminate()
            let termUntil = Date().addingTimeInterval(10)
            while job.isRunning && Date() < termUntil { Thread.sleep(forTimeInterval: 0.02) }
            if job.isRunning {
                for pid in leftover { kill(pid, SIGKILL) }
                kill(job.processIdentifier, SIGKILL)
            }
        }
        job.waitUntilExit()
        // A kill after the finished output was in place (while the job reported or exited) hit
        // nothing left to resume: a rerun would rightly refuse to redo it.
        if !FileManager.default.fileExists(atPath: finished.path) {
            let rerun = try QdistProcess.run(args, ranks: after, timeout: 300)
            XCTAssertEqual(rerun.status, 0, "rerun after a kill at \(delay) s: \(rerun.stderr)")
        }
        return hit
    }

    /// Bytes of every tensor of a folder (any shard split).
    func tensors(_ folder: URL) throws -> [String: StoredTensor] {
        let f = try CheckpointFolder(url: folder)
        var out: [String: StoredTensor] = [:]
        for n in f.tensorNames { out[n] = try f.storedTensor(n) }
        return out
    }

    func testQuantizeKilledAtRandomPointsResumesToTheSameBytes() throws {
        let recipe = dir.appendingPathComponent("r.yaml")
        try Data("""
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 12, seq_len: 64, seed: 1}
            sequential: linear
            recipe: {GPTQModifier: {config_groups: {g: {targets: [Linear], weights: {num_bits: 4, symmetric: false, strategy: group, group_size: 32}}}}}
            """.utf8).write(to: recipe)
        let reference = dir.appendingPathComponent("reference")
        let t0 = Date()
        XCTAssertEqual(try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", reference.path], ranks: 2).status, 0)
        let span = Date().timeIntervalSince(t0)
        let expected = try tensors(reference)
        var rng = SeededGenerator(state: 2026)
        var hits = 0
        for (before, after) in [(nil, 2), (2, 2), (2, nil)] as [(Int?, Int?)] {
            for k in 0..<10 {
                let out = dir.appendingPathComponent("q-\(before ?? 1)-\(after ?? 1)-\(k)")
                let args = ["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path]
                // Kills land in the first 70% of a two-rank run's span: one process finishes sooner.
                if try killAndResume(args, before: before, after: after, span: 0.7 * span, finished: out, rng: &rng) { hits += 1 }
                XCTAssertEqual(try tensors(out), expected, "\(before ?? 1)→\(after ?? 1) ranks, kill \(k): byte-identical output")
            }
        }
        XCTAssertGreaterThanOrEqual(hits, 20, "most kills must land while the job runs")
    }

    func testAStagedBlockFileDamagedOnDiskIsRecomputedNotTrusted() throws {
        let recipe = dir.appendingPathComponent("r.yaml")
        try Data("""
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 8, seq_len: 64, seed: 1}
            recipe: {GPTQModifier: {config_groups: {g: {targets: [Linear], weights: {num_bits: 4, strategy: group, group_size: 32}}}}}
            """.utf8).write(to: recipe)
        let whole = dir.appendingPathComponent("whole"), out = dir.appendingPathComponent("damaged")
        XCTAssertEqual(try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", whole.path]).status, 0)
        let args = ["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path]
        XCTAssertEqual(try QdistProcess.run(args + ["--stop-after-block", "3"]).status, 3)
        // Flip one byte of block 1's file: blocks 1… must be recomputed, block 0 kept.
        let file = dir.appendingPathComponent(".damaged.qdist-partial/blocks/block-00001.rank-00000.safetensors")
        var bytes = try Data(contentsOf: file)
        bytes[bytes.count - 5] ^= 0x40
        try bytes.write(to: file)
        let resumed = try QdistProcess.run(args)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resuming after block 0"), resumed.stdout)
        XCTAssertEqual(try tensors(out), try tensors(whole))
    }

    func testFinetuneKilledAtRandomPointsResumesToTheSameAdapter() throws {
        let data = dir.appendingPathComponent("train.txt")
        try Data(contentsOf: QdistProcess.wikitext("valid")).prefix(30_000).write(to: data)
        let config = dir.appendingPathComponent("ft.yaml")
        try Data("""
            model: \(model.path)
            data: \(data.path)
            seq_len: 32
            micro_batch_size: 2
            global_batch_size: 4
            steps: 12
            save_steps: 2
            learning_rate: 1.0e-2
            seed: 5
            lora: {r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: all-linear}
            """.utf8).write(to: config)
        var rng = SeededGenerator(state: 7)
        var hits = 0
        for stage in [2, 3] {
            let reference = dir.appendingPathComponent("ft-ref-\(stage)")
            let t0 = Date()
            let r = try QdistProcess.run(["finetune", "--config", config.path, "--output", reference.path, "--zero-stage", "\(stage)"], ranks: 2)
            XCTAssertEqual(r.status, 0, r.stderr)
            let span = Date().timeIntervalSince(t0)
            let expected = try Data(contentsOf: reference.appendingPathComponent("adapter_model.safetensors"))
            for k in 0..<10 {
                let out = dir.appendingPathComponent("ft-\(stage)-\(k)")
                let args = ["finetune", "--config", config.path, "--output", out.path, "--zero-stage", "\(stage)"]
                // The first 70% of the reference run's span, as for quantize: a busy machine
                // stretches one run and not the next, and a kill after the adapter is written hits nothing.
                if try killAndResume(args, before: 2, after: 2, span: 0.7 * span,
                                     finished: out.appendingPathComponent("adapter_model.safetensors"), rng: &rng) { hits += 1 }
                XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("adapter_model.safetensors")), expected,
                               "ZeRO-\(stage), kill \(k): the same adapter bytes")
            }
        }
        XCTAssertGreaterThanOrEqual(hits, 14, "most kills must land while the job runs")
    }
}
