import QDistIO
import QDistModel
import QDistTensor

/// How sparse a model's decoder linears are, as `qdist inspect --sparsity` prints it: for each
/// linear, the fraction of exact zeros in the weight as a reader sees it (quantized weights
/// dequantized: a pruned code is its grid's zero point, which dequantizes to exactly 0), and the
/// N:M structures it follows — at least N zeros in every M consecutive inputs of each row, the
/// groups starting at input 0 (FORMATS.md §12.6 items 1–2, as llm-compressor's
/// `tensor_follows_mask_structure` checks them).
public struct SparsityReport: Sendable {
    /// One linear's sparsity.
    public struct Linear: Sendable, Equatable {
        public var name: String
        public var elements: Int
        public var zeros: Int
        /// The largest N for which every group of 4 inputs holds ≥ N zeros (0 when none), and
        /// the same for groups of 8.
        public var zerosPerFour: Int
        public var zerosPerEight: Int

        public var sparsity: Double { Double(zeros) / Double(max(elements, 1)) }
        /// "2:4" when every group of 4 has 2 zeros or more (the semi-structured pattern sparse
        /// kernels run); else "N:8" for the best N ≥ 4 in groups of 8; else nil.
        public var structure: String? {
            if zerosPerFour >= 2 { return "\(zerosPerFour):4" }
            if zerosPerEight >= 4 { return "\(zerosPerEight):8" }
            return nil
        }
    }

    public var linears: [Linear]

    /// Zeros over every listed linear's elements.
    public var overall: Double {
        Double(linears.reduce(0) { $0 + $1.zeros }) / Double(max(linears.reduce(0) { $0 + $1.elements }, 1))
    }

    /// Measures one (out, in) weight.
    public static func measure(_ weight: Tensor, name: String) -> Linear {
        let rows = weight.shape.first ?? 0, columns = weight.count / max(rows, 1)
        var zeros = 0
        // Groups must tile the row: otherwise no N:M pattern holds.
        var perFour = columns > 0 && columns % 4 == 0 ? 4 : 0, perEight = columns > 0 && columns % 8 == 0 ? 8 : 0
        weight.scalars.withUnsafeBufferPointer { w in
            for r in 0..<rows {
                var previous = 0
                for (k, g) in stride(from: r * columns, to: (r + 1) * columns, by: 4).enumerated() {
                    var inFour = 0
                    for j in g..<min(g + 4, (r + 1) * columns) where w[j] == 0 { inFour += 1 }
                    zeros += inFour
                    perFour = min(perFour, inFour)
                    if k % 2 == 1 { perEight = min(perEight, previous + inFour) }
                    previous = inFour
                }
            }
        }
        return Linear(name: name, elements: weight.count, zeros: zeros, zerosPerFour: perFour, zerosPerEight: perEight)
    }

    /// Every decoder linear of `weights` (float, quantized or legacy-sparse: read as the model
    /// runs them), in block order.
    public static func measure(_ weights: any WeightSource, config: ModelConfiguration,
                               progress: (Int, Int) -> Void = { _, _ in }) throws -> SparsityReport {
        let shapes = config.linearLayers
        var linears: [Linear] = []
        for (i, shape) in shapes.enumerated() {
            let w = try weights.tensor(shape.name + ".weight", expectedShape: [shape.outFeatures, shape.inFeatures])
            linears.append(measure(w, name: shape.name))
            progress(i + 1, shapes.count)
        }
        return SparsityReport(linears: linears)
    }

    /// A table: one line per linear (sparsity, structure), one per linear kind (q_proj, …) with
    /// its mean sparsity and how many of its linears follow 2:4, and the total.
    public var table: String {
        func kind(_ name: String) -> String { name.split(separator: ".").last.map(String.init) ?? name }
        var lines = ["SPARSITY  STRUCTURE  LINEAR"]
        for l in linears {
            let structure = l.structure ?? "-"
            lines.append(String(format: "%7.2f%%  ", 100 * l.sparsity) + String(repeating: " ", count: max(0, 9 - structure.count)) + structure + "  " + l.name)
        }
        lines += ["", "SPARSITY      LINEARS  FOLLOW 2:4  KIND"]
        let kinds = Dictionary(grouping: linears) { kind($0.name) }
        for k in kinds.keys.sorted() {
            let group = kinds[k]!
            let zeros = group.reduce(0) { $0 + $1.zeros }, elements = group.reduce(0) { $0 + $1.elements }
            let follow = group.filter { $0.zerosPerFour >= 2 }.count
            lines.append(String(format: "%7.2f%%  %11d  %10d  %@", 100 * Double(zeros) / Double(max(elements, 1)), group.count, follow, k))
        }
        let pruned = linears.filter { $0.zeros > 0 }
        lines.append(String(format: "overall %.2f%% zeros in %d decoder linears; %d hold zeros, %d follow 2:4", 100 * overall, linears.count,
                            pruned.count, linears.filter { $0.zerosPerFour >= 2 }.count))
        return lines.joined(separator: "\n")
    }

    /// `{"overall", "linears": [{"name", "sparsity", "zeros", "elements", "structure"}]}`.
    public var jsonValue: JSONValue {
        .object([
            (key: "overall", value: .number(overall)),
            (key: "linears", value: .array(linears.map { l in
                .object([(key: "name", value: .string(l.name)), (key: "sparsity", value: .number(l.sparsity)),
                         (key: "zeros", value: .integer(l.zeros)), (key: "elements", value: .integer(l.elements)),
                         (key: "structure", value: l.structure.map(JSONValue.string) ?? .null)])
            })),
        ])
    }
}
