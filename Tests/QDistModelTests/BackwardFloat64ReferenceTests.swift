import Foundation
import QDistIO
import QDistTensor
import XCTest
@testable import QDistModel

/// A row-major Double matrix for the float64 reference.
struct Matrix64: Equatable {
    var rows: Int, columns: Int
    var values: [Double]

    init(rows: Int, columns: Int, values: [Double]) {
        precondition(values.count == rows * columns)
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    init(_ t: Tensor) { self.init(rows: t.rows, columns: t.columns, values: t.scalars.map(Double.init)) }

    static func zeros(_ rows: Int, _ columns: Int) -> Matrix64 {
        Matrix64(rows: rows, columns: columns, values: [Double](repeating: 0, count: rows * columns))
    }

    subscript(i: Int, j: Int) -> Double {
        get { values[i * columns + j] }
        set { values[i * columns + j] = newValue }
    }

    /// self · otherᵀ (other is (n, columns)), through dgemm.
    func timesTransposed(_ other: Matrix64) -> Matrix64 {
        precondition(other.columns == columns)
        var out = Matrix64.zeros(rows, other.rows)
        values.withUnsafeBufferPointer { a in
            other.values.withUnsafeBufferPointer { b in
                out.values.withUnsafeMutableBufferPointer { c in
                    BLAS.dgemm(transposeA: false, transposeB: true, m: rows, n: other.rows, k: columns,
                               a: a.baseAddress!, lda: columns, b: b.baseAddress!, ldb: columns, c: c.baseAddress!, ldc: other.rows)
                }
            }
        }
        return out
    }

    func rows(_ r: Range<Int>) -> Matrix64 {
        Matrix64(rows: r.count, columns: columns, values: Array(values[r.lowerBound * columns..<r.upperBound * columns]))
    }

    static func + (a: Matrix64, b: Matrix64) -> Matrix64 {
        precondition(a.values.count == b.values.count)
        var out = a
        out.values.withUnsafeMutableBufferPointer { o in
            b.values.withUnsafeBufferPointer { pb in for i in 0..<o.count { o[i] += pb[i] } }
        }
        return out
    }
}

/// The decoder's operations written a second time, plainly, in float64: the oracle for the
/// finite-difference checks of the Float32 backward. Nothing here calls the code under test
/// except `LoRADropout` (the masks are inputs) and BLAS dgemm. Loops run on raw pointers so the
/// thousands of forwards a finite-difference check needs stay fast in debug builds.
enum Float64Ops {
    static func rmsNorm(_ x: Matrix64, weight: [Double], epsilon: Double) -> Matrix64 {
        var y = x
        let c = x.columns
        y.values.withUnsafeMutableBufferPointer { p in
            weight.withUnsafeBufferPointer { w in
                for i in 0..<x.rows {
                    var ss = 0.0
                    for j in 0..<c { ss += p[i * c + j] * p[i * c + j] }
                    let inv = 1 / (ss / Double(c) + epsilon).squareRoot()
                    for j in 0..<c { p[i * c + j] *= inv * w[j] }
                }
            }
        }
        return y
    }

    /// HF rotate-half RoPE; row t of each segment is at position t.
    static func rope(_ x: Matrix64, heads: Int, headDim: Int, theta: Double, segments: [Range<Int>]) -> Matrix64 {
        var y = x
        let half = headDim / 2, width = x.columns
        let longest = segments.map(\.count).max() ?? 0
        var cosines = [Double](repeating: 0, count: longest * half), sines = cosines
        for t in 0..<longest {
            for i in 0..<half {
                let angle = Double(t) / pow(theta, Double(2 * i) / Double(headDim))
                cosines[t * half + i] = cos(angle)
                sines[t * half + i] = sin(angle)
            }
        }
        y.values.withUnsafeMutableBufferPointer { p in
            cosines.withUnsafeBufferPointer { cs in
                sines.withUnsafeBufferPointer { sn in
                    for segment in segments {
                        for (t, row) in segment.enumerated() {
                            for h in 0..<heads {
                                let base = row * width + h * headDim
                                for i in 0..<half {
                                    let a = p[base + i], b = p[base + i + half]
                                    p[base + i] = a * cs[t * half + i] - b * sn[t * half + i]
                                    p[base + i + half] = b * cs[t * half + i] + a * sn[t * half + i]
                                }
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    /// Causal GQA attention, naive loops, each segment its own sequence.
    static func attention(q: Matrix64, k: Matrix64, v: Matrix64, heads: Int, kvHeads: Int, headDim: Int,
                          segments: [Range<Int>]) -> Matrix64 {
        var out = Matrix64.zeros(q.rows, heads * headDim)
        let scale = 1 / Double(headDim).squareRoot()
        let qw = q.columns, kw = k.columns, d = headDim
        var scores = [Double](repeating: 0, count: q.rows)
        q.values.withUnsafeBufferPointer { pq in
        k.values.withUnsafeBufferPointer { pk in
        v.values.withUnsafeBufferPointer { pv in
        out.values.withUnsafeMutableBufferPointer { po in
        scores.withUnsafeMutableBufferPointer { e in
            for segment in segments {
                for h in 0..<heads {
                    let g = h / (heads / kvHeads)
                    for i in segment {
                        var m = -Double.infinity
                        for j in segment.lowerBound...i {
                            var dot = 0.0
                            for c in 0..<d { dot += pq[i * qw + h * d + c] * pk[j * kw + g * d + c] }
                            e[j] = dot * scale
                            m = max(m, e[j])
                        }
                        var z = 0.0
                        for j in segment.lowerBound...i { e[j] = exp(e[j] - m); z += e[j] }
                        for c in 0..<d {
                            var acc = 0.0
                            for j in segment.lowerBound...i { acc += e[j] * pv[j * kw + g * d + c] }
                            po[i * qw + h * d + c] = acc / z
                        }
                    }
                }
            }
        }}}}}
        return out
    }

    static func swiGLU(gate: Matrix64, up: Matrix64) -> Matrix64 {
        var out = gate
        out.values.withUnsafeMutableBufferPointer { g in
            up.values.withUnsafeBufferPointer { u in
                for i in 0..<g.count { g[i] = g[i] / (1 + exp(-g[i])) * u[i] }
            }
        }
        return out
    }

    /// Σ over counted rows of logsumexp − z[target].
    static func crossEntropySum(_ z: Matrix64, targets: [Int]) -> Double {
        let v = z.columns
        return z.values.withUnsafeBufferPointer { p in
            var total = 0.0
            for (i, t) in targets.enumerated() where t != CausalLMLoss.ignoreIndex {
                var m = -Double.infinity
                for j in 0..<v { m = max(m, p[i * v + j]) }
                var s = 0.0
                for j in 0..<v { s += exp(p[i * v + j] - m) }
                total += m + log(s) - p[i * v + t]
            }
            return total
        }
    }
}

/// A Llama decoder with LoRA adapters in float64, sequence by sequence (no packing), from the
/// same weights as a `LlamaModel` and adapter values found by their PEFT names.
struct Float64Llama {
    struct Linear {
        var weight: Matrix64
        var bias: [Double]?
        /// Ranges of A (r, in) and B (out, r) in the flat adapter buffer, found by PEFT name.
        var a: Range<Int>?, b: Range<Int>?
    }

    let config: ModelConfiguration
    let embedding: Matrix64, finalNorm: [Double], head: Matrix64
    let inputNorms: [[Double]], postNorms: [[Double]]
    let linears: [[LoRATarget: Linear]]
    let lora: LoRAConfig
    /// Dropout masks by "seed block target rows", drawn once (see `preparingDropoutMasks`).
    var maskCache: [String: [Double]] = [:]

    init(model: LlamaModel, lora: LoRAConfig) {
        config = model.config
        embedding = Matrix64(model.embedding)
        finalNorm = model.finalNorm.scalars.map(Double.init)
        head = Matrix64(model.outputHead)
        inputNorms = model.blocks.map { $0.weights.inputNorm.scalars.map(Double.init) }
        postNorms = model.blocks.map { $0.weights.postAttentionNorm.scalars.map(Double.init) }
        let layout = TrainableParameterLayout(config: model.config, lora: lora)
        linears = model.blocks.enumerated().map { i, block in
            var out: [LoRATarget: Linear] = [:]
            for (module, linear) in block.weights.linears {
                let target = LoRATarget(rawValue: String(module.split(separator: ".").last!))!
                let peft = "base_model.model.model.layers.\(i).\(module)."
                out[target] = Linear(weight: Matrix64(linear.weight), bias: linear.bias.map { $0.scalars.map(Double.init) },
                                     a: layout.entry(named: peft + "lora_A.weight")?.range,
                                     b: layout.entry(named: peft + "lora_B.weight")?.range)
            }
            return out
        }
        self.lora = lora
    }

    func linear(_ x: Matrix64, block: Int, target: LoRATarget, adapters: [Double], dropoutSeed: UInt64?) -> Matrix64 {
        let l = linears[block][target]!
        var y = x.timesTransposed(l.weight)
        if let bias = l.bias {
            for i in 0..<y.rows { for j in 0..<y.columns { y.values[i * y.columns + j] += bias[j] } }
        }
        guard let aRange = l.a, let bRange = l.b else { return y }
        var input = x
        if let seed = dropoutSeed, lora.dropout > 0 {
            let mask = maskCache["\(seed) \(block) \(target) \(x.rows)"] ?? dropoutMask(seed, block, target, rows: x.rows, columns: x.columns)
            for i in 0..<mask.count { input.values[i] *= mask[i] }
        }
        let r = lora.rank
        let a = Matrix64(rows: r, columns: x.columns, values: Array(adapters[aRange]))
        let b = Matrix64(rows: y.columns, columns: r, values: Array(adapters[bRange]))
        let u = input.timesTransposed(a)
        let s = lora.useRSLoRA ? lora.alpha / Double(r).squareRoot() : lora.alpha / Double(r)
        u.values.withUnsafeBufferPointer { pu in
            b.values.withUnsafeBufferPointer { pb in
                y.values.withUnsafeMutableBufferPointer { py in
                    BLAS.dgemm(transposeA: false, transposeB: true, m: x.rows, n: y.columns, k: r, alpha: s,
                               a: pu.baseAddress!, lda: r, b: pb.baseAddress!, ldb: r, beta: 1, c: py.baseAddress!, ldc: y.columns)
                }
            }
        }
        return y
    }

    func dropoutMask(_ seed: UInt64, _ block: Int, _ target: LoRATarget, rows: Int, columns: Int) -> [Double] {
        LoRADropout.mask(probability: lora.dropout, rows: rows, columns: columns,
                         seed: LoRADropout.seed(sequence: seed, block: block, target: target)).map(Double.init)
    }

    /// This model with every dropout mask `batch` will use drawn in advance (the thousands of
    /// forwards of a finite-difference check reuse them).
    func preparingDropoutMasks(for batch: [TrainingSequence]) -> Float64Llama {
        var out = self
        for s in batch where s.tokens.count > 1 {
            for b in 0..<config.numHiddenLayers {
                for (target, l) in linears[b] where l.a != nil {
                    out.maskCache["\(s.dropoutSeed) \(b) \(target) \(s.tokens.count - 1)"] =
                        dropoutMask(s.dropoutSeed, b, target, rows: s.tokens.count - 1, columns: l.weight.columns)
                }
            }
        }
        return out
    }

    /// Embedded inputs of every sequence (its tokens but the last) and its targets.
    func inputs(_ batch: [TrainingSequence]) -> [(x: Matrix64, targets: [Int], seed: UInt64)] {
        let width = embedding.columns
        return batch.filter { $0.tokens.count > 1 }.map { sequence in
            let ids = sequence.tokens.dropLast()
            var x = Matrix64.zeros(ids.count, width)
            for (t, id) in ids.enumerated() {
                x.values.replaceSubrange(t * width..<(t + 1) * width, with: embedding.values[id * width..<(id + 1) * width])
            }
            return (x, Array(sequence.labels.dropFirst()), sequence.dropoutSeed)
        }
    }

    /// One decoder block on one sequence.
    func block(_ b: Int, _ x: Matrix64, adapters: [Double], dropoutSeed: UInt64?) -> Matrix64 {
        let c = config, d = c.headDim, segments = [0..<x.rows]
        func lin(_ x: Matrix64, _ t: LoRATarget) -> Matrix64 {
            linear(x, block: b, target: t, adapters: adapters, dropoutSeed: dropoutSeed)
        }
        let h = Float64Ops.rmsNorm(x, weight: inputNorms[b], epsilon: c.rmsNormEps)
        let q = Float64Ops.rope(lin(h, .q), heads: c.numAttentionHeads, headDim: d, theta: c.ropeTheta, segments: segments)
        let k = Float64Ops.rope(lin(h, .k), heads: c.numKeyValueHeads, headDim: d, theta: c.ropeTheta, segments: segments)
        let attended = Float64Ops.attention(q: q, k: k, v: lin(h, .v), heads: c.numAttentionHeads,
                                            kvHeads: c.numKeyValueHeads, headDim: d, segments: segments)
        let x2 = x + lin(attended, .o)
        let h2 = Float64Ops.rmsNorm(x2, weight: postNorms[b], epsilon: c.rmsNormEps)
        return x2 + lin(Float64Ops.swiGLU(gate: lin(h2, .gate), up: lin(h2, .up)), .down)
    }

    /// Every sequence's input to block `first` (blocks before it run with `adapters`).
    func blockInputs(_ batch: [TrainingSequence], upTo first: Int, adapters: [Double], dropout: Bool) -> [Matrix64] {
        inputs(batch).map { s in
            (0..<first).reduce(s.x) { x, b in block(b, x, adapters: adapters, dropoutSeed: dropout ? s.seed : nil) }
        }
    }

    /// (Σ token losses, counted tokens) over the batch; `dropout` uses each sequence's seed.
    /// With `from`, starts at block `from.block` on the given inputs (finite differences of a
    /// block's adapters need not rerun the blocks below it).
    func loss(_ batch: [TrainingSequence], adapters: [Double], dropout: Bool,
              from start: (block: Int, inputs: [Matrix64])? = nil) -> (sum: Double, counted: Int) {
        var total = 0.0, counted = 0
        for (n, s) in inputs(batch).enumerated() {
            var x = start?.inputs[n] ?? s.x
            for b in (start?.block ?? 0)..<config.numHiddenLayers {
                x = block(b, x, adapters: adapters, dropoutSeed: dropout ? s.seed : nil)
            }
            let logits = Float64Ops.rmsNorm(x, weight: finalNorm, epsilon: config.rmsNormEps).timesTransposed(head)
            total += Float64Ops.crossEntropySum(logits, targets: s.targets)
            counted += s.targets.filter { $0 != CausalLMLoss.ignoreIndex }.count
        }
        return (total, counted)
    }
}

/// The float64 oracle must itself compute the model qdist evaluates.
final class BackwardFloat64ReferenceTests: XCTestCase {
    func testFloat64ReferenceWithZeroAdaptersMatchesEvalNegativeLogLikelihood() throws {
        let config = RandomModelWeights.configuration(layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 64)
        let model = try LlamaModel.load(config: config, from: InMemoryWeights(RandomModelWeights.make(for: config, seed: 21)))
        let lora = LoRAConfig(rank: 4, alpha: 8, targets: LoRATarget.allCases)
        let reference = Float64Llama(model: model, lora: lora)
        let zeroB = TrainableParameters.initialized(config: config, lora: lora, seed: 3).values.map(Double.init)
        var rng = SeededGenerator(seed: 8)
        let tokens = (0..<12).map { _ in Int(rng.next() % 64) }
        let ours = reference.loss([TrainingSequence(tokens: tokens)], adapters: zeroB, dropout: false)
        let eval = model.negativeLogLikelihood(tokens)
        XCTAssertEqual(ours.counted, eval.predicted)
        XCTAssertEqual(ours.sum, eval.sum, accuracy: 1e-5 * abs(eval.sum))
    }
}
