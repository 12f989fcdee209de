import Foundation

/// CPython's `random` module generator (MT19937 seeded by `init_by_array`), reproducing
/// `random.seed(n)`, `random.getrandbits(k)` and `random.randint(a, b)` for non-negative integer
/// seeds bit for bit.
///
/// It exists so that qdist can draw calibration windows exactly as the torch reference scripts
/// of this field do (`random.seed(0); random.randint(0, len(tokens) − seq_len)`), and a
/// comparison with them is window for window rather than "the same number of random windows".
public struct PythonRandom: Sendable {
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 625

    /// `random.seed(seed)`: the seed's absolute value split into 32-bit words, least significant
    /// first (one zero word for 0), fed to MT19937's `init_by_array`.
    public init(seed: UInt64) {
        var key: [UInt32] = []
        var rest = seed
        repeat {
            key.append(UInt32(truncatingIfNeeded: rest))
            rest >>= 32
        } while rest != 0
        initByArray(key)
    }

    private mutating func initGenrand(_ s: UInt32) {
        state[0] = s
        for i in 1..<624 {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
        index = 624
    }

    private mutating func initByArray(_ key: [UInt32]) {
        initGenrand(19_650_218)
        var i = 1, j = 0
        for _ in 0..<max(624, key.count) {
            state[i] = (state[i] ^ ((state[i - 1] ^ (state[i - 1] >> 30)) &* 1_664_525)) &+ key[j] &+ UInt32(j)
            i += 1; j += 1
            if i >= 624 { state[0] = state[623]; i = 1 }
            if j >= key.count { j = 0 }
        }
        for _ in 0..<623 {
            state[i] = (state[i] ^ ((state[i - 1] ^ (state[i - 1] >> 30)) &* 1_566_083_941)) &- UInt32(i)
            i += 1
            if i >= 624 { state[0] = state[623]; i = 1 }
        }
        state[0] = 0x8000_0000
    }

    /// MT19937's `genrand_uint32`.
    public mutating func nextUInt32() -> UInt32 {
        if index >= 624 {
            for k in 0..<624 {
                let y = (state[k] & 0x8000_0000) | (state[(k + 1) % 624] & 0x7FFF_FFFF)
                state[k] = state[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1) == 0 ? 0 : 0x9908_B0DF)
            }
            index = 0
        }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// `random.getrandbits(k)` for 1 ≤ k ≤ 64: 32-bit words least significant first, the last
    /// one keeping its top bits.
    public mutating func getrandbits(_ k: Int) -> UInt64 {
        precondition(k >= 1 && k <= 64, "getrandbits handles 1...64 bits")
        var result: UInt64 = 0
        var remaining = k, shift: UInt64 = 0
        while remaining > 0 {
            var word = UInt64(nextUInt32())
            if remaining < 32 { word >>= UInt64(32 - remaining) }
            result |= word << shift
            shift += 32
            remaining -= 32
        }
        return result
    }

    /// `random.randint(low, high)`, both ends included: rejection sampling on
    /// `getrandbits(bit_length(width))`, as `_randbelow_with_getrandbits`.
    public mutating func randint(_ low: Int, _ high: Int) -> Int {
        precondition(high >= low, "randint needs low <= high")
        let width = UInt64(high - low) + 1
        let bits = 64 - width.leadingZeroBitCount
        var r = getrandbits(bits)
        while r >= width { r = getrandbits(bits) }
        return low + Int(r)
    }
}
