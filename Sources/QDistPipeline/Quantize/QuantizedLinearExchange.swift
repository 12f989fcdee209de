import QDistComm
import QDistIO
import QDistQuant
import QDistTensor

/// Moves solved linears between ranks: each owner contributes the row blocks it solved as codes,
/// scales, zero points and group map (never dequantized floats — a code travels as one byte
/// instead of a Float32's four), plus the statistics its report line needs; one
/// `Allgatherv` per payload kind gives every rank every piece, and pieces of a split linear are
/// joined back in row order. The layout of a payload follows `SolveAssignment.items`, which
/// every rank knows, so no sizes or names travel.
enum QuantizedLinearExchange {
    /// One solved item: its stored form (rows of the item only, no bias) and report statistics.
    struct SolvedPiece {
        var item: SolveAssignment.Item
        var weights: QuantizedLinearWeights
        /// GPTQ's loss over these rows (nil for round-to-nearest).
        var gptqLoss: Double?
        /// tr(E·H·Eᵀ) and tr(W·H·Wᵀ) over these rows (or Σe² and Σw² without a Hessian).
        var errorQuadratic: Double
        var weightQuadratic: Double
        var seconds: Double
        /// Exact zeros among these rows' dequantized weights, for pruned linears.
        var zeros: Int? = nil
        /// tr(E·H·Eᵀ) of llama.cpp's own encoding of these rows (GGUF with GPTQ), for the report.
        var referenceErrorQuadratic: Double? = nil
    }

    /// What every rank knows of a linear before it is solved: bits, group size, code type,
    /// per-tensor scale, its bias, and the kind of error its report line gives.
    struct Template {
        var bits: Int
        var groupSize: Int?
        var codeType: QuantizationArgs.ValueType
        var perTensor: Bool
        /// NF4/FP4 absmaxes double-quantized.
        var doubleQuantized: Bool = false
        var bias: Tensor?
        var kind: String
        /// The ggml block type of a GGUF linear (its pieces travel as encoded rows).
        var ggmlType: GGMLType? = nil

        init(bits: Int, groupSize: Int?, codeType: QuantizationArgs.ValueType, perTensor: Bool, doubleQuantized: Bool = false,
             bias: Tensor?, kind: String) {
            (self.bits, self.groupSize, self.codeType, self.perTensor) = (bits, groupSize, codeType, perTensor)
            (self.doubleQuantized, self.bias, self.kind) = (doubleQuantized, bias, kind)
        }

        /// The stored layout the plan gives `entry`.
        init(entry e: QuantizationPlan.Entry, bias: Tensor?, kind: String) {
            self.init(bits: e.args.numBits, groupSize: e.args.strategy == .group ? e.args.groupSize : nil, codeType: e.args.type,
                      perTensor: e.args.strategy == .tensor, doubleQuantized: e.args.doubleQuantize, bias: bias, kind: kind)
            ggmlType = e.ggmlType
        }
    }

    /// A complete linear after the exchange.
    struct SolvedLinear {
        var weights: QuantizedLinearWeights
        var report: QuantizationReport.Layer
    }

    /// Every rank's pieces to every rank; returns the complete linears by name. `mine` are this
    /// rank's pieces in `assignment.items` order; `template` gives each linear's stored layout
    /// and bias (from the plan and the block's weights).
    static func share(_ mine: [SolvedPiece], assignment: SolveAssignment, template: (String) -> Template,
                      communicator comm: any Communicator) throws -> [String: SolvedLinear] {
        var pieces: [SolvedPiece]
        if comm.size == 1 {
            pieces = mine
        } else {
            // Codes (≤ 8 bits) travel as bytes: a quarter of what Float32 weights would cost.
            var codes: [UInt8] = [], ints: [Int32] = [], floats: [Float] = [], stats: [Double] = []
            for p in mine {
                let w = p.weights
                if let g = w.ggml {
                    codes += g.bytes
                    stats += [p.gptqLoss ?? .nan, p.errorQuadratic, p.weightQuadratic, p.seconds, p.referenceErrorQuadratic ?? .nan]
                    continue
                }
                ints += [w.zeroPoints == nil ? 0 : 1, w.gIdx == nil ? 0 : 1, w.fractionalZeroPoints == nil ? 0 : 1]
                codes += w.codes.map { UInt8(truncatingIfNeeded: $0) }
                if let z = w.zeroPoints { ints += z }
                if let g = w.gIdx { ints += g }
                floats += w.scales
                if let f = w.fractionalZeroPoints { floats += f }
                stats += [p.gptqLoss ?? .nan, p.errorQuadratic, p.weightQuadratic, p.seconds, p.zeros.map(Double.init) ?? .nan]
            }
            let allCodes = try comm.allgatherv(codes), allInts = try comm.allgatherv(ints)
            let allFloats = try comm.allgatherv(floats), allStats = try comm.allgatherv(stats)
            var cursor = [(codes: Int, ints: Int, floats: Int, stats: Int)](repeating: (0, 0, 0, 0), count: comm.size)
            pieces = []
            for item in assignment.items {
                let r = item.owner
                let meta = template(item.name)
                let rows = item.rows.count, columns = item.columns
                let groups = QuantizedLinearWeights.groupCount(inFeatures: columns, groupSize: meta.groupSize)
                var c = cursor[r]
                if let type = meta.ggmlType, let rowBytes = type.byteCount(elements: columns) {
                    let bytes = Array(allCodes[r][c.codes..<c.codes + rows * rowBytes]); c.codes += rows * rowBytes
                    let s = Array(allStats[r][c.stats..<c.stats + 5]); c.stats += 5
                    cursor[r] = c
                    let weights = try QuantizedLinearWeights(name: item.name, inFeatures: columns, outFeatures: rows, ggml: .init(type: type, bytes: bytes))
                    pieces.append(SolvedPiece(item: item, weights: weights, gptqLoss: s[0].isNaN ? nil : s[0],
                                              errorQuadratic: s[1], weightQuadratic: s[2], seconds: s[3], zeros: nil,
                                              referenceErrorQuadratic: s[4].isNaN ? nil : s[4]))
                    continue
                }
                func takeInts(_ n: Int) -> [Int32] { defer { c.ints += n }; return Array(allInts[r][c.ints..<c.ints + n]) }
                let flags = takeInts(3)
                let codes = allCodes[r][c.codes..<c.codes + rows * columns].map { Int32($0) }
                c.codes += rows * columns
                let zeros = flags[0] == 1 ? takeInts(rows * groups) : nil
                let gIdx = flags[1] == 1 ? takeInts(columns) : nil
                let scales = Array(allFloats[r][c.floats..<c.floats + rows * groups]); c.floats += rows * groups
                var fractional: [Float]? = nil
                if flags[2] == 1 { fractional = Array(allFloats[r][c.floats..<c.floats + rows * groups]); c.floats += rows * groups }
                let s = Array(allStats[r][c.stats..<c.stats + 5]); c.stats += 5
                cursor[r] = c
                let weights = try QuantizedLinearWeights(name: item.name, inFeatures: columns, outFeatures: rows, numBits: meta.bits,
                                                         groupSize: meta.groupSize, codes: codes, scales: scales, zeroPoints: zeros,
                                                         gIdx: gIdx, codeType: meta.codeType, perTensor: meta.perTensor,
                                                         fractionalZeroPoints: fractional, doubleQuantizedAbsmax: meta.doubleQuantized)
                pieces.append(SolvedPiece(item: item, weights: weights, gptqLoss: s[0].isNaN ? nil : s[0],
                                          errorQuadratic: s[1], weightQuadratic: s[2], seconds: s[3], zeros: s[4].isNaN ? nil : Int(s[4])))
            }
        }
        var out: [String: SolvedLinear] = [:]
        for name in uniqueNames(assignment.items) {
            let parts = pieces.filter { $0.item.name == name }.sorted { $0.item.rows.lowerBound < $1.item.rows.lowerBound }
            out[name] = try assemble(parts, template: template(name))
        }
        return out
    }

    /// One linear from its pieces (in row order): the joined weights with the bias, and the
    /// report line over all its rows.
    static func assemble(_ parts: [SolvedPiece], template meta: Template) throws -> SolvedLinear {
        let joined = try join(parts.map(\.weights), bias: meta.bias)
        let loss: Double? = parts.allSatisfy({ $0.gptqLoss != nil }) ? parts.reduce(0) { $0 + $1.gptqLoss! } : nil
        let eq = parts.reduce(0) { $0 + $1.errorQuadratic }, wq = parts.reduce(0) { $0 + $1.weightQuadratic }
        let layer = QuantizationReport.Layer(
            name: joined.name, bits: meta.bits, groupSize: meta.groupSize, gptqLoss: loss,
            relativeError: (eq / max(wq, .leastNonzeroMagnitude)).squareRoot(), errorKind: meta.kind,
            seconds: parts.reduce(0) { $0 + $1.seconds },
            sparsity: parts.allSatisfy({ $0.zeros != nil })
                ? Double(parts.compactMap(\.zeros).reduce(0, +)) / Double(joined.inFeatures * joined.outFeatures) : nil,
            referenceRelativeError: parts.allSatisfy({ $0.referenceErrorQuadratic != nil })
                ? (parts.reduce(0) { $0 + $1.referenceErrorQuadratic! } / max(wq, .leastNonzeroMagnitude)).squareRoot() : nil)
        return SolvedLinear(weights: joined, report: layer)
    }

    /// Row blocks of one linear (in row order) as one linear; they must agree on everything but
    /// rows. The group map of act-order is a function of H alone, so split pieces share it.
    static func join(_ parts: [QuantizedLinearWeights], bias: Tensor?) throws -> QuantizedLinearWeights {
        precondition(!parts.isEmpty, "join of no pieces")
        let first = parts[0]
        if let g = first.ggml {
            // Encoded rows are independent: the pieces' bytes, in row order.
            guard parts.allSatisfy({ $0.ggml?.type == g.type && $0.inFeatures == first.inFeatures }) else {
                throw QuantizedFormatError(first.name, "row blocks solved on different ranks disagree on their ggml type")
            }
            return try QuantizedLinearWeights(name: first.name, inFeatures: first.inFeatures, outFeatures: parts.reduce(0) { $0 + $1.outFeatures },
                                              ggml: .init(type: g.type, bytes: parts.flatMap { $0.ggml?.bytes ?? [] }), bias: bias)
        }
        for p in parts.dropFirst() where p.gIdx != first.gIdx || p.inFeatures != first.inFeatures || (p.zeroPoints == nil) != (first.zeroPoints == nil) {
            throw QuantizedFormatError(first.name, "row blocks solved on different ranks disagree on their group map or grid")
        }
        return try QuantizedLinearWeights(
            name: first.name, inFeatures: first.inFeatures, outFeatures: parts.reduce(0) { $0 + $1.outFeatures },
            numBits: first.numBits, groupSize: first.groupSize, codes: parts.flatMap(\.codes), scales: parts.flatMap(\.scales),
            zeroPoints: first.zeroPoints == nil ? nil : parts.flatMap { $0.zeroPoints! }, gIdx: first.gIdx, bias: bias,
            codeType: first.codeType, perTensor: first.perTensor,
            fractionalZeroPoints: first.fractionalZeroPoints == nil ? nil : parts.flatMap { $0.fractionalZeroPoints ?? [] },
            doubleQuantizedAbsmax: first.doubleQuantizedAbsmax)
    }

    static func uniqueNames(_ items: [SolveAssignment.Item]) -> [String] {
        var seen = Set<String>(), names: [String] = []
        for i in items where seen.insert(i.name).inserted { names.append(i.name) }
        return names
    }
}
