import Foundation
import QDistIO
import QDistQuant
import QDistTensor

/// The quantizer a smoothing search (AWQ, SmoothQuant's grid) applies to a balance linear's
/// scaled weight W·s when it judges a candidate s: the recipe's integer grid with a plain
/// min/max range (llm-compressor swaps in `memoryless_minmax`), or — for a GGUF job — the block
/// type the mix gives the linear, encoded and decoded by llama.cpp's own encoder. For a GGUF
/// job with an importance matrix the encoder is weighted as it will be when the smoothed linear
/// is written: the scaled weight sees inputs x/s, so column j's importance is E[x_j²]/s_j².
struct SmoothingSearchGrid {
    /// The recipe's arguments (a GGUF entry's describe its sub-block and code bits).
    var args: QuantizationArgs
    /// The linear's block type in a GGUF job.
    var ggmlType: GGMLType?
    /// Mean x_j² of the linear's unsmoothed inputs over every rank's tokens (GGUF jobs with an
    /// importance matrix); nil encodes without importance.
    var meanSquares: [Double]?

    init(_ entry: QuantizationPlan.Entry) {
        var b = entry.args
        b.observer = .minmax
        b.actorder = nil
        args = b
        ggmlType = entry.ggmlType
    }

    init(args: QuantizationArgs) {
        self.args = args
    }

    /// Q(W·s), dequantized: `scaled` is W·s (rows × in), `scales` is s.
    func roundTrip(_ scaled: Tensor, scales s: [Float]) throws -> Tensor {
        guard let type = ggmlType else { return try QuantizationGrid(args).quantize(scaled).dequantized() }
        let columns = scaled.columns
        var importance: [Float]? = nil
        if let m = meanSquares {
            guard m.count == columns, s.count == columns else {
                throw QuantizePlanError(description: "smoothing search: \(m.count) input statistics for \(columns) columns")
            }
            importance = GGUFQuantizeTarget.floored((0..<columns).map { Float(m[$0] / (Double(s[$0]) * Double(s[$0]))) })
        }
        let bytes = try scaled.withUnsafeBufferPointer {
            try GGMLQuantize.quantize(type, rows: $0, rowLength: columns, importance: importance,
                                      threads: ProcessInfo.processInfo.activeProcessorCount)
        }
        return Tensor(shape: scaled.shape, scalars: type.dequantize(bytes))
    }
}
