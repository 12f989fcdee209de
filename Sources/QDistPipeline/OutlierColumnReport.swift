import QDistComm
import QDistModel

/// `qdist eval`'s report of LLM.int8's outlier columns: for each int8 linear, the share of its
/// input columns that held some |x| ≥ threshold and so ran in float, over every window of every
/// rank. The counts are integers summed with an Allreduce, so the report is the same for any P.
public enum OutlierColumnReport {
    /// One linear's totals.
    public struct Layer: Sendable, Equatable {
        public var name: String
        public var counts: OutlierColumnTally.Counts
    }

    /// Every rank's tallies summed (the most columns in one call: the maximum); every rank gets
    /// the result. All ranks pass the same layers in the same order.
    public static func combine(_ tallies: [(name: String, tally: OutlierColumnTally)],
                               communicator comm: any Communicator) throws -> [Layer] {
        let local = tallies.map(\.tally.snapshot)
        var sums = local.flatMap { [$0.calls, $0.outlierColumns, $0.columns] }
        var maxima = local.map(\.maxOutlierColumns)
        if comm.size > 1 {
            try comm.allreduce(&sums, op: .sum)
            try comm.allreduce(&maxima, op: .max)
        }
        return tallies.indices.map { i in
            Layer(name: tallies[i].name, counts: .init(calls: sums[3 * i], outlierColumns: sums[3 * i + 1],
                                                       columns: sums[3 * i + 2], maxOutlierColumns: maxima[i]))
        }
    }

    /// Lines for the terminal: the overall share, the mean per kind of linear, and the layers
    /// with the largest shares.
    public static func summary(_ layers: [Layer], threshold: Float?, top: Int = 5) -> [String] {
        guard !layers.isEmpty else { return [] }
        let all = layers.reduce(into: OutlierColumnTally.Counts()) {
            $0.outlierColumns += $1.counts.outlierColumns
            $0.columns += $1.counts.columns
        }
        var byKind: [String: (outliers: Int, columns: Int)] = [:]
        for l in layers {
            let kind = String(l.name.split(separator: ".").last ?? "")
            byKind[kind, default: (0, 0)].outliers += l.counts.outlierColumns
            byKind[kind, default: (0, 0)].columns += l.counts.columns
        }
        func percent(_ x: Double) -> String { String(format: "%.2f %%", 100 * x) }
        let kinds = byKind.keys.sorted().map { k in "\(k) \(percent(Double(byKind[k]!.outliers) / Double(max(byKind[k]!.columns, 1))))" }
        let worst = layers.sorted { $0.counts.share > $1.counts.share }.prefix(top)
            .map { "\($0.name) \(percent($0.counts.share)) (up to \($0.counts.maxOutlierColumns) columns)" }
        return ["LLM.int8 outlier columns\(threshold.map { " (|x| ≥ \($0), kept in float)" } ?? ""): \(percent(all.share)) of input columns over \(layers.count) linears; by kind: \(kinds.joined(separator: ", "))",
                "  largest: \(worst.joined(separator: "; "))"]
    }
}
