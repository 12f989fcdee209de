import Foundation
import QDistIO
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// Recipes without a forward pass (`CalibrationFreeQuantizer`): the whole model's linears are
/// dealt to ranks at once, each rank stages only what it solved, and a run that dies leaves
/// part files the rerun adopts — whatever number of ranks wrote them — ending byte-identical
/// to an uninterrupted run.
final class CalibrationFreeQuantizerTests: XCTestCase {
    var dir: URL!
    var model: URL!
    var recipe: URL!

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        model = try QdistProcess.tinyModel(in: dir, layers: 3, seed: 3)
        recipe = dir.appendingPathComponent("hqq.yaml")
        try Data("format: float-zero\nrecipe: {HQQModifier: {num_bits: 4, group_size: 32}}\n".utf8).write(to: recipe)
    }

    func quantize(_ out: URL, ranks: Int? = nil, extra: [String] = []) throws -> QdistProcess.Result {
        try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path] + extra, ranks: ranks)
    }

    func testTheWholeModelIsDealtAtOnceAndEachRankStagesOnlyWhatItSolved() throws {
        let out = dir.appendingPathComponent("n4")
        let r = try quantize(out, ranks: 4, extra: ["--stop-after-block", "2"])
        XCTAssertEqual(r.status, 3, r.stderr)
        XCTAssertTrue(r.stdout.contains("21 linears of blocks 0…2 dealt to 4 ranks at once"), r.stdout)
        // Every block's record lists the files of the ranks that solved its linears; together the
        // files hold each linear exactly once, and all four ranks wrote some.
        let blocks = dir.appendingPathComponent(".n4.qdist-partial/blocks")
        var writers = Set<Int>(), linears: [String] = []
        for b in 0..<3 {
            let record = try JSONParser.parseFile(at: blocks.appendingPathComponent(String(format: "block-%05d.json", b)))
            let files = try XCTUnwrap(record["files"]?.arrayValue?.compactMap(\.stringValue))
            for f in files {
                XCTAssertTrue(f.hasPrefix(String(format: "block-%05d.rank-", b)) && f.contains(".part-00"), f)
                writers.insert(try XCTUnwrap(QuantizeProgressFolder.writerRank(ofFile: f)))
                let reader = try SafetensorsReader(url: blocks.appendingPathComponent(f))
                linears += reader.metadata.keys.filter { !$0.hasPrefix("__") }
            }
            XCTAssertEqual(record["layers"]?.arrayValue?.count, 7, "block \(b)'s report lines")
        }
        XCTAssertEqual(writers, [0, 1, 2, 3])
        XCTAssertEqual(linears.count, 21)
        XCTAssertEqual(Set(linears).count, 21)
    }

    /// Every calibration-free scheme of issue 14 writes the same bytes on 1, 2 and 3 ranks
    /// (HQQ and NF4 are also checked at 4 ranks and 2 threads on a SmolLM2-shaped model in
    /// ThreadAndRankIndependenceTests).
    func testEveryCalibrationFreeSchemeWritesTheSameBytesOnOneTwoAndThreeRanks() throws {
        for (name, format, scheme) in [("int8", "bitsandbytes", "LLM_INT8"), ("ternary", "compressed-tensors", "TERNARY"),
                                       ("fp8d", "compressed-tensors", "FP8_DYNAMIC"), ("fp4", "bitsandbytes", "FP4"),
                                       ("w8", "compressed-tensors", "W8A16")] {
            let url = dir.appendingPathComponent("\(name).yaml")
            try Data("format: \(format)\nrecipe: {QuantizationModifier: {scheme: \(scheme), ignore: [lm_head]}}\n".utf8).write(to: url)
            var outs: [URL] = []
            for ranks in [nil, 2, 3] as [Int?] {
                let out = dir.appendingPathComponent("\(name)-\(ranks ?? 1)")
                let r = try QdistProcess.run(["quantize", "--config", url.path, "--model", model.path, "--output", out.path], ranks: ranks)
                XCTAssertEqual(r.status, 0, "\(name) on \(ranks ?? 1) ranks: \(r.stderr)")
                outs.append(out)
            }
            XCTAssertGreaterThan(try CheckpointComparison.tensorCount(outs[0]), 21, name)
            for out in outs.dropFirst() { XCTAssertEqual(try CheckpointComparison.differingTensors(outs[0], out), [], out.lastPathComponent) }
        }
    }

    func testARerunAdoptsWhatADeadRunStagedAndEndsIdenticalOnAnotherRankCount() throws {
        let whole = dir.appendingPathComponent("whole")
        XCTAssertEqual(try quantize(whole).status, 0)
        let out = dir.appendingPathComponent("crashed")
        // One process: it stages block 0's seven linears, then fails on reaching block 1.
        let crashed = try quantize(out, extra: ["--inject-failure", "0:1"])
        XCTAssertNotEqual(crashed.status, 0)
        XCTAssertTrue(crashed.stderr.contains("injected failure in block 1"), crashed.stderr)
        let staged = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent(".crashed.qdist-partial/blocks").path)
        XCTAssertEqual(staged.filter { $0.hasSuffix(".safetensors") }, ["block-00000.rank-00000.part-00.safetensors"])
        let rerun = try quantize(out, ranks: 2)
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        XCTAssertTrue(rerun.stdout.contains("adopting 7 linears an interrupted run staged (1 files)"), rerun.stdout)
        XCTAssertTrue(rerun.stdout.contains("14 linears of blocks 0…2"), "only the rest is solved: \(rerun.stdout)")
        XCTAssertEqual(try CheckpointComparison.differingTensors(whole, out), [])
        let report = try JSONParser.parseFile(at: out.appendingPathComponent("quantization_report.json"))
        XCTAssertEqual(report["layers"]?.arrayValue?.count, 21, "adopted linears keep their report lines")
    }

    func testATornPartFileIsSolvedAgainInsteadOfTrusted() throws {
        let out = dir.appendingPathComponent("torn")
        XCTAssertNotEqual(try quantize(out, extra: ["--inject-failure", "0:1"]).status, 0)
        let file = dir.appendingPathComponent(".torn.qdist-partial/blocks/block-00000.rank-00000.part-00.safetensors")
        let bytes = try Data(contentsOf: file)
        try bytes.prefix(bytes.count / 2).write(to: file)
        let rerun = try quantize(out)
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        XCTAssertFalse(rerun.stdout.contains("adopting"), rerun.stdout)
        XCTAssertTrue(rerun.stdout.contains("21 linears of blocks 0…2"), rerun.stdout)
        let whole = dir.appendingPathComponent("whole")
        XCTAssertEqual(try quantize(whole).status, 0)
        XCTAssertEqual(try CheckpointComparison.differingTensors(whole, out), [])
    }
}
