/// bitsandbytes' 8-bit "dynamic" code (`create_dynamic_map`), which double quantization uses
/// for the absmaxes (FORMATS.md §6.4), and the nearest-code search its CUDA kernel runs.
///
/// The map must be bit-exact, or every double-quantized absmax moves: a QLoRA checkpoint stores
/// its copy as `nested_quant_map`, and ours must equal it. So the generator replays torch's
/// float32 arithmetic step by step: `torch.linspace(0.1, 1, n, dtype=float32)` (its CPU kernel
/// computes `start + step·i` for the first half and `end − step·(n−1−i)` for the rest, fused
/// into one FMA in torch's x86 AVX2/AVX-512 builds), float32 midpoints, a float32 power of
/// ten, then a sort. Checked against bitsandbytes 0.50.2 on torch 2.13 (CPU) in
/// Benchmarks/bnb_nf4_compare.py.
public enum DynamicQuantizationMap {
    /// `create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)`: 256 ascending
    /// values from −0.99296875 to 1.0 with 0 at index 127, densest near zero (down to ±5.5e-7).
    public static let signed8Bit: [Float] = make(signed: true, maxExponentBits: 7, totalBits: 8)

    /// `create_dynamic_map` for any arguments (the 8-bit signed map is the one bnb uses).
    public static func make(signed: Bool, maxExponentBits: Int, totalBits: Int) -> [Float] {
        precondition(maxExponentBits >= 1 && totalBits <= 8 && maxExponentBits <= totalBits - 1,
                     "create_dynamic_map(max_exponent_bits: \(maxExponentBits), total_bits: \(totalBits)) is not a valid map")
        var data: [Float] = []
        let nonSignBits = totalBits - 1
        let additionalItems = (1 << (nonSignBits - maxExponentBits)) - 1
        // Python's `10 ** e` (a double) as torch multiplies by it: rounded to float32.
        func power(_ e: Int) -> Float { Float(e >= 0 ? pow10(e) : 1 / pow10(-e)) }
        func appendMeans(points: Int, exponent: Int) {
            let b = torchLinspace(from: 0.1, to: 1, count: points)
            let scale = power(exponent)
            let means = (0..<points - 1).map { (b[$0] + b[$0 + 1]) / 2 }
            data += means.map { scale * $0 }
            if signed { data += means.map { -scale * $0 } }
        }
        var lastExponent = 0
        for i in 0..<maxExponentBits {
            let exponentOffset = i + nonSignBits - maxExponentBits + (signed ? 0 : 1)
            lastExponent = -(maxExponentBits - 1) + i
            appendMeans(points: (1 << exponentOffset) + 1, exponent: lastExponent)
        }
        // The exponent-all-zero case without an indicator bit (bnb reuses the loop's last i).
        if additionalItems > 0 { appendMeans(points: additionalItems + 1, exponent: lastExponent) }
        data.append(0)
        data.append(1)
        precondition(data.count <= 1 << totalBits, "create_dynamic_map made \(data.count) values for \(totalBits) bits")
        data += [Float](repeating: 0, count: 256 - data.count)
        return data.sorted()
    }

    /// `torch.linspace(start, end, count, dtype=float32)` on the CPU, value for value.
    public static func torchLinspace(from start: Float, to end: Float, count: Int) -> [Float] {
        guard count > 1 else { return count == 1 ? [start] : [] }
        let step = (end - start) / Float(count - 1)
        let halfway = count / 2
        return (0..<count).map { i in
            i < halfway ? start.addingProduct(step, Float(i)) : end.addingProduct(-step, Float(count - 1 - i))
        }
    }

    /// 10^e for e ≥ 0 in Double, exact up to 10^22 (all bnb ever needs is 10^6).
    private static func pow10(_ e: Int) -> Double { (0..<e).reduce(1.0) { acc, _ in acc * 10 } }

    /// The index bnb's CUDA `dQuantize<0>` stores for a scaled value `x` against a sorted
    /// 256-entry `code`: a 7-step binary search from pivot 127, then the nearer of the final
    /// pivot and its neighbour by comparing with their float32 midpoint. An exact midpoint
    /// keeps the final pivot (always the even index of the pair); NaN (an all-zero block
    /// scaled by 1/0) ends at index 0, as on the GPU.
    @inline(__always)
    public static func nearestIndex(_ x: Float, code: UnsafeBufferPointer<Float>) -> UInt8 {
        var pivot = 127, upperPivot = 255, lowerPivot = 0
        var lower: Float = -1, upper: Float = 1
        var value = code[pivot]
        var step = 64
        while step > 0 {
            if x > value {
                lowerPivot = pivot
                lower = value
                pivot += step
            } else {
                upperPivot = pivot
                upper = value
                pivot -= step
            }
            value = code[pivot]
            step >>= 1
        }
        if upperPivot == 255 { upper = code[upperPivot] }
        if lowerPivot == 0 { lower = code[lowerPivot] }
        if x > value {
            return x > (upper + value) * 0.5 ? UInt8(upperPivot) : UInt8(pivot)
        }
        return x < (lower + value) * 0.5 ? UInt8(lowerPivot) : UInt8(pivot)
    }
}
