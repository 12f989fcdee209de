// `qdist-bench block`: one SmolLM2-shaped decoder block (hidden 576, 9 heads, 3 KV heads,
// intermediate 1536) on 512-token windows — the unit of work of GPTQ calibration, which runs
// 2 block forwards + the Hessian products per window per block. Times the parts so the
// calibration total can be predicted and the hot spot found.
import Foundation
import QDistModel
import QDistQuant
import QDistTensor

/// Folds each linear group's input into a Hessian, as the quantize pipeline's collector does.
struct BenchHessianObserver: BlockInputObserver {
    var accumulators: [LinearGroup: HessianAccumulator]
    mutating func observe(block: Int, group: LinearGroup, input: Tensor) { accumulators[group]?.add(input) }
}

enum BlockForwardBenchmark {
    static func run(tokens: Int, windows: Int) -> [String: Any] {
        let config = RandomModelWeights.configuration(layers: 1, hidden: 576, heads: 9, kvHeads: 3, intermediate: 1536, vocab: 64)
        let source = InMemoryWeights(RandomModelWeights.make(for: config, seed: 7))
        let weights = try! LlamaBlockWeights.load(block: 0, from: source, config: config)
        let block = LlamaBlock(index: 0, weights: weights, config: config, rotary: LlamaModel.rotary(for: config))
        var rng = SeededGenerator(seed: 3)
        let inputs = (0..<windows).map { _ in Tensor(shape: [tokens, 576], scalars: (0..<(tokens * 576)).map { _ in rng.normal() }) }

        func time(_ body: () -> Void) -> Double {
            body()
            var best = Double.infinity
            for _ in 0..<3 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                body()
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            return best / Double(windows)
        }
        let plain = time {
            var cache: KVCache? = nil
            var none: (any BlockInputObserver)? = nil
            for x in inputs { _ = block.forward(x, cache: &cache, observer: &none) }
        }
        let observed = time {
            var cache: KVCache? = nil
            let sizes: [(LinearGroup, Int)] = [(.qkv, 576), (.o, 576), (.gateUp, 576), (.down, 1536)]
            var observer: (any BlockInputObserver)? = BenchHessianObserver(accumulators: Dictionary(uniqueKeysWithValues: sizes.map {
                // A grid wide enough for any activation of this random block (|x| < 2^20).
                ($0.0, HessianAccumulator(scale: HessianFixedPointScale(columnAbsMax: [Float](repeating: 524_288, count: $0.1),
                                                                        totalTokens: tokens * windows))) }))
            for x in inputs { _ = block.forward(x, cache: &cache, observer: &observer) }
            _ = (observer as! BenchHessianObserver).accumulators[.down]!.hessian
        }
        // Parts: linears alone, attention alone.
        let h = inputs[0]
        let linears = time {
            for _ in 0..<windows {
                _ = weights.q(h); _ = weights.k(h); _ = weights.v(h); _ = weights.o(h)
                let g = weights.gate(h); _ = weights.up(h); _ = weights.down(Tensor.swiGLU(gate: g, up: g))
            }
        }
        let q = weights.q(h), k = weights.k(h), v = weights.v(h)
        let attention = time {
            for _ in 0..<windows {
                _ = k.withUnsafeBufferPointer { pk in v.withUnsafeBufferPointer { pv in
                    block.attention(queries: q, keys: pk, values: pv, positionOffset: 0) } }
            }
        }
        // The Hessian product of the down projection (1536 inputs) as ssyrk (half the flops)
        // and as a full sgemm, interleaved so load drift hits both alike.
        let act = Tensor(shape: [tokens, 1536], scalars: (0..<(tokens * 1536)).map { _ in rng.normal() })
        var gram = Tensor.zeros([1536, 1536])
        var syrkBest = Double.infinity, gemmBest = Double.infinity
        for _ in 0..<3 {
            syrkBest = min(syrkBest, time { for _ in 0..<windows { Tensor.gramAccumulateUpper(act, into: &gram, alpha: 1, beta: 1) } })
            gemmBest = min(gemmBest, time { for _ in 0..<windows { Tensor.gemm(act, act, into: &gram, transposeA: true, alpha: 1, beta: 1) } })
        }
        let params = Double(576 * (576 + 192 + 192) + 576 * 576 + 3 * 576 * 1536)
        let forwardFlops = 2 * params * Double(tokens)
        let hessianFlops = Double(tokens) * Double(3 * 576 * 576 + 1536 * 1536)  // ssyrk: n²·k
        return ["benchmark": "block_forward", "tokens": tokens, "windows": windows, "blas_threads": BLASThreads.current,
                "forward_ms": plain * 1e3, "forward_with_hessians_ms": observed * 1e3,
                "hessians_ms": (observed - plain) * 1e3, "linears_ms": linears * 1e3, "attention_ms": attention * 1e3,
                "gram_1536_ssyrk_ms": syrkBest * 1e3, "gram_1536_sgemm_ms": gemmBest * 1e3,
                "forward_gflops": forwardFlops / plain / 1e9, "hessian_gflops": hessianFlops / max(observed - plain, 1e-9) / 1e9,
                // GPTQ calibration per window per block: one observed forward + one plain re-forward.
                "calibration_ms_per_window_block": (observed + plain) * 1e3]
    }
}
