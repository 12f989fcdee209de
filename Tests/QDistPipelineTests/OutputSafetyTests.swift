import Foundation
import QDistIO
import QDistTestSupport
import XCTest

/// Outputs never destroy what qdist did not write: `--overwrite` replaces only a folder with
/// qdist's marker, and no output may be, hold or lie inside an input (issue 12, part 0). Each
/// refusal is one line naming the path, with a non-zero exit and everything left as it was.
final class OutputSafetyTests: XCTestCase {
    var dir: URL!
    var model: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = dir.appendingPathComponent("tiny")
        let r = try QdistProcess.run(["tiny-model", model.path, "--layers", "1", "--hidden", "32", "--heads", "2",
                                      "--kv-heads", "1", "--intermediate", "64", "--seed", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    /// A folder of someone else's files.
    func foreignFolder(_ name: String) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try Data("precious".utf8).write(to: url.appendingPathComponent("notes.txt"))
        return url
    }

    func assertRefused(_ r: QdistProcess.Result, mentions parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, file: file, line: line)
        let message = r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(message.contains("\n"), "one line: \(message)", file: file, line: line)
        for p in parts { XCTAssertTrue(message.contains(p), "\(message) should mention \(p)", file: file, line: line) }
    }

    func assertIntact(_ folder: URL, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(try? String(contentsOf: folder.appendingPathComponent("notes.txt"), encoding: .utf8), "precious",
                       file: file, line: line)
    }

    func rtnRecipe() throws -> String {
        let url = dir.appendingPathComponent("rtn.yaml")
        try Data("recipe: {QuantizationModifier: {scheme: W8A16}}\n".utf8).write(to: url)
        return url.path
    }

    func testOverwriteRefusesAFolderQdistDidNotWriteForEveryWriter() throws {
        let foreign = try foreignFolder("foreign")
        let recipe = try rtnRecipe()
        assertRefused(try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", foreign.path, "--overwrite"]),
                      mentions: [foreign.path, "not written by qdist"])
        assertRefused(try QdistProcess.run(["tiny-model", foreign.path, "--overwrite"]), mentions: [foreign.path, "not written by qdist"])
        assertRefused(try QdistProcess.run(["convert", model.path, foreign.path, "--overwrite"]), mentions: [foreign.path, "not written by qdist"])
        assertIntact(foreign)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent(".foreign.qdist-partial").path),
                       "a refused job leaves no staging folder")
    }

    /// The marker is the folder's only new entry, written in place: a process killed while
    /// writing it leaves an empty or marked folder (both accepted by a rerun), never a temporary
    /// file that would make the rerun refuse its own output.
    func testTheMarkerIsWrittenInPlaceSoAKilledWriterLeavesAResumableFolder() throws {
        let folder = dir.appendingPathComponent("marked")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        XCTAssertNoThrow(try OutputFolderGuard.check(folder, inputs: [], overwrite: true), "an empty folder is accepted")
        try OutputFolderGuard.mark(folder)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [OutputFolderGuard.markerName])
        // A marker cut short (a kill mid-write) still marks the folder.
        try Data().write(to: folder.appendingPathComponent(OutputFolderGuard.markerName))
        XCTAssertNoThrow(try OutputFolderGuard.check(folder, inputs: [], overwrite: true))
        try OutputFolderGuard.mark(folder)
        XCTAssertEqual(try String(contentsOf: folder.appendingPathComponent(OutputFolderGuard.markerName), encoding: .utf8), "written by qdist\n")
    }

    func testOverwriteReplacesWhatQdistWrote() throws {
        let recipe = try rtnRecipe()
        let out = dir.appendingPathComponent("q")
        for _ in 0..<2 {
            let r = try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", out.path, "--overwrite"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let again = try QdistProcess.run(["tiny-model", model.path, "--layers", "1", "--hidden", "32", "--heads", "2",
                                          "--kv-heads", "1", "--intermediate", "64", "--overwrite"])
        XCTAssertEqual(again.status, 0, again.stderr)
    }

    func testAnOutputThatIsHoldsOrLiesInsideAnInputIsRefused() throws {
        let recipe = try rtnRecipe()
        let before = try FileManager.default.contentsOfDirectory(atPath: model.path).sorted()
        for (output, reason) in [(model.path, "is the input"), (model.appendingPathComponent("q").path, "lies inside the input"),
                                 (dir.path, "contains the input")] {
            assertRefused(try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", output, "--overwrite"]),
                          mentions: [reason])
        }
        assertRefused(try QdistProcess.run(["convert", model.path, model.path + "/", "--overwrite"]), mentions: ["is the input"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: model.path).sorted(), before, "the model is untouched")
    }

    func testFinetuneRefusesAForeignOutputFolder() throws {
        let foreign = try foreignFolder("run")
        let data = dir.appendingPathComponent("train.txt")
        try Data(contentsOf: QdistProcess.wikitext("valid")).prefix(5_000).write(to: data)
        let config = dir.appendingPathComponent("ft.yaml")
        try Data("""
            model: \(model.path)
            data: \(data.path)
            seq_len: 16
            micro_batch_size: 1
            global_batch_size: 2
            steps: 1
            lora: {r: 2, lora_alpha: 4, target_modules: all-linear}
            """.utf8).write(to: config)
        for extra in [[], ["--overwrite"]] {
            assertRefused(try QdistProcess.run(["finetune", "--config", config.path, "--output", foreign.path] + extra),
                          mentions: [foreign.path, "not written by qdist"])
        }
        assertIntact(foreign)
    }

    func testAFinetuneThatFailsBeforeTrainingLeavesNoOutputFolder() throws {
        let data = dir.appendingPathComponent("tiny.txt")
        try Data("too short".utf8).write(to: data)
        let config = dir.appendingPathComponent("ft-short.yaml")
        try Data("""
            model: \(model.path)
            data: \(data.path)
            seq_len: 64
            micro_batch_size: 1
            global_batch_size: 2
            steps: 1
            lora: {r: 2, lora_alpha: 4, target_modules: all-linear}
            """.utf8).write(to: config)
        let out = dir.appendingPathComponent("never")
        let r = try QdistProcess.run(["finetune", "--config", config.path, "--output", out.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "no empty output folder: \(r.stderr)")
    }

    /// A full disk, as a file-size limit (`ulimit -f`, what the test can impose without root
    /// mounts): one line naming the file and the cause, no output folder, and the rerun with
    /// room to write finishes. The same for a model folder writer (tiny-model).
    func testAFullDiskIsOneLineAndLeavesNoOutput() throws {
        let recipe = try rtnRecipe()
        let out = dir.appendingPathComponent("full")
        let exe = try QdistProcess.binary.path
        for (args, target) in [(["quantize", "--config", recipe, "--model", model.path, "--output", out.path], out),
                               (["tiny-model", dir.appendingPathComponent("t2").path, "--layers", "2", "--hidden", "256"],
                                dir.appendingPathComponent("t2"))] {
            let r = try QdistProcess.runProcess("/bin/bash", ["-c", "ulimit -f 40; exec \"$0\" \"$@\"", exe] + args,
                                                environment: [:], timeout: 120)
            XCTAssertEqual(r.status, 1, r.stderr)
            let errorLines = r.stderr.split(separator: "\n").filter { $0.contains("error:") }
            XCTAssertEqual(errorLines.count, 1, r.stderr)
            XCTAssertTrue(errorLines.first?.contains("File too large") == true, r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: target.path), "no output after a failed write")
        }
        let rerun = try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", out.path])
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
    }

    /// A read-only file system under the output (a tmpfs mounted read-only: the tests run as
    /// root, for whom permission bits do not bind): one line with the path and the cause.
    func testAReadOnlyOutputParentIsOneLine() throws {
        let mount = dir.appendingPathComponent("ro")
        try FileManager.default.createDirectory(at: mount, withIntermediateDirectories: true)
        let mounted = try QdistProcess.runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", mount.path],
                                                  environment: [:], timeout: 30)
        XCTAssertEqual(mounted.status, 0, "mounting a read-only tmpfs needs root: \(mounted.stderr)")
        guard mounted.status == 0 else { return }
        defer { _ = try? QdistProcess.runProcess("/bin/umount", [mount.path], environment: [:], timeout: 30) }
        let out = mount.appendingPathComponent("q")
        for args in [["quantize", "--config", try rtnRecipe(), "--model", model.path, "--output", out.path],
                     ["tiny-model", out.path]] {
            let r = try QdistProcess.run(args)
            XCTAssertEqual(r.status, 1, r.stderr)
            let errorLines = r.stderr.split(separator: "\n").filter { $0.contains("error:") }
            XCTAssertEqual(errorLines.count, 1, r.stderr)
            XCTAssertTrue(errorLines.first.map { $0.contains(mount.path) && $0.contains("Read-only file system") } == true, r.stderr)
        }
    }

    func testAnOutputPathThatIsAFileIsOneLineAndTheFileStays() throws {
        let file = dir.appendingPathComponent("out.txt")
        try Data("mine".utf8).write(to: file)
        let recipe = try rtnRecipe()
        assertRefused(try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", file.path]),
                      mentions: [file.path, "already exists"])
        assertRefused(try QdistProcess.run(["quantize", "--config", recipe, "--model", model.path, "--output", file.path, "--overwrite"]),
                      mentions: [file.path, "not written by qdist"])
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), "mine")
    }

    func testAFinetuneThatCannotFitIsRefusedBeforeItStartsWithTheNumbers() throws {
        let data = dir.appendingPathComponent("d.txt")
        try Data(contentsOf: QdistProcess.wikitext("valid")).prefix(5_000).write(to: data)
        let config = dir.appendingPathComponent("huge.yaml")
        try Data("""
            model: \(model.path)
            data: \(data.path)
            seq_len: 4000000
            micro_batch_size: 64
            global_batch_size: 64
            steps: 1
            lora: {r: 2, lora_alpha: 4, target_modules: all-linear}
            """.utf8).write(to: config)
        let out = dir.appendingPathComponent("huge")
        let r = try QdistProcess.run(["finetune", "--config", config.path, "--output", out.path])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("GiB per rank") && r.stderr.contains("qdist memory --train"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }
}
