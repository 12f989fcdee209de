import Foundation
import QDistComm
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor
import QDistTestSupport
import XCTest
@testable import QDistPipeline

/// Mixed precision under a bits-per-weight budget, end to end from the CLI: the sensitivity pass
/// measures what the plan says, the written folder costs what the plan predicted, and the plan
/// and output are the same for any number of ranks and threads.
final class BudgetQuantizeTests: XCTestCase {
    var dir: URL!
    var model: URL!
    let candidates = ["W2 g64 asym", "W3 g64 asym", "W4 g64 asym", "W8"]

    override func setUpWithError() throws {
        dir = try QdistProcess.temporaryDirectory(self)
        // Products large enough that OpenBLAS would split them across threads.
        model = try QdistProcess.tinyModel(in: dir, layers: 2, seed: 21, hidden: 256, intermediate: 512)
    }

    func recipe(bits: Double, samples: Int = 6, budgetSamples: Int? = nil, metric: String = "fisher") throws -> URL {
        let url = dir.appendingPathComponent("budget-\(bits)-\(metric).yaml")
        try Data("""
            format: compressed-tensors
            sequential: linear
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: \(samples), seq_len: 128, seed: 3}
            budget: {bits_per_weight: \(bits), candidates: [\(candidates.joined(separator: ", "))], metric: \(metric)\(budgetSamples.map { ", samples: \($0)" } ?? "")}
            recipe:
              GPTQModifier: {targets: [Linear], ignore: [lm_head], scheme: W4A16_ASYM}
            """.utf8).write(to: url)
        return url
    }

    func quantize(_ recipe: URL, _ name: String, ranks: Int? = nil, threads: Int = 1, extra: [String] = []) throws -> (out: URL, report: JSONValue) {
        let out = dir.appendingPathComponent(name)
        let r = try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path] + extra,
                                     ranks: ranks, environment: ["OPENBLAS_NUM_THREADS": String(threads)], timeout: 900)
        XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
        return (out, try JSONParser.parse(String(decoding: try Data(contentsOf: out.appendingPathComponent("quantization_report.json")), as: UTF8.self)))
    }

    func bitsPerWeight(_ folder: URL) throws -> Double {
        let r = try QdistProcess.run(["inspect", folder.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(try JSONParser.parse(r.stdout)["bits_per_weight"]?.doubleValue)
    }

    /// The written folder's all-in bits per weight is the plan's (exactly: the plan counts what
    /// the writer stores), within the budget, and each chosen scheme is one config group naming
    /// its layers.
    func testWrittenFolderCostsWhatThePlanPredictsAndStaysWithinTheBudget() throws {
        for bits in [2.6, 3.5] {
            let (out, report) = try quantize(try recipe(bits: bits), "b\(bits)")
            let budget = try XCTUnwrap(report["budget"])
            let planned = try XCTUnwrap(budget["bits_per_weight_planned"]?.doubleValue)
            XCTAssertEqual(try bitsPerWeight(out), planned, accuracy: 1e-12, "\(bits)")
            XCTAssertLessThanOrEqual(planned, bits)
            XCTAssertGreaterThan(planned, bits - 0.35, "the plan spends the budget (the next cheaper choice is at most one linear's step)")
            let linears = try XCTUnwrap(budget["linears"]?.arrayValue)
            XCTAssertEqual(linears.count, 14)
            let chosen = Set(linears.compactMap { $0["scheme"]?.stringValue })
            XCTAssertGreaterThan(chosen.count, 1, "\(bits): a budget between the candidates mixes them")
            let config = try JSONParser.parse(String(decoding: try Data(contentsOf: out.appendingPathComponent("config.json")), as: UTF8.self))
            let groups = try XCTUnwrap(config["quantization_config"]?["config_groups"]?.objectValue)
            XCTAssertEqual(groups.count, chosen.count, "one config group per chosen scheme")
            let targets = groups.flatMap { $0.value["targets"]?.arrayValue ?? [] }.compactMap(\.stringValue).sorted()
            XCTAssertEqual(targets, linears.compactMap { $0["name"]?.stringValue }.sorted(), "every linear named exactly once")
            // More bits never measured a larger error on the same linear.
            for l in linears {
                let errors = try XCTUnwrap(l["errors"]?.arrayValue).compactMap(\.doubleValue)
                XCTAssertEqual(errors.count, candidates.count)
                XCTAssertEqual(errors, errors.sorted(by: >), "\(l["name"]?.stringValue ?? ""): W2 ≥ W3 ≥ W4 ≥ W8")
            }
        }
    }

    /// HQQ with integer zero points (`integer_zero: true`, compressed-tensors) plans too: each
    /// candidate is HQQ's own solve at its bits and group, without calibration windows in the
    /// solve (the Hessian and Fisher still score it), and the folder costs the plan.
    func testHQQWithIntegerZerosPlansAndWritesWhatItPlanned() throws {
        let url = dir.appendingPathComponent("budget-hqq.yaml")
        try Data("""
            format: compressed-tensors
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 4, seq_len: 128, seed: 3}
            budget: {bits_per_weight: 3.2, candidates: [W2 g64 asym, W3 g64 asym, W4 g64 asym]}
            recipe:
              HQQModifier: {targets: [Linear], ignore: [lm_head], num_bits: 4, group_size: 64, integer_zero: true}
            """.utf8).write(to: url)
        let (out, report) = try quantize(url, "hqq")
        let budget = try XCTUnwrap(report["budget"])
        let planned = try XCTUnwrap(budget["bits_per_weight_planned"]?.doubleValue)
        XCTAssertEqual(try bitsPerWeight(out), planned, accuracy: 1e-12)
        XCTAssertLessThanOrEqual(planned, 3.2)
        let linears = try XCTUnwrap(budget["linears"]?.arrayValue)
        XCTAssertGreaterThan(Set(linears.compactMap { $0["scheme"]?.stringValue }).count, 1, "a budget between the candidates mixes them")
        for l in linears {
            let errors = try XCTUnwrap(l["errors"]?.arrayValue).compactMap(\.doubleValue)
            XCTAssertEqual(errors, errors.sorted(by: >), "W2 ≥ W3 ≥ W4")
        }
        let e = try QdistProcess.run(["eval", "--model", out.path, "--data", QdistProcess.wikitext("test").path, "--seq-len", "64", "--windows", "2", "--json"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(try XCTUnwrap(try JSONParser.parse(e.stdout)["ppl"]?.doubleValue).isFinite)
    }

    /// The sensitivity pass's output error of block 0's q_proj is ‖(W − Ŵ)X‖² · 2/windows,
    /// recomputed here in Float64 from the embedding rows, the RMSNorm and the written weights
    /// (with all windows measured, block 0's q/k/v see the same inputs in both passes, so the
    /// written codes are the candidate the pass scored). The file holds the scales in bf16, the
    /// pass scored them in float32: that rounding moves the error by a few 0.1 ‰, far less than
    /// the gap to the neighbouring candidates, which the test also requires.
    func testOutputErrorIsTheFloat64OutputErrorOfTheWrittenWeights() throws {
        let (out, report) = try quantize(try recipe(bits: 3.5, samples: 3, budgetSamples: 3, metric: "output_error"), "measured")
        let linears = try XCTUnwrap(report["budget"]?["linears"]?.arrayValue)
        let name = "model.layers.0.self_attn.q_proj"
        let entry = try XCTUnwrap(linears.first { $0["name"]?.stringValue == name })
        let k = try XCTUnwrap(candidates.firstIndex(of: try XCTUnwrap(entry["scheme"]?.stringValue)))
        let measured = try XCTUnwrap(entry["errors"]?.arrayValue?[k].doubleValue)

        let bundle = try ModelBundle.open(model.path)
        let config = bundle.config
        let set = try CalibrationSet.load(path: QdistProcess.wikitext("valid").path, samples: 3, seqLen: 128, seed: 3,
                                          tokenizer: bundle.tokenizer, communicator: SingleProcessCommunicator())
        let embedding = try bundle.weights.tensor("model.embed_tokens.weight", expectedShape: [config.vocabSize, config.hiddenSize])
        let norm = try bundle.weights.tensor("model.layers.0.input_layernorm.weight", expectedShape: [config.hiddenSize])
        let w = try bundle.weights.tensor(name + ".weight", expectedShape: [config.hiddenSize, config.hiddenSize])
        let written = try ModelBundle.open(out.path).weights.tensor(name + ".weight", expectedShape: [config.hiddenSize, config.hiddenSize])
        let (rows, columns) = (w.rows, w.columns)
        var sum = 0.0
        for window in set.windows {
            for token in window {
                var x = (0..<columns).map { Double(embedding.scalars[token * columns + $0]) }
                let rms = (x.reduce(0) { $0 + $1 * $1 } / Double(columns) + config.rmsNormEps).squareRoot()
                x = (0..<columns).map { x[$0] / rms * Double(norm.scalars[$0]) }
                for r in 0..<rows {
                    var d = 0.0
                    for c in 0..<columns { d += (Double(w.scalars[r * columns + c]) - Double(written.scalars[r * columns + c])) * x[c] }
                    sum += d * d
                }
            }
        }
        let reference = 2 * sum / Double(set.windows.count)
        XCTAssertEqual(measured, reference, accuracy: 3e-3 * reference, "sensitivity \(measured) vs float64 \(reference)")
        XCTAssertGreaterThan(reference, 0)
        let errors = try XCTUnwrap(entry["errors"]?.arrayValue).compactMap(\.doubleValue)
        for (j, e) in errors.enumerated() where j != k {
            XCTAssertGreaterThan(abs(e / measured - 1), 0.1, "candidate \(j) is told apart from the chosen one")
        }
    }

    /// One process with one and two OpenBLAS threads and 2, 3, 4 ranks under mpirun: the same
    /// plan (every linear's scheme and every measured error, to the bit) and the same tensors.
    func testPlanAndOutputAreTheSameForAnyRanksAndThreads() throws {
        let recipe = try recipe(bits: 3.5)
        let (reference, referenceReport) = try quantize(recipe, "p1t1")
        let plan = try XCTUnwrap(referenceReport["budget"]?["linears"])
        for (name, ranks, threads) in [("p1t2", nil, 2), ("p2", 2, 1), ("p3", 3, 1), ("p4", 4, 2)] as [(String, Int?, Int)] {
            let (out, report) = try quantize(recipe, name, ranks: ranks, threads: threads)
            XCTAssertEqual(report["budget"]?["linears"], plan, name)
            XCTAssertEqual(try CheckpointComparison.differingTensors(reference, out), [], name)
        }
    }

    /// `metric: kl` samples each window's labels from the float model: the labels follow the
    /// window, not the rank that measures it, so 1 and 3 ranks plan alike; and the plan is not
    /// the empirical Fisher's (the scores differ).
    func testKLMetricPlansTheSameForAnyRanksAndScoresOtherwiseThanFisher() throws {
        let recipe = try recipe(bits: 3.5, metric: "kl")
        let (_, reference) = try quantize(recipe, "kl-p1")
        let (_, threeRanks) = try quantize(recipe, "kl-p3", ranks: 3)
        let plan = try XCTUnwrap(reference["budget"]?["linears"])
        XCTAssertEqual(threeRanks["budget"]?["linears"], plan)
        XCTAssertEqual(reference["budget"]?["metric"]?.stringValue, "kl")
        let (_, fisher) = try quantize(try self.recipe(bits: 3.5), "fisher-p1")
        let errors = { (report: JSONValue) in (report["budget"]?["linears"]?.arrayValue ?? []).map { $0["errors"] } }
        XCTAssertEqual(errors(reference).count, errors(fisher).count)
        XCTAssertNotEqual(errors(reference), errors(fisher))
    }

    /// `--bits-per-weight` alone sets a budget on a plain recipe; `--plan-only` prints the plan
    /// and writes nothing; without a budget `--plan-only` is refused.
    func testBitsPerWeightFlagAndPlanOnlyWriteNothing() throws {
        let plain = dir.appendingPathComponent("plain.yaml")
        try Data("""
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 4, seq_len: 64}
            recipe: {QuantizationModifier: {scheme: W4A16_ASYM}}
            """.utf8).write(to: plain)
        let out = dir.appendingPathComponent("never")
        let r = try QdistProcess.run(["quantize", "--config", plain.path, "--model", model.path, "--output", out.path,
                                      "--bits-per-weight", "3.25", "--plan-only", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let plan = try JSONParser.parse(r.stdout)
        XCTAssertEqual(plan["bits_per_weight_target"]?.doubleValue, 3.25)
        XCTAssertLessThanOrEqual(try XCTUnwrap(plan["bits_per_weight_planned"]?.doubleValue), 3.25)
        XCTAssertEqual(plan["candidates"]?.arrayValue?.compactMap(\.stringValue), BudgetConfig.defaultCandidates)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "--plan-only writes no output")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains("never") }, [])
        let text = try QdistProcess.run(["quantize", "--config", plain.path, "--model", model.path, "--bits-per-weight", "3.25", "--plan-only"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("predicted size"), text.stdout)
        XCTAssertTrue(text.stdout.contains("block 1:"), text.stdout)

        let refused = try QdistProcess.run(["quantize", "--config", plain.path, "--model", model.path, "--plan-only"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("--bits-per-weight"), refused.stderr)
        let tooSmall = try QdistProcess.run(["quantize", "--config", plain.path, "--model", model.path, "--output", out.path,
                                             "--bits-per-weight", "1.5"])
        XCTAssertNotEqual(tooSmall.status, 0)
        XCTAssertTrue(tooSmall.stderr.contains("cannot be met"), tooSmall.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "a refused budget leaves no output")
    }

    /// `format: gguf` with a budget: each targeted linear takes one of the candidate block types
    /// (the mix types everything else); the file holds exactly the plan's types, its decoder
    /// linears cost what the plan predicted, it evaluates, and two ranks write the same bytes.
    func testGGUFBudgetWritesEachLinearInItsPlannedBlockType() throws {
        let recipe = dir.appendingPathComponent("gguf-budget.yaml")
        try Data("""
            format: gguf
            gguf: {type: Q4_K_M}
            calibration: {data: \(QdistProcess.wikitext("valid").path), samples: 4, seq_len: 64, seed: 0}
            budget: {bits_per_weight: 5.5, candidates: [Q4_0, Q5_0, Q8_0, Q4_K, Q6_K]}
            recipe: {GPTQModifier: {scheme: GGUF, actorder: null}}
            """.utf8).write(to: recipe)
        let out = dir.appendingPathComponent("budget.gguf")
        let r = try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let budget = try XCTUnwrap(try JSONParser.parse(r.stdout)["budget"])
        let planned = try XCTUnwrap(budget["bits_per_weight_planned"]?.doubleValue)
        XCTAssertLessThanOrEqual(planned, 5.5)
        XCTAssertEqual(try bitsPerWeight(out), planned, accuracy: 1e-12)
        let file = try GGUFFile(url: out)
        let types = Dictionary(uniqueKeysWithValues: file.tensorInfos.map { ($0.name, $0.type.traits.name) })
        var chosen: Set<String> = []
        for l in try XCTUnwrap(budget["linears"]?.arrayValue) {
            let name = try XCTUnwrap(l["name"]?.stringValue), scheme = try XCTUnwrap(l["scheme"]?.stringValue)
            let gguf = try XCTUnwrap(GGUFTensorNames.gguf(fromHuggingFace: name + ".weight")?.name, name)
            XCTAssertEqual(types[gguf], scheme, name)
            chosen.insert(scheme)
        }
        XCTAssertGreaterThan(chosen.count, 1, "a budget between the candidates mixes them")
        let e = try QdistProcess.run(["eval", "--model", out.path, "--data", QdistProcess.wikitext("test").path, "--seq-len", "64", "--windows", "2", "--json"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(try XCTUnwrap(try JSONParser.parse(e.stdout)["ppl"]?.doubleValue).isFinite)

        let two = dir.appendingPathComponent("budget-p2.gguf")
        let r2 = try QdistProcess.run(["quantize", "--config", recipe.path, "--model", model.path, "--output", two.path], ranks: 2)
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertTrue(try Data(contentsOf: two) == Data(contentsOf: out), "two ranks write the same file")
    }

    /// The plan is on disk before the quantization pass (in the staging folder, so a job split
    /// with --stop-after-block shows it), the resumed job takes it without measuring again, a
    /// rerun with another budget is refused before measuring, and the finished folder holds the
    /// plan only in its report.
    func testPlanIsStagedBeforeTheQuantizationPassAndKeptAcrossAResume() throws {
        let recipe = try recipe(bits: 3.5)
        let out = dir.appendingPathComponent("split")
        let args = ["quantize", "--config", recipe.path, "--model", model.path, "--output", out.path]
        let first = try QdistProcess.run(args + ["--stop-after-block", "0"])
        XCTAssertEqual(first.status, 3, first.stderr)
        XCTAssertFalse(first.stdout.contains("is reused"), first.stdout)
        XCTAssertTrue(first.stdout.contains("bits per weight asked"), "the plan is printed: \(first.stdout)")
        let staged = dir.appendingPathComponent(".split.qdist-partial/budget_plan.json")
        let plan = try JSONParser.parse(String(decoding: try Data(contentsOf: staged), as: UTF8.self))
        XCTAssertEqual(plan["linears"]?.arrayValue?.count, 14)
        XCTAssertNotNil(plan["resume_key"]?["job"], "the staged plan names the job it was made for")

        let other = try QdistProcess.run(args + ["--bits-per-weight", "4.5"])
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.stderr.contains("another budget or recipe") && other.stderr.contains("--no-resume"), other.stderr)
        XCTAssertFalse(other.stdout.contains("bits per weight asked"), "refused before measuring: \(other.stdout)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: staged.path), "the refused run leaves the staged job as it was")

        let r = try QdistProcess.run(args)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("resuming after block 0"), r.stdout)
        XCTAssertTrue(r.stdout.contains("plan staged by the earlier run is reused"), r.stdout)
        let report = try JSONParser.parse(String(decoding: try Data(contentsOf: out.appendingPathComponent("quantization_report.json")), as: UTF8.self))
        XCTAssertEqual(report["budget"]?["linears"], plan["linears"], "the same allocation after the resume")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("budget_plan.json").path))
    }
}
