import ArgumentParser
import Foundation
import QDistModel

/// `--dense`, shared by `qdist eval` and `qdist generate`: whether sparse decoder linears (2:4, or
/// at least half zeros) run their decode steps through a compressed kernel (the default) or
/// through the dense sgemm.
///
/// Why a switch: the benchmark compares both on the same folder in one run, and a user who
/// doubts the sparse kernel can rule it out. `QDIST_SPARSE_KERNEL=0` does the same as `--dense`
/// for scripts that cannot change the command line.
struct KernelOptions: ParsableArguments {
    @Flag(name: .long, help: "Run sparse linears (2:4, or at least half zeros) through the dense matrix product, not a compressed decode kernel (also QDIST_SPARSE_KERNEL=0).")
    var dense = false

    /// True unless `--dense` or QDIST_SPARSE_KERNEL=0 turns the compressed kernel off.
    func sparseKernelEnabled(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        !dense && environment["QDIST_SPARSE_KERNEL"] != "0"
    }

    /// Compresses the sparse linears of `model` whose kernels serve forwards of `inputRows`
    /// tokens (1 for generation's decode steps, the window length for eval) unless the kernels
    /// are off, and returns how many run sparse, by kind ("2:4", "unstructured"; empty when off).
    func prepare(_ model: inout LlamaModel, inputRows: Int) -> SparseLinearCount {
        SparseLinearCount(byKind: sparseKernelEnabled() ? model.useSparseKernels(forInputRows: inputRows) : [:])
    }
}

/// How many linears run on a compressed kernel, as eval and generate report it.
struct SparseLinearCount {
    var byKind: [String: Int]

    var total: Int { byKind.values.reduce(0, +) }

    /// "sparse_linears" (the total) and "sparse_linears_by_kind" for a JSON report.
    var jsonFields: [String: Any] { ["sparse_linears": total, "sparse_linears_by_kind": byKind] }

    /// e.g. "210 linears on sparse kernels (2:4: 210)", nil when none.
    var summary: String? {
        guard total > 0 else { return nil }
        let kinds = byKind.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        return "\(total) linears on sparse kernels (\(kinds))"
    }
}
