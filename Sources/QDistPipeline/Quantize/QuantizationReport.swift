import Foundation
import QDistIO

/// What a quantization run did, per linear and in total: written as quantization_report.json
/// next to the model and printed as a table, so quality loss is never hidden.
public struct QuantizationReport: Sendable {
    /// One quantized linear.
    public struct Layer: Sendable {
        public var name: String
        public var bits: Int
        public var groupSize: Int?
        /// GPTQ's Σ (w − q)² / d² / 2 (nil for round-to-nearest).
        public var gptqLoss: Double?
        /// ‖(W − Q)·Xᵀ‖ / ‖W·Xᵀ‖ on the calibration inputs (from the Hessian), or ‖W − Q‖ / ‖W‖
        /// when no calibration ran.
        public var relativeError: Double
        public var errorKind: String
        public var seconds: Double
        /// The fraction of exact zeros in the written weight, for pruned linears (nil otherwise).
        public var sparsity: Double? = nil
        /// GGUF with GPTQ: the relative error of llama.cpp's own encoder for the same linear and
        /// importance, on the same calibration inputs (what GPTQ improves on); nil otherwise.
        public var referenceRelativeError: Double? = nil
    }

    public var layers: [Layer] = []
    /// One entry per smoothed mapping (`SmoothingDecision`): what each smoothing chose.
    public var smoothing: [JSONValue] = []
    public var recipe: String = ""
    public var algorithm: String = ""
    public var format: String = ""
    public var calibrationWindows = 0
    public var calibrationSeqLen = 0
    public var worldSize = 1
    public var seconds: [String: Double] = [:]
    public var peakResidentBytesPerRank: [Int] = []
    /// Largest private (anonymous) resident bytes per rank, sampled after each calibration forward
    /// and each block: activations and block weights, without the shared page cache of the
    /// mmap'd checkpoint.
    public var peakAnonymousBytesPerRank: [Int] = []
    /// Seconds per rank in forward, solve, collectives and I/O.
    public var perRank: [[String: Double]] = []
    /// The mixed-precision allocation of a budgeted job (`BudgetPlan.jsonValue`); nil otherwise.
    public var budget: JSONValue? = nil

    public var jsonValue: JSONValue {
        .object([
            (key: "recipe", value: .string(recipe)), (key: "algorithm", value: .string(algorithm)),
            (key: "format", value: .string(format)),
            (key: "calibration", value: ["windows": .integer(calibrationWindows), "seq_len": .integer(calibrationSeqLen)]),
            (key: "world_size", value: .integer(worldSize)),
            (key: "seconds", value: .object(seconds.sorted { $0.key < $1.key }.map { (key: $0.key, value: .number($0.value)) })),
            (key: "peak_rss_bytes_per_rank", value: .array(peakResidentBytesPerRank.map { .integer($0) })),
            (key: "peak_anonymous_bytes_per_rank", value: .array(peakAnonymousBytesPerRank.map { .integer($0) })),
            (key: "seconds_per_rank", value: .array(perRank.map { r in
                .object(r.sorted { $0.key < $1.key }.map { (key: $0.key, value: .number($0.value)) })
            })),
            (key: "smoothing", value: .array(smoothing)),
        ] + (budget.map { [(key: "budget", value: $0)] } ?? []) + [
            (key: "layers", value: .array(layers.map(\.jsonValue))),
        ])
    }

    /// A short table: the worst layers and the mean error per linear kind.
    public func table(limit: Int = 8) -> String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        func left(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
        let pruned = layers.contains { $0.sparsity != nil }
        var lines = [pad("layer (worst \(min(limit, layers.count)) of \(layers.count))", 38) + "  bits  group  rel.error  gptq loss    time"
                     + (pruned ? "  sparsity" : "")]
        for l in layers.sorted(by: { $0.relativeError > $1.relativeError }).prefix(limit) {
            lines.append(pad(l.name, 38) + left(String(l.bits), 6) + left(l.groupSize.map(String.init) ?? "ch", 7)
                         + left(String(format: "%.5f", l.relativeError), 11)
                         + left(l.gptqLoss.map { String(format: "%.4g", $0) } ?? "-", 11)
                         + left(String(format: "%.2fs", l.seconds), 8)
                         + (pruned ? left(l.sparsity.map { String(format: "%.1f%%", 100 * $0) } ?? "-", 10) : ""))
        }
        let kinds = Dictionary(grouping: layers) { $0.name.split(separator: ".").last.map(String.init) ?? "" }
        lines.append("mean relative error by kind: " + kinds.keys.sorted().map { k in
            String(format: "%@ %.4f", k, kinds[k]!.reduce(0) { $0 + $1.relativeError } / Double(kinds[k]!.count))
        }.joined(separator: ", "))
        let referenced = layers.filter { $0.referenceRelativeError != nil }
        if !referenced.isEmpty {
            let ours = referenced.reduce(0) { $0 + $1.relativeError } / Double(referenced.count)
            let theirs = referenced.reduce(0) { $0 + $1.referenceRelativeError! } / Double(referenced.count)
            lines.append(String(format: "mean relative output error %.4f, llama.cpp's encoder on the same grid and inputs %.4f (%+.1f%%)",
                                ours, theirs, 100 * (ours / max(theirs, .leastNonzeroMagnitude) - 1)))
        }
        let sparse = layers.filter { $0.sparsity != nil }
        if !sparse.isEmpty {
            lines.append(String(format: "pruned linears: %d, mean sparsity %.1f%%", sparse.count,
                                100 * sparse.reduce(0) { $0 + $1.sparsity! } / Double(sparse.count)))
        }
        return lines.joined(separator: "\n")
    }
}
