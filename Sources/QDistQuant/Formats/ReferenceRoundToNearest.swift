import QDistTensor

extension QuantizedLinearWeights {
    /// Plain round-to-nearest on GPTQ's min/max grid (quant.py `find_params` + `quantize`), to
    /// give the format writers and readers realistic inputs in tests and examples. It is not the
    /// project's quantizer (that lives with the GPTQ solver); it is a fixed, simple reference.
    ///
    /// Per output row and group: `xmin = min(x, 0)`, `xmax = max(x, 0)`; symmetric grids use
    /// `xmax = max(|xmin|, xmax)`, `xmin = −xmax` and zero `2^(b−1)`; asymmetric ones zero
    /// `round(−xmin / scale)`; `scale = (xmax − xmin) / (2^b − 1)` (1 for an all-zero group).
    /// Scales are first rounded through `scaleDType`, so the codes agree with what a file holds.
    /// With `gIdx`, column `i` joins group `gIdx[i]` (act-order); `minimumZero` raises
    /// asymmetric zero points (1 keeps a layer writable as GPTQ v1).
    public static func referenceRoundToNearest(
        name: String, weight: Tensor, numBits: Int, groupSize: Int?, symmetric: Bool, gIdx: [Int32]? = nil,
        bias: Tensor? = nil, scaleDType: DType = .f32, minimumZero: Int32 = 0
    ) throws(QuantizedFormatError) -> QuantizedLinearWeights {
        guard weight.rank == 2 else { throw QuantizedFormatError(name, "weight must be a matrix, shape \(weight.shape)") }
        guard supportedBits.contains(numBits) else { throw QuantizedFormatError(name, "num_bits \(numBits) is not supported") }
        let (out, inF) = (weight.shape[0], weight.shape[1])
        let groups = groupCount(inFeatures: inF, groupSize: groupSize)
        let groupOf = (gIdx ?? defaultGIdx(inFeatures: inF, groupSize: groupSize)).map(Int.init)
        guard groupOf.count == inF, groupOf.allSatisfy({ (0..<groups).contains($0) }) else {
            throw QuantizedFormatError(name, "g_idx must hold \(inF) groups in 0..<\(groups)")
        }
        let maxq = Float((1 << numBits) - 1)
        var scales = [Float](repeating: 1, count: out * groups)
        var zeros = [Int32](repeating: 0, count: out * groups)
        var codes = [Int32](repeating: 0, count: out * inF)
        for o in 0..<out {
            var lo = [Float](repeating: 0, count: groups), hi = [Float](repeating: 0, count: groups)
            for i in 0..<inF {
                let x = weight.scalars[o * inF + i], g = groupOf[i]
                lo[g] = min(lo[g], x)
                hi[g] = max(hi[g], x)
            }
            for g in 0..<groups {
                var (xmin, xmax) = (lo[g], hi[g])
                if symmetric {
                    xmax = max(-xmin, xmax)
                    if xmin < 0 { xmin = -xmax }
                }
                if xmin == 0 && xmax == 0 { (xmin, xmax) = (-1, 1) }
                let raw = (xmax - xmin) / maxq
                let scale = StoredTensor(Tensor(shape: [1], scalars: [raw]), as: scaleDType).toTensor().scalars[0]
                scales[o * groups + g] = scale
                zeros[o * groups + g] = symmetric
                    ? Int32(1) << Int32(numBits - 1)
                    : min(Int32(maxq), max(minimumZero, Int32((-xmin / scale).rounded(.toNearestOrEven))))
            }
            for i in 0..<inF {
                let k = o * groups + groupOf[i]
                let q = (weight.scalars[o * inF + i] / scales[k]).rounded(.toNearestOrEven) + Float(zeros[k])
                codes[o * inF + i] = Int32(min(max(q, 0), maxq))
            }
        }
        return try QuantizedLinearWeights(name: name, inFeatures: inF, outFeatures: out, numBits: numBits, groupSize: groupSize,
                                          codes: codes, scales: scales, zeroPoints: symmetric ? nil : zeros,
                                          gIdx: gIdx, bias: bias)
    }
}
