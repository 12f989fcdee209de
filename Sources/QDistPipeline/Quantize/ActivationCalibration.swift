import QDistComm
import QDistModel
import QDistQuant
import QDistTensor

/// Static input scales for W8A8 (issue 5): while a block is observed, every linear group whose
/// members have a static input scheme folds its input into range statistics — the exact
/// min/max (`MinMaxStatistics`) for the `minmax` observer, or a mergeable power-of-two histogram
/// (`HistogramStatistics`) when some member calibrates with `percentile` or `kl`. Ranks combine
/// them with collectives (`Allreduce` MIN/MAX on ranges; MAX on histogram exponents, then SUM on
/// the re-binned counts), so every rank holds the statistics of all calibration tokens and
/// derives the same scale — independent of the number of ranks — with compressed-tensors'
/// `calculate_qparams` (QDistQuant's `QuantizationGrid`) from the observer's clip range.
///
/// The observers and the grid stay pure (QDistQuant); only the moving of data is here.
struct ActivationRangeCollector: BlockInputObserver {
    /// One group's statistics.
    enum Statistics {
        case minMax(MinMaxStatistics)
        case histogram(HistogramStatistics)
    }

    var statistics: [LinearGroup: Statistics]

    /// Statistics for the groups of `entries` that have a static input scheme; empty when none.
    init(entries: [QuantizationPlan.Entry]) {
        var statistics: [LinearGroup: Statistics] = [:]
        for e in entries {
            guard let args = e.inputCalibrationArgs, let group = LinearGroup.containing(e.suffix) else { continue }
            let wantsHistogram = args.observer == .percentile || args.observer == .kl
            switch statistics[group] {
            case .histogram?: continue
            case .minMax? where !wantsHistogram: continue
            default:
                statistics[group] = wantsHistogram ? .histogram(HistogramStatistics(bins: args.histogramBins)) : .minMax(MinMaxStatistics())
            }
        }
        self.statistics = statistics
    }

    var isEmpty: Bool { statistics.isEmpty }

    mutating func observe(block: Int, group: LinearGroup, input: Tensor) {
        switch statistics[group] {
        case .minMax(var s)?:
            s.observe(input)
            statistics[group] = .minMax(s)
        case .histogram(var h)?:
            h.observe(input)
            statistics[group] = .histogram(h)
        case nil: break
        }
    }

    /// Every rank's statistics combined on every rank (collectives in a fixed group order, so
    /// all ranks issue the same calls).
    mutating func combine(communicator comm: any Communicator) throws {
        guard comm.size > 1 else { return }
        let groups = LinearGroup.allCases.filter { statistics[$0] != nil }
        var mins: [Float] = [], maxs: [Float] = [], exponents: [Double] = []
        for g in groups {
            switch statistics[g]! {
            case .minMax(let s): mins.append(s.mins[0]); maxs.append(s.maxs[0]); exponents.append(0)
            case .histogram(let h): mins.append(h.min); maxs.append(h.max); exponents.append(Double(h.exponent))
            }
        }
        try comm.allreduce(&mins, op: .min)
        try comm.allreduce(&maxs, op: .max)
        try comm.allreduce(&exponents, op: .max)
        // Histograms: agree on the range first, then the counts add bin by bin.
        var counts: [Double] = []
        for (i, g) in groups.enumerated() {
            guard case .histogram(var h) = statistics[g]! else { continue }
            h.widen(toExponent: Int(exponents[i]))
            counts += h.counts + [h.nonFinite]
            statistics[g] = .histogram(h)
        }
        if !counts.isEmpty { try comm.allreduce(&counts, op: .sum) }
        var cursor = 0
        for (i, g) in groups.enumerated() {
            switch statistics[g]! {
            case .minMax:
                statistics[g] = .minMax(MinMaxStatistics(mins: [mins[i]], maxs: [maxs[i]]))
            case .histogram(let h):
                let n = h.bins
                statistics[g] = .histogram(HistogramStatistics(min: mins[i], max: maxs[i], exponent: h.exponent,
                                                               counts: Array(counts[cursor..<cursor + n]), nonFinite: counts[cursor + n]))
                cursor += n + 1
            }
        }
    }

    /// The clip range `args.observer` chooses from `group`'s statistics.
    func range(group: LinearGroup, args: QuantizationArgs) -> ClipRange {
        switch statistics[group] {
        case .minMax(let s)?: return s.range()
        case .histogram(let h)?:
            switch args.observer {
            case .percentile: return PercentileObserver(percentile: args.percentile, bins: h.bins).range(of: h)
            case .kl: return KLObserver(bins: h.bins, quantizedBins: 1 << (args.numBits - 1)).range(of: h)
            case .minmax, .mse: return h.min <= h.max ? ClipRange(min: h.min, max: h.max) : ClipRange(min: 0, max: 0)
            }
        case nil: return ClipRange(min: 0, max: 0)
        }
    }
}

enum ActivationCalibration {
    /// The input parameters of every entry that quantizes its input: dynamic schemes as they
    /// are, static ones with the scale (and zero point) from the combined `ranges`.
    static func parameters(for entries: [QuantizationPlan.Entry], ranges: ActivationRangeCollector?) throws
        -> [String: InputActivationParameters]
    {
        var out: [String: InputActivationParameters] = [:]
        for e in entries {
            guard let scheme = e.inputActivations else { continue }
            guard let args = e.inputCalibrationArgs else {
                out[e.name] = try InputActivationParameters(scheme: scheme, subject: e.name)
                continue
            }
            guard let ranges, let group = LinearGroup.containing(e.suffix) else {
                throw QuantizePlanError(description: "\(e.name): static input activations need calibration statistics")
            }
            let clip = ranges.range(group: group, args: args)
            guard clip.min.isFinite, clip.max.isFinite else {
                throw QuantizePlanError(description: "\(e.name): its calibration inputs are not finite (range \(clip.min)…\(clip.max)); cannot calibrate a static input scale")
            }
            let (scale, zero) = try QuantizationGrid(args).parameters(min: clip.min, max: clip.max)
            out[e.name] = try InputActivationParameters(scheme: scheme, scale: scale,
                                                        zeroPoint: scheme.symmetric ? nil : Int32(zero), subject: e.name)
        }
        return out
    }
}
