import QDistQuant
import QDistTensor

/// A pruning step run on each targeted linear just before it is quantized (`SparseGPTModifier`,
/// `WandaPruningModifier`): pure, like a solver — the pipeline hands it the weight's rows and
/// the combined calibration Hessian of the linear's input, and quantizes what it returns. Every
/// quantizer the recipe may follow it with keeps an exact zero a zero (0 sits on every grid), so
/// the written codes carry the pattern.
public protocol LinearPruning: Sendable {
    /// The modifier's recipe key, for reports and the resume fingerprint.
    var name: String { get }
    /// Linears it prunes (`Linear`, names, suffixes, `re:`), and those it leaves alone.
    var targets: [String] { get }
    var ignore: [String] { get }
    /// Whether pruning a block of rows alone gives those rows' result; when false, a pruned
    /// linear is never split across ranks.
    var rowsAreIndependent: Bool { get }
    /// `w` (rows, in) pruned against `hessian` (in, in): the weight with +0.0 where pruned.
    func prune(_ w: Tensor, hessian: Tensor) throws -> Tensor
    /// The N:M pattern every pruned linear must follow; nil when unstructured.
    var pattern: MaskStructure? { get }
}

extension LinearPruning {
    /// The recipe's `mask_structure`: `"0:0"` (unstructured) or `"N:M"` (N zeros in every M
    /// inputs), as a sparse checkpoint format records it.
    var maskStructure: String { pattern?.description ?? "0:0" }

    /// Throws unless every group of M consecutive inputs of every row of `weight` (as written:
    /// dequantized codes, or floats) holds at least N exact zeros — the pipeline's own check
    /// that a quantizer kept the pattern, run on every pruned linear before it is staged.
    func checkPattern(_ weight: Tensor, name: String) throws {
        guard let s = pattern, s.m > 0 else { return }
        let rows = weight.rows, columns = weight.columns
        try weight.scalars.withUnsafeBufferPointer { w in
            for r in 0..<rows {
                for g in stride(from: 0, to: columns - columns % s.m, by: s.m) {
                    var zeros = 0
                    for j in g..<g + s.m where w[r * columns + j] == 0 { zeros += 1 }
                    if zeros < s.n {
                        throw QuantizePlanError(description: "\(name): row \(r), inputs \(g)…\(g + s.m - 1) hold \(zeros) zeros after quantization, not the \(s) pattern \(self.name) chose (an internal error: please report it)")
                    }
                }
            }
        }
    }
}

/// `mask_structure` as llm-compressor spells it: "0:0" (unstructured) or "N:M" — N zeros in
/// every M consecutive inputs.
public struct MaskStructure: Sendable, Equatable, CustomStringConvertible {
    public var n: Int
    public var m: Int

    public init(n: Int, m: Int) { (self.n, self.m) = (n, m) }

    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let n = Int(parts[0]), let m = Int(parts[1]), n >= 0, m >= 0, (m == 0) == (n == 0), n <= m else {
            throw QuantizePlanError(description: "mask_structure '\(text)' is not \"0:0\" (unstructured) or \"N:M\" with 0 < N ≤ M (N zeros in every M inputs, e.g. \"2:4\")")
        }
        (self.n, self.m) = (n, m)
    }

    public var unstructured: Bool { m == 0 }
    public var description: String { "\(n):\(m)" }
}

/// SparseGPT as a pruning step (`QDistQuant.SparseGPT`).
struct SparseGPTPruning: LinearPruning {
    var settings: SparseGPT.Settings
    var targets: [String]
    var ignore: [String]
    var name: String { "SparseGPTModifier" }
    /// The unstructured threshold is shared by every row of a block; N:M groups are per row.
    var rowsAreIndependent: Bool { settings.m > 0 }
    var pattern: MaskStructure? { settings.m > 0 ? MaskStructure(n: settings.n, m: settings.m) : nil }

    func prune(_ w: Tensor, hessian: Tensor) throws -> Tensor {
        do { return try SparseGPT.prune(w, hessian: hessian, settings: settings).weight } catch let e as PruningSettingsError {
            throw QuantizePlanError(description: "SparseGPTModifier: \(e.description)")
        }
    }
}

/// Wanda as a pruning step (`QDistQuant.Wanda`), its input norms from the Hessian's diagonal.
struct WandaPruning: LinearPruning {
    var sparsity: Double
    var structure: MaskStructure
    var targets: [String]
    var ignore: [String]
    var name: String { "WandaPruningModifier" }
    var rowsAreIndependent: Bool { true }
    var pattern: MaskStructure? { structure.unstructured ? nil : structure }

    func prune(_ w: Tensor, hessian: Tensor) throws -> Tensor {
        let n = hessian.shape[0]
        let diagonal = (0..<n).map { hessian.scalars[$0 * n + $0] }
        do { return try Wanda.prune(w, inputSquares: diagonal, sparsity: sparsity, n: structure.n, m: structure.m).weight } catch let e as PruningSettingsError {
            throw QuantizePlanError(description: "WandaPruningModifier: \(e.description)")
        }
    }
}
