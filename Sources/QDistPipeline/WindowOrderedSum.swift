import QDistComm

/// Sums of per-window statistics over every rank's calibration windows, added in global window
/// order on every rank (window i is the (i / P)-th of rank i mod P, as `CalibrationSet.share`
/// deals them). Floating-point sums then do not depend on the number of ranks: every rank adds
/// the same numbers in the same order, whatever P is. The price is an Allgatherv of one vector
/// per window, small next to the activations (a few thousand numbers per window).
enum WindowOrderedSum {
    /// `perWindow[k]` is this rank's k-th window's vector (all of length `length`); returns the
    /// element-wise sum over all `windows` windows.
    static func vectors(_ perWindow: [[Double]], length: Int, windows: Int, communicator comm: any Communicator) throws -> [Double] {
        var flat: [Double] = []
        flat.reserveCapacity(perWindow.count * length)
        for v in perWindow {
            guard v.count == length else {
                throw QuantizePlanError(description: "a window statistic has \(v.count) elements, expected \(length)")
            }
            flat += v
        }
        let byRank = comm.size > 1 ? try comm.allgatherv(flat) : [flat]
        var total = [Double](repeating: 0, count: length)
        for i in 0..<windows {
            let base = (i / comm.size) * length
            let source = byRank[i % comm.size]
            guard base + length <= source.count else {
                throw QuantizePlanError(description: "rank \(i % comm.size) sent \(source.count / max(length, 1)) window statistics; window \(i) is missing")
            }
            for j in 0..<length { total[j] += source[base + j] }
        }
        return total
    }
}
