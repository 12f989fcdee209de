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
        /// Each window's (min, max) on this rank, to be averaged in global window order with
        /// `constant` (llm-compressor's `minmax`: 0.01; `memoryless_minmax`: 1).
        case movingAverage(windows: [Float], constant: Float)
    }

    /// llm-compressor's `averaging_constant` default.
    static let averagingConstant: Float = 0.01

    var statistics: [LinearGroup: Statistics]

    /// Statistics for the groups of `entries` that have a static input scheme; empty when none.
    init(entries: [QuantizationPlan.Entry]) {
        var statistics: [LinearGroup: Statistics] = [:]
        for e in entries {
            guard let args = e.inputCalibrationArgs, let group = LinearGroup.containing(e.suffix) else { continue }
            let wantsHistogram = args.observer == .percentile || args.observer == .kl
            switch statistics[group] {
            case .histogram?: continue
            case .minMax? where !wantsHistogram, .movingAverage? where !wantsHistogram: continue
            default:
                if wantsHistogram {
                    statistics[group] = .histogram(HistogramStatistics(bins: args.histogramBins))
                } else {
                    switch e.inputActivations?.observer.flatMap(WeightArgsConfig.Observer.init(rawValue:)) {
                    case .staticMinmax?: statistics[group] = .minMax(MinMaxStatistics())
                    case .memorylessMinmax?: statistics[group] = .movingAverage(windows: [], constant: 1)
                    default: statistics[group] = .movingAverage(windows: [], constant: Self.averagingConstant)
                    }
                }
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
        case .movingAverage(var windows, let c)?:
            let (lo, hi) = input.minMax()
            windows += [lo, hi]
            statistics[group] = .movingAverage(windows: windows, constant: c)
        case nil: break
        }
    }

    /// The moving average of the windows' ranges in global window order (window i is the
    /// (i / P)-th of rank i mod P): every rank computes the same average, whatever P is.
    static func movingAverage(_ byRank: [[Float]], constant c: Float) -> (min: Float, max: Float) {
        let windows = byRank.reduce(0) { $0 + $1.count / 2 }
        guard windows > 0 else { return (0, 0) }
        var lo = byRank[0][0], hi = byRank[0][1]
        for i in 1..<windows {
            let w = byRank[i % byRank.count], k = 2 * (i / byRank.count)
            // torch.lerp(old, new, c) = old + c · (new − old)
            lo = lo + c * (w[k] - lo)
            hi = hi + c * (w[k + 1] - hi)
        }
        return (lo, hi)
    }

    /// Every rank's statistics combined on every rank (collectives in a fixed group order, so
    /// all ranks issue the same calls).
    mutating func combine(communicator comm: any Communicator) throws {
        for g in LinearGroup.allCases {
            guard case .movingAverage(let windows, let c)? = statistics[g] else { continue }
            let byRank = comm.size > 1 ? try comm.allgatherv(windows) : [windows]
            let (lo, hi) = Self.movingAverage(byRank, constant: c)
            statistics[g] = .minMax(MinMaxStatistics(mins: [lo], maxs: [hi]))
        }
        guard comm.size > 1 else { return }
        let groups = LinearGroup.allCases.filter { statistics[$0] != nil }
        var mins: [Float] = [], maxs: [Float] = [], exponents: [Double] = []
        for g in groups {
            switch statistics[g]! {
            case .minMax(let s): mins.append(s.mins[0]); maxs.append(s.maxs[0]); exponents.append(0)
            case .histogram(let h): mins.append(h.min); maxs.append(h.max); exponents.append(Double(h.exponent))
            case .movingAverage: preconditionFailure("moving averages are resolved above")
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
            case .movingAverage: break
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
            case .minmax, .mse, .absmean, .absmax: return h.min <= h.max ? ClipRange(min: h.min, max: h.max) : ClipRange(min: 0, max: 0)
            }
        case .movingAverage?, nil: return ClipRange(min: 0, max: 0)
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
