import Foundation
import QDistComm
import QDistIO
import QDistModel
import QDistTensor

/// `qdist imatrix`: an importance matrix as llama.cpp's `llama-imatrix` makes one — Σx² of every
/// input column of every `blk.*` weight over the calibration tokens, from forwards of the float
/// model — computed by P ranks that split the windows.
///
/// Each rank forwards its share of the windows once, through the whole model (no quantization in
/// between: llama-imatrix measures the original model), observing the four linear-group inputs
/// of every block; q/k/v read the same input, as do gate/up, so one vector serves each group.
/// Per-window sums (Float64) are added in global window order on every rank
/// (`WindowOrderedSum`), so the file is the same bytes for any P and thread count.
public enum ImatrixCollection {
    /// The GGUF weight names that read each group's input.
    static let groupWeights: [LinearGroup: [String]] = [
        .qkv: ["attn_q", "attn_k", "attn_v"], .o: ["attn_output"], .gateUp: ["ffn_gate", "ffn_up"], .down: ["ffn_down"],
    ]

    /// Collects Σx² per (block, group) for one window, in Float64.
    struct SquareSums: BlockInputObserver {
        let widths: [LinearGroup: Int]
        let blocks: Int
        var sums: [Double]

        init(config: ModelConfiguration) {
            widths = [.qkv: config.hiddenSize, .o: config.numAttentionHeads * config.headDim,
                      .gateUp: config.hiddenSize, .down: config.intermediateSize]
            blocks = config.numHiddenLayers
            sums = [Double](repeating: 0, count: blocks * Self.stride(widths))
        }

        static func stride(_ widths: [LinearGroup: Int]) -> Int { LinearGroup.allCases.reduce(0) { $0 + (widths[$1] ?? 0) } }

        /// Where block `b`'s `group` vector starts in `sums`.
        func offset(block b: Int, group: LinearGroup) -> Int {
            var o = b * Self.stride(widths)
            for g in LinearGroup.allCases {
                if g == group { break }
                o += widths[g] ?? 0
            }
            return o
        }

        mutating func observe(block: Int, group: LinearGroup, input: Tensor) {
            let width = input.shape.last ?? 0, rows = width > 0 ? input.count / width : 0
            let base = offset(block: block, group: group)
            input.withUnsafeBufferPointer { x in
                sums.withUnsafeMutableBufferPointer { s in
                    // Column sums of squares in Float64, rows in order: the same additions on
                    // every rank and thread count.
                    for r in 0..<rows {
                        let row = x.baseAddress! + r * width
                        for j in 0..<width { let v = Double(row[j]); s[base + j] += v * v }
                    }
                }
            }
        }
    }

    /// The importance matrix of `model` over `calibration` (every rank passes the same set and
    /// gets the same result). `dataset` is recorded in `imatrix.datasets`.
    public static func collect(model: LlamaModel, config: ModelConfiguration, calibration: CalibrationSet, dataset: String,
                               communicator comm: any Communicator, progress: ProgressReporter? = nil) throws -> GGUFImatrix {
        let mine = calibration.share(rank: comm.rank, size: comm.size)
        var perWindow: [[Double]] = []
        perWindow.reserveCapacity(mine.count)
        var tokens = 0
        for (k, window) in mine.enumerated() {
            var observer: (any BlockInputObserver)? = SquareSums(config: config)
            var cache: KVCache? = nil
            _ = model.hiddenStates(window, cache: &cache, observer: &observer)
            guard let sums = observer as? SquareSums else { throw QuantizePlanError(description: "imatrix observer lost its type") }
            perWindow.append(sums.sums)
            tokens += window.count
            progress?.update(done: k + 1, work: tokens)
        }
        let layout = SquareSums(config: config)
        let total = try WindowOrderedSum.vectors(perWindow, length: layout.sums.count, windows: calibration.windows.count, communicator: comm)
        let tokenCount = calibration.windows.reduce(0) { $0 + $1.count }
        var entries: [String: GGUFImatrix.Entry] = [:]
        for b in 0..<config.numHiddenLayers {
            for group in LinearGroup.allCases {
                let width = layout.widths[group] ?? 0, start = layout.offset(block: b, group: group)
                let sums = total[start..<(start + width)].map { Float($0) }
                for stem in groupWeights[group] ?? [] {
                    entries["blk.\(b).\(stem).weight"] = .init(sums: sums, counts: [tokenCount])
                }
            }
        }
        return GGUFImatrix(entries: entries, datasets: [dataset], chunkCount: calibration.windows.count,
                           chunkSize: calibration.windows.first?.count ?? 0)
    }
}
