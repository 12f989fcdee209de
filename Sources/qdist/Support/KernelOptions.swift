import ArgumentParser
import Foundation
import QDistModel

/// `--dense`, shared by `qdist eval` and `qdist generate`: whether 2:4-sparse decoder linears run
/// their decode steps through the compressed kernel (the default) or through the dense sgemm.
///
/// Why a switch: the benchmark compares both on the same folder in one run, and a user who
/// doubts the sparse kernel can rule it out. `QDIST_SPARSE_KERNEL=0` does the same as `--dense`
/// for scripts that cannot change the command line.
struct KernelOptions: ParsableArguments {
    @Flag(name: .long, help: "Run 2:4-sparse linears through the dense matrix product, not the compressed decode kernel (also QDIST_SPARSE_KERNEL=0).")
    var dense = false

    /// True unless `--dense` or QDIST_SPARSE_KERNEL=0 turns the compressed kernel off.
    func sparseKernelEnabled(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        !dense && environment["QDIST_SPARSE_KERNEL"] != "0"
    }

    /// Compresses the 2:4 linears of `model` unless the kernel is off, and returns how many run
    /// sparse (0 when off): the "sparse_linears" count eval and generate report.
    func prepare(_ model: inout LlamaModel) -> Int {
        sparseKernelEnabled() ? model.useSemiStructuredSparseKernels() : 0
    }
}
