import Foundation

/// RoPE scaling of a GGUF model, as a Hugging Face `rope_scaling`.
///
/// Two places hold it. Linear and YaRN scaling are metadata (`{arch}.rope.scaling.type`,
/// `.factor`, `.original_context_length`). Llama 3.1/3.2's "llama3" scaling is not: the
/// converter evaluates it per frequency and stores the divisors as the F32 tensor
/// `rope_freqs.weight` [head_dim/2] (1 for fast dimensions, `factor` for slow ones, a smooth
/// blend between). Ignoring that tensor would run the model with plain RoPE — wrong at every
/// position — so this recovers `factor`, `low_freq_factor` and `high_freq_factor` by fitting
/// the converter's formula and checks that the fit reproduces every stored divisor. Only the
/// ratios `original/low` and `original/high` are observable, so `original_max_position_embeddings`
/// is taken from metadata when present, else Llama 3's 8192 (any choice gives the same model).
/// Divisors that follow no llama3 curve are an error rather than a silently different model.
public enum GGUFRopeScaling {
    /// Name of the tensor llama.cpp's converter writes for "llama3" scaling.
    public static let frequencyFactorsTensor = "rope_freqs.weight"

    /// The scaling `file` describes, or nil for plain RoPE.
    public static func scaling(of file: GGUFFile, architecture arch: String, headDim: Int,
                               theta: Double) throws(QDistIOError) -> ModelConfiguration.RopeScaling? {
        let meta = file.metadata
        let original = meta.int("\(arch).rope.scaling.original_context_length")
        if let type = meta.string("\(arch).rope.scaling.type"), type != "none" {
            let factor = meta.float("\(arch).rope.scaling.factor").map { Double($0.description) ?? Double($0) }
            return ModelConfiguration.RopeScaling(ropeType: type, factor: factor, originalMaxPositionEmbeddings: original)
        }
        guard file.contains(frequencyFactorsTensor) else { return nil }
        let factors = try file.tensor(frequencyFactorsTensor).scalars
        guard factors.count == headDim / 2 else {
            throw QDistIOError(.config, path: file.url.path,
                               "\(frequencyFactorsTensor) holds \(factors.count) factors, expected head_dim/2 = \(headDim / 2)")
        }
        if factors.allSatisfy({ $0 == 1 }) { return nil }
        guard let scaling = llama3(factors: factors, headDim: headDim, theta: theta, originalContext: original ?? 8192) else {
            throw QDistIOError(.config, path: file.url.path,
                               "\(frequencyFactorsTensor) holds per-frequency RoPE divisors that follow no Llama 3 rope_scaling curve; qdist cannot express them")
        }
        return scaling
    }

    /// The "llama3" parameters whose divisors match `factors` (within 1e-4 relative), or nil.
    public static func llama3(factors: [Float], headDim: Int, theta: Double,
                              originalContext: Int) -> ModelConfiguration.RopeScaling? {
        let f = factors.map(Double.init)
        guard let factor = f.max(), factor > 1, f.allSatisfy({ $0 >= 1 - 1e-6 }) else { return nil }
        let context = Double(originalContext)
        // x_i = original / wavelength_i; in the blend band, smooth_i = (x_i − low) / (high − low).
        let x = (0..<f.count).map { context / (2 * Double.pi * pow(theta, Double(2 * $0) / Double(headDim))) }
        var points: [(x: Double, smooth: Double)] = []
        for (i, v) in f.enumerated() where v > 1 + 1e-6 && v < factor * (1 - 1e-6) {
            points.append((x[i], (1 / v - 1 / factor) / (1 - 1 / factor)))
        }
        var candidates: [(low: Double, high: Double)] = []
        if points.count >= 2 {
            // Least squares for x = low + (high − low)·smooth.
            let n = Double(points.count)
            let ms = points.map(\.smooth).reduce(0, +) / n, mx = points.map(\.x).reduce(0, +) / n
            let sxy = points.map { ($0.smooth - ms) * ($0.x - mx) }.reduce(0, +)
            let sxx = points.map { ($0.smooth - ms) * ($0.smooth - ms) }.reduce(0, +)
            if sxx > 0 {
                let slope = sxy / sxx, low = mx - slope * ms
                candidates.append((rounded(low), rounded(low + slope)))
                candidates.append((low, low + slope))
            }
        }
        candidates.append((1, 4))  // Llama 3.1/3.2's values, for curves with too few blend points
        let roundedFactor = rounded(factor)
        for c in candidates where c.high > c.low && c.low > 0 {
            for fac in [roundedFactor, factor] {
                let s = ModelConfiguration.RopeScaling(ropeType: "llama3", factor: fac, lowFreqFactor: c.low,
                                                       highFreqFactor: c.high, originalMaxPositionEmbeddings: originalContext)
                if reproduces(f, x: x, scaling: s) { return s }
            }
        }
        return nil
    }

    /// True when the converter's formula with `s` gives every divisor in `f` (1e-4 relative).
    static func reproduces(_ f: [Double], x: [Double], scaling s: ModelConfiguration.RopeScaling) -> Bool {
        let factor = s.factor ?? 8, low = s.lowFreqFactor ?? 1, high = s.highFreqFactor ?? 4
        for (i, v) in f.enumerated() {
            let expected: Double
            if x[i] > high { expected = 1 }  // wavelength < original/high
            else if x[i] < low { expected = factor }  // wavelength > original/low
            else {
                let smooth = (x[i] - low) / (high - low)
                expected = 1 / ((1 - smooth) / factor + smooth)
            }
            if abs(expected - v) > 1e-4 * v { return false }
        }
        return true
    }

    /// `v` to 4 decimal places (fits carry ~1e-7 noise from the Float32 divisors).
    private static func rounded(_ v: Double) -> Double { (v * 10_000).rounded() / 10_000 }
}
