import Foundation

/// How many input columns LLM.int8's decomposition kept in float at one linear, summed over
/// the forward calls it saw (`InputQuantizer.outlierTally`): what `qdist eval` reports as each
/// layer's outlier share. Counts are integers, so summing them over ranks is exact and the
/// report does not depend on P.
///
/// A reference type because the quantizer is a value copied into the model: the model's copy
/// and the caller's handle must count into the same place. Thread-safe (a lock), though the
/// decoder calls a linear from one thread at a time.
public final class OutlierColumnTally: @unchecked Sendable {
    /// The sums so far.
    public struct Counts: Sendable, Equatable {
        /// Forward calls (one per window in `qdist eval`).
        public var calls = 0
        /// Outlier columns, summed over calls.
        public var outlierColumns = 0
        /// Input columns, summed over calls.
        public var columns = 0
        /// The most outlier columns in one call.
        public var maxOutlierColumns = 0

        public init(calls: Int = 0, outlierColumns: Int = 0, columns: Int = 0, maxOutlierColumns: Int = 0) {
            (self.calls, self.outlierColumns, self.columns, self.maxOutlierColumns) = (calls, outlierColumns, columns, maxOutlierColumns)
        }

        /// Outlier columns as a fraction of all input columns seen (0 when nothing was seen).
        public var share: Double { columns == 0 ? 0 : Double(outlierColumns) / Double(columns) }
    }

    private let lock = NSLock()
    private var counts = Counts()

    public init() {}

    /// One forward call: `outliers` of `columns` input columns stayed in float.
    public func record(outliers: Int, columns: Int) {
        lock.lock()
        defer { lock.unlock() }
        counts.calls += 1
        counts.outlierColumns += outliers
        counts.columns += columns
        counts.maxOutlierColumns = max(counts.maxOutlierColumns, outliers)
    }

    /// The sums so far.
    public var snapshot: Counts {
        lock.lock()
        defer { lock.unlock() }
        return counts
    }
}

extension LlamaModel {
    /// Gives every LLM.int8 linear (an input quantizer in `.llmInt8` mode) a fresh tally and
    /// returns them by module name (`model.layers.3.mlp.down_proj`), in block order; empty when
    /// the model has none.
    public mutating func attachOutlierTallies() -> [(name: String, tally: OutlierColumnTally)] {
        var attached: [(name: String, tally: OutlierColumnTally)] = []
        for b in blocks.indices {
            var linears = blocks[b].weights.linears
            for suffix in linears.keys.sorted() {
                guard var quantizer = linears[suffix]?.inputQuantizer, case .llmInt8 = quantizer.mode else { continue }
                let tally = OutlierColumnTally()
                quantizer.outlierTally = tally
                linears[suffix]?.inputQuantizer = quantizer
                attached.append(("model.layers.\(blocks[b].index).\(suffix)", tally))
            }
            blocks[b].weights.linears = linears
        }
        return attached
    }
}
