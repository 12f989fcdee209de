/// bitsandbytes' blockwise 8-bit quantization with a 256-entry code (`quantize_blockwise` /
/// `dequantize_blockwise`), the second level of double quantization (FORMATS.md §6.4).
///
/// Same scheme as the 4-bit one, one byte per value: blocks of `blockSize` consecutive values
/// (bnb uses 256 for absmaxes), a float32 absmax per block, and per value the index
/// `DynamicQuantizationMap.nearestIndex(x · (1/absmax))` — the CUDA kernel's search, since
/// bnb's CPU path approximates "nearest" with a lookup table and can pick a neighbour.
/// Dequantization is `code[index] · absmax` in float32.
public enum BlockwiseEightBit {
    /// Indices (one per value) and per-block absmax (`ceil(count / blockSize)`) of `values`.
    public static func quantize(_ values: UnsafeBufferPointer<Float>, code: [Float],
                                blockSize: Int) -> (indices: [UInt8], absmax: [Float]) {
        precondition(code.count == 256, "an 8-bit code has 256 entries, not \(code.count)")
        precondition(blockSize > 0, "8-bit block size must be positive")
        let n = values.count
        let blocks = (n + blockSize - 1) / blockSize
        var absmax = [Float](repeating: 0, count: blocks)
        var indices = [UInt8](repeating: 0, count: n)
        code.withUnsafeBufferPointer { c in
            for b in 0..<blocks {
                let start = b * blockSize, end = min(start + blockSize, n)
                var m: Float = 0
                for i in start..<end { m = max(m, abs(values[i])) }
                absmax[b] = m
                let inverse = 1 / m
                for i in start..<end { indices[i] = DynamicQuantizationMap.nearestIndex(values[i] * inverse, code: c) }
            }
        }
        return (indices, absmax)
    }

    /// `code[indices[i]] · absmax[i / blockSize]` for every value.
    public static func dequantize(indices: [UInt8], absmax: [Float], code: [Float], blockSize: Int) -> [Float] {
        precondition(absmax.count == (indices.count + blockSize - 1) / blockSize,
                     "\(absmax.count) absmax values for \(indices.count) indices in blocks of \(blockSize)")
        return indices.indices.map { code[Int(indices[$0])] * absmax[$0 / blockSize] }
    }
}
