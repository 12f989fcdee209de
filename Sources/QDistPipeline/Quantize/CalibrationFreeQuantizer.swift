import Foundation
import QDistComm
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor

/// The quantize pipeline for recipes that need no forward pass — round-to-nearest without
/// static input scales, HQQ, NF4/FP4, FP8_DYNAMIC, LLM.int8, ternary: nothing flows from one
/// block to the next, so there is no reason to go block by block. The linears of every
/// unrecorded block are dealt to ranks at once by solve cost (`SolveAssignment`, elementwise,
/// never split so each linear has one writer); each rank reads only its own linears' weights,
/// solves them, and stages what it solved, one file per block it has linears in. No weights
/// travel between ranks: one gather of file names and report lines lets rank 0 record the
/// blocks, and the shards are then written as in the block-by-block pipeline. With more ranks
/// than a block has linears, this keeps every rank busy where per-block dealing cannot.
///
/// Resuming: a run that dies leaves its finished part files (`QuantizeProgressFolder+Parts`);
/// the rerun adopts them, whatever P wrote them, and solves only the rest. `--stop-after-block`
/// deals and records only the blocks up to it.
enum CalibrationFreeQuantizer {
    /// Solves and records every block the folder has not recorded yet (up to `job.stopAfterBlock`),
    /// adding their report lines to `report`; throws `StoppedAfterBlock` when asked to stop.
    static func run(_ job: SequentialQuantizer.Job, folder: QuantizeProgressFolder, report: inout QuantizationReport,
                    timers: inout RankTimers, communicator comm: any Communicator, log: (String) -> Void) throws {
        let layers = job.bundle.config.numHiddenLayers
        for b in 0..<min(folder.completedBlocks, layers) { report.layers += try folder.record(b).layers }
        let stop = job.stopAfterBlock.map { max($0, folder.completedBlocks) }
        let last = min(layers - 1, stop ?? layers - 1)
        guard folder.completedBlocks <= last else { return }
        let blocks = folder.completedBlocks...last

        // What an earlier attempt finished: rank 0 reads the staging folder, everyone learns it.
        let t0 = Date()
        var adopted: [QuantizeProgressFolder.AdoptedFile] = [], part = 0
        if comm.isMain { (adopted, part) = folder.adoptableFiles() }
        let shared = try comm.allgatherStrings(comm.isMain ? String(decoding: JSONValue.object([
            (key: "part", value: .integer(part)),
            (key: "linears", value: .array(adopted.flatMap(\.linears).map { .string($0) })),
        ]).serialized(), as: UTF8.self) : "")[0]
        let sharedJSON = try JSONParser.parse(shared)
        part = sharedJSON["part"]?.intValue ?? 0
        let done = Set(sharedJSON["linears"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        if comm.isMain && !done.isEmpty {
            log("quantize: adopting \(done.count) linears an interrupted run staged (\(adopted.count) files)")
        }
        timers.collectives += Date().timeIntervalSince(t0)

        let entries = blocks.flatMap { b in job.plan.entries(inBlock: b).values.sorted { $0.suffix < $1.suffix } }
            .filter { !done.contains($0.name) }
        let assignment = SolveAssignment(linears: entries.map { .init(name: $0.name, rows: $0.outFeatures, columns: $0.inFeatures, splittable: false) },
                                         ranks: comm.size, costModel: .elementwise)
        let byName = Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) })
        let mine = assignment.items(of: comm.rank)
        let inputs = try ActivationCalibration.parameters(for: mine.compactMap { byName[$0.name] }, ranges: nil)
        let progress = ProgressReporter(label: "quantize: linear", total: mine.count, unit: "linears", enabled: comm.isMain)
        if comm.isMain {
            log("quantize: \(entries.count) linears of blocks \(blocks.lowerBound)…\(blocks.upperBound) dealt to \(comm.size) rank\(comm.size == 1 ? "" : "s") at once (no forward pass needed)")
        }

        var written: [JSONValue] = []
        var solvedCount = 0
        for b in blocks {
            if let f = job.injectedFailure, f.rank == comm.rank, f.block == b {
                throw QuantizePlanError(description: "injected failure in block \(b) (--inject-failure)")
            }
            let items = mine.filter { byName[$0.name]?.block == b }
            guard !items.isEmpty else { continue }
            var staged: [StagedLinear] = [], reports: [QuantizationReport.Layer] = []
            for item in items {
                guard let entry = byName[item.name] else { continue }
                let ts = Date()
                let weight = try job.bundle.weights.tensor(entry.name + ".weight", expectedShape: [entry.outFeatures, entry.inFeatures])
                let bias = job.bundle.weights.contains(entry.name + ".bias")
                    ? try job.bundle.weights.tensor(entry.name + ".bias", expectedShape: [entry.outFeatures]) : nil
                let piece = try SequentialQuantizer.solve(weight, item: item, entry: entry, hessian: nil, plan: job.plan)
                let solved = try QuantizedLinearExchange.assemble([piece], template: .init(entry: entry, bias: bias, kind: "weight"))
                staged.append(StagedLinear(weights: solved.weights, input: inputs[entry.name]))
                reports.append(solved.report)
                timers.solve += Date().timeIntervalSince(ts)
                solvedCount += 1
            }
            // After the block's linears, as the block loop reports: a bad weight's error stays the only line.
            progress.update(done: solvedCount, work: solvedCount)
            let tw = Date()
            if let file = try folder.writeLinears(staged, block: b, rank: comm.rank, part: part, reports: reports) {
                written.append(.object([(key: "block", value: .integer(b)), (key: "file", value: .string(file)),
                                        (key: "layers", value: .array(reports.map(\.jsonValue)))]))
            }
            timers.io += Date().timeIntervalSince(tw)
            timers.sampleMemory()
        }

        // Every rank learns every file and report line; rank 0 records the blocks in order.
        let tg = Date()
        let gathered = try comm.allgatherStrings(String(decoding: JSONValue.array(written).serialized(), as: UTF8.self))
        timers.collectives += Date().timeIntervalSince(tg)
        var files: [Int: [String]] = [:], lines: [Int: [QuantizationReport.Layer]] = [:]
        for a in adopted {
            files[a.block, default: []].append(a.file)
            lines[a.block, default: []] += a.reports
        }
        for (rank, text) in gathered.enumerated() {
            for w in try JSONParser.parse(text).arrayValue ?? [] {
                guard let b = w["block"]?.intValue, let file = w["file"]?.stringValue, let layerLines = w["layers"]?.arrayValue else {
                    throw QuantizePlanError(description: "rank \(rank) sent a malformed list of staged files")
                }
                files[b, default: []].append(file)
                lines[b, default: []] += try layerLines.map { try QuantizationReport.Layer(json: $0, path: "rank \(rank)") }
            }
        }
        let tr = Date()
        for b in blocks {
            let blockLines = (lines[b] ?? []).sorted { $0.name < $1.name }
            if comm.isMain { try folder.recordBlock(b, files: (files[b] ?? []).sorted(), layers: blockLines) }
            report.layers += blockLines
        }
        try comm.barrier()
        timers.io += Date().timeIntervalSince(tr)
        if let stop, stop < layers {
            throw SequentialQuantizer.StoppedAfterBlock(block: last, staging: folder.staging.path)
        }
    }
}
