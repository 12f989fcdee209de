import Foundation
import QDistComm
import QDistIO
import QDistModel
import QDistQuant
import QDistTensor

/// The quantization job: block by block with one block's weights in memory, calibration
/// activations flowing through the already-quantized blocks (`sequential: block`), GPTQ or
/// round-to-nearest per linear, then the chosen checkpoint format written atomically.
///
/// Ranks split the calibration windows; Hessians are summed across ranks (weighted by sample
/// counts) before each solve, so every rank solves with exactly the single-process statistics
/// and holds identical quantized weights. Only rank 0 writes.
public enum SequentialQuantizer {
    /// Everything the job needs, already resolved from recipe + command line.
    public struct Job {
        public var bundle: ModelBundle
        public var plan: QuantizationPlan
        public var format: QuantizeJobConfig.OutputFormat
        public var sequential: QuantizeJobConfig.SequentialMode
        public var calibration: CalibrationConfig
        public var output: URL
        public var overwrite: Bool
        public var recipeName: String

        public init(bundle: ModelBundle, plan: QuantizationPlan, format: QuantizeJobConfig.OutputFormat,
                    sequential: QuantizeJobConfig.SequentialMode, calibration: CalibrationConfig, output: URL,
                    overwrite: Bool, recipeName: String) {
            (self.bundle, self.plan, self.format, self.sequential) = (bundle, plan, format, sequential)
            (self.calibration, self.output, self.overwrite, self.recipeName) = (calibration, output, overwrite, recipeName)
        }
    }

    public static func run(_ job: Job, communicator comm: any Communicator, log: (String) -> Void) throws -> QuantizationReport {
        let start = Date()
        let config = job.bundle.config
        let rotary = LlamaModel.rotary(for: config)
        var report = QuantizationReport()
        report.recipe = job.recipeName
        report.algorithm = job.plan.algorithm.rawValue
        report.format = job.format.rawValue
        report.worldSize = comm.size

        // Round-to-nearest needs no activations; GPTQ calibrates on this rank's windows.
        let needsCalibration = job.plan.algorithm == .gptq
        var activations: [Tensor] = []
        if needsCalibration {
            guard let data = job.calibration.data else {
                throw QuantizePlanError(description: "GPTQ needs calibration data: set calibration.data or --data")
            }
            let set = try CalibrationSet.load(path: data, samples: job.calibration.samples, seqLen: job.calibration.seqLen,
                                              seed: job.calibration.seed, tokenizer: job.bundle.tokenizer, communicator: comm)
            report.calibrationWindows = set.windows.count
            report.calibrationSeqLen = job.calibration.seqLen
            let embedding = try job.bundle.weights.tensor("model.embed_tokens.weight", expectedShape: [config.vocabSize, config.hiddenSize])
            activations = set.share(rank: comm.rank, size: comm.size).map { LlamaModel.embed($0, table: embedding) }
        }
        report.seconds["calibration_setup"] = Date().timeIntervalSince(start)

        var quantized: [QuantizedLinearWeights] = []
        var forwardSeconds = 0.0, solveSeconds = 0.0, collectiveSeconds = 0.0
        let progress = ProgressReporter(label: "quantize: block", total: config.numHiddenLayers, unit: "blocks", enabled: comm.isMain)
        for b in 0..<config.numHiddenLayers {
            let original = try LlamaBlockWeights.load(block: b, from: job.bundle.weights, config: config)
            var weights = original
            let entries = job.plan.entries(inBlock: b)
            let stages: [[LinearGroup]] = job.sequential == .linear ? LinearGroup.allCases.map { [$0] } : [LinearGroup.allCases]
            for stage in stages {
                let stageEntries = entries.values.filter { LinearGroup.containing($0.suffix).map(stage.contains) ?? false }
                    .sorted { $0.suffix < $1.suffix }
                guard !stageEntries.isEmpty else { continue }
                var hessians: [LinearGroup: HessianAccumulator] = [:]
                if needsCalibration {
                    let t0 = Date()
                    let sizes = Dictionary(stageEntries.map { (LinearGroup.containing($0.suffix)!, $0.inFeatures) }, uniquingKeysWith: { a, _ in a })
                    var observer: (any BlockInputObserver)? = HessianCollector(groups: stage, inputSizes: sizes)
                    let block = LlamaBlock(index: b, weights: weights, config: config, rotary: rotary)
                    var cache: KVCache? = nil
                    for x in activations { _ = block.forward(x, cache: &cache, observer: &observer) }
                    forwardSeconds += Date().timeIntervalSince(t0)
                    let t1 = Date()
                    hessians = try combine((observer as! HessianCollector).accumulators, communicator: comm)
                    collectiveSeconds += Date().timeIntervalSince(t1)
                }
                for entry in stageEntries {
                    let t0 = Date()
                    let layer = weights.linears[entry.suffix]!
                    let (dequantized, layerReport, q) = try quantize(layer, entry: entry, hessian: hessians[LinearGroup.containing(entry.suffix)!]?.hessian,
                                                                     plan: job.plan)
                    weights.linears = [entry.suffix: LinearLayer(weight: dequantized, bias: layer.bias)]
                    var r = layerReport
                    r.seconds = Date().timeIntervalSince(t0)
                    solveSeconds += r.seconds
                    report.layers.append(r)
                    quantized.append(q)
                }
            }
            // Propagate: the next block sees this block's quantized outputs (or the original
            // model's, for `sequential: none`).
            if needsCalibration {
                let t0 = Date()
                let block = LlamaBlock(index: b, weights: job.sequential == .none ? original : weights, config: config, rotary: rotary)
                var cache: KVCache? = nil
                var none: (any BlockInputObserver)? = nil
                activations = activations.map { block.forward($0, cache: &cache, observer: &none) }
                forwardSeconds += Date().timeIntervalSince(t0)
            }
            progress.update(done: b + 1, work: b + 1)
        }
        report.seconds["forward"] = forwardSeconds
        report.seconds["solve"] = solveSeconds
        report.seconds["collectives"] = collectiveSeconds

        let writeStart = Date()
        if comm.isMain {
            try QuantizedModelOutput.write(job: job, linears: quantized, report: report)
        }
        try comm.barrier()
        report.seconds["write"] = Date().timeIntervalSince(writeStart)
        report.seconds["total"] = Date().timeIntervalSince(start)
        report.peakResidentBytesPerRank = try comm.allgather([ProcessMemory.peakResidentBytes ?? 0])
        return report
    }

    /// Sums every rank's partial Hessians (weighted by their sample counts) on all ranks.
    static func combine(_ parts: [LinearGroup: HessianAccumulator], communicator comm: any Communicator) throws -> [LinearGroup: HessianAccumulator] {
        guard comm.size > 1 else { return parts }
        var out: [LinearGroup: HessianAccumulator] = [:]
        for group in LinearGroup.allCases {
            guard let h = parts[group] else { continue }
            var sum = h.weightedSum.scalars
            var count = [h.sampleCount]
            try comm.allreduce(&sum, op: .sum)
            try comm.allreduce(&count, op: .sum)
            out[group] = HessianAccumulator(weightedSum: Tensor(shape: h.hessian.shape, scalars: sum), sampleCount: count[0])
        }
        return out
    }

    /// One linear: GPTQ with its Hessian, or round-to-nearest; with its report line and its
    /// stored form.
    static func quantize(_ layer: LinearLayer, entry: QuantizationPlan.Entry, hessian: Tensor?, plan: QuantizationPlan) throws
        -> (Tensor, QuantizationReport.Layer, QuantizedLinearWeights)
    {
        let w = layer.weight
        let result: QuantizedWeight, dequantized: Tensor, loss: Double?
        if let hessian, plan.algorithm == .gptq {
            let r = try GPTQSolver.quantizeWeight(w, hessian: hessian, args: entry.args, blockSize: plan.blockSize, dampening: plan.dampening)
            (result, dequantized, loss) = (r.weight, r.dequantized, r.loss)
        } else {
            result = try QuantizationGrid(entry.args).quantize(w)
            (dequantized, loss) = (result.dequantized(), nil)
        }
        let e = w - dequantized
        let relative: Double, kind: String
        if let hessian {
            relative = (quadratic(e, hessian) / max(quadratic(w, hessian), .leastNonzeroMagnitude)).squareRoot()
            kind = "output"
        } else {
            relative = (e.scalars.reduce(0) { $0 + Double($1 * $1) } / max(w.scalars.reduce(0) { $0 + Double($1 * $1) }, .leastNonzeroMagnitude)).squareRoot()
            kind = "weight"
        }
        let stored = try QuantizedLinearWeights(quantizedWeight: result, name: entry.name, bias: layer.bias)
        return (dequantized, .init(name: entry.name, bits: entry.args.numBits, groupSize: entry.args.strategy == .group ? entry.args.groupSize : nil,
                                   gptqLoss: loss, relativeError: relative, errorKind: kind, seconds: 0), stored)
    }

    /// Σ_ij (A·H)_ij · A_ij = tr(A H Aᵀ), in Double.
    static func quadratic(_ a: Tensor, _ h: Tensor) -> Double {
        let ah = Tensor.matmul(a, h)
        var s = 0.0
        for i in 0..<a.count { s += Double(ah.scalars[i]) * Double(a.scalars[i]) }
        return s
    }
}

extension QuantizedLinearWeights {
    /// The stored form of a quantizer's output (signed codes and zero points, per-tensor scales
    /// repeated per output channel).
    init(quantizedWeight q: QuantizedWeight, name: String, bias: Tensor?) throws {
        let p = q.parameters
        let rows = q.rows
        let scales = p.strategy == .tensor ? [Float](repeating: p.scales[0], count: rows) : p.scales
        let zeros = p.strategy == .tensor ? [Float](repeating: p.zeroPoints[0], count: rows) : p.zeroPoints
        let groupSize: Int? = p.strategy == .group ? p.groupSize : nil
        try self.init(name: name, inFeatures: q.columns, outFeatures: rows, numBits: q.args.numBits, groupSize: groupSize,
                      signedCodes: q.codes.map(Int32.init), scales: scales,
                      signedZeroPoints: q.args.symmetric ? nil : zeros.map { Int32($0.rounded()) },
                      gIdx: p.strategy == .group ? q.groupIndex : nil, bias: bias)
    }
}
