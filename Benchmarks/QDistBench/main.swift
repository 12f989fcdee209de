// qdist-bench: sgemm GFLOP/s through the Tensor API next to raw cblas_sgemm, at 1 and 2 BLAS
// threads, printed as one JSON object. Benchmarks/run.sh adds allreduce GB/s under mpirun.
// `qdist-bench gptq` times GPTQSolver on SmolLM2's linear shapes instead (compare with
// Benchmarks/gptq_reference_torch.py on the same machine and threads). `qdist-bench block` times
// one SmolLM2-shaped decoder block's calibration forward. `qdist-bench sparse24` times the decode
// product of dense against 2:4-compressed linears.
import CBLAS
import Foundation
import QDistQuant
import QDistTensor

if CommandLine.arguments.dropFirst().first == "block" {
    let windows = CommandLine.arguments.firstIndex(of: "--windows").flatMap { Int(CommandLine.arguments[$0 + 1]) } ?? 4
    let data = try JSONSerialization.data(withJSONObject: BlockForwardBenchmark.run(tokens: 512, windows: windows),
                                          options: [.sortedKeys, .prettyPrinted])
    print(String(decoding: data, as: UTF8.self))
    exit(0)
}

if CommandLine.arguments.dropFirst().first == "sparse24" {
    let a = CommandLine.arguments
    func option(_ name: String) -> String? { a.firstIndex(of: name).flatMap { $0 + 1 < a.count ? a[$0 + 1] : nil } }
    let report = SparseProductBenchmark.run(
        layers: option("--layers").flatMap { Int($0) } ?? 8, tokens: option("--tokens").flatMap { Int($0) } ?? 1,
        threadCounts: option("--threads").map { $0.split(separator: ",").compactMap { Int($0) } } ?? [1, 2],
        repeats: option("--repeats").flatMap { Int($0) } ?? 5)
    let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys, .prettyPrinted])
    print(String(decoding: data, as: UTF8.self))
    exit(0)
}

if CommandLine.arguments.dropFirst().first == "gptq" {
    var rows: [[String: Any]] = []
    for (out, inFeatures) in [(576, 1536), (1536, 576)] {
        for actOrder in [false, true] {
            let seconds = GPTQBenchmark.run(rows: out, columns: inFeatures, groupSize: 64, actOrder: actOrder)
            rows.append(["out": out, "in": inFeatures, "group_size": 64, "act_order": actOrder, "seconds": seconds,
                         "gflops": GPTQBenchmark.flops(rows: out, columns: inFeatures) / seconds / 1e9])
        }
    }
    let data = try JSONSerialization.data(withJSONObject: ["benchmark": "gptq", "blas_threads": BLASThreads.current,
                                                           "results": rows], options: [.sortedKeys, .prettyPrinted])
    print(String(decoding: data, as: UTF8.self))
    exit(0)
}

/// Best-of-`repeats` seconds for `body` (best, not mean: the machine is shared and noisy).
func bestSeconds(repeats: Int, _ body: () -> Void) -> Double {
    body()  // warm-up: page in buffers, spin up BLAS threads
    var best = Double.infinity
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return best
}

func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var state = seed
    return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 1
    })
}

let arguments = CommandLine.arguments
let sizes = arguments.firstIndex(of: "--sizes").map { arguments[$0 + 1].split(separator: ",").compactMap { Int($0) } } ?? [512, 1024, 2048]
let threadCounts = arguments.firstIndex(of: "--threads").map { arguments[$0 + 1].split(separator: ",").compactMap { Int($0) } } ?? [1, 2]
let repeats = arguments.firstIndex(of: "--repeats").flatMap { Int(arguments[$0 + 1]) } ?? 5

var results: [[String: Any]] = []
for threads in threadCounts {
    BLASThreads.set(threads)
    for n in sizes {
        let a = randomTensor([n, n], seed: 1), b = randomTensor([n, n], seed: 2)
        var c = Tensor.zeros([n, n])
        var raw = [Float](repeating: 0, count: n * n)
        let flops = 2 * Double(n) * Double(n) * Double(n)
        // Interleave the three variants so drift in machine load hits them alike.
        var tRaw = Double.infinity, tGemm = Double.infinity, tMatmul = Double.infinity
        for _ in 0..<3 {
            tRaw = min(tRaw, bestSeconds(repeats: repeats) {
                a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in raw.withUnsafeMutableBufferPointer { pc in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1,
                                pa.baseAddress, Int32(n), pb.baseAddress, Int32(n), 0, pc.baseAddress, Int32(n))
                } } }
            })
            tGemm = min(tGemm, bestSeconds(repeats: repeats) { Tensor.gemm(a, b, into: &c) })
            tMatmul = min(tMatmul, bestSeconds(repeats: repeats) { c = Tensor.matmul(a, b) })
        }
        let row: [String: Any] = [
            "n": n, "threads": threads,
            "raw_cblas_gflops": flops / tRaw / 1e9,
            "tensor_gemm_gflops": flops / tGemm / 1e9,
            "tensor_matmul_gflops": flops / tMatmul / 1e9,
            "tensor_matmul_vs_raw": tRaw / tMatmul,
            "tensor_gemm_vs_raw": tRaw / tGemm,
        ]
        results.append(row)
        FileHandle.standardError.write(Data(String(format: "n=%d threads=%d raw %.1f  gemm %.1f  matmul %.1f GFLOP/s\n",
                                                   n, threads, flops / tRaw / 1e9, flops / tGemm / 1e9, flops / tMatmul / 1e9).utf8))
    }
}
let report: [String: Any] = [
    "benchmark": "sgemm",
    "openblas_core": BLASThreads.coreName,
    "openblas_config": BLASThreads.config,
    "openblas_coretype_env": ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? NSNull(),
    "results": results,
]
let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys, .prettyPrinted])
print(String(decoding: data, as: UTF8.self))
