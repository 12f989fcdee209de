import Foundation
import QDistIO
import QDistTensor

/// Rotary position embedding as Hugging Face's Llama applies it ("rotate half": dimension i
/// pairs with i + d/2), with the inverse frequencies of `rope_theta` and, when configured,
/// Llama 3's frequency-dependent `rope_scaling`.
public struct RotaryEmbedding: Sendable {
    public let headDim: Int
    /// θ_i for i in 0..<headDim/2.
    public let inverseFrequencies: [Double]

    public init(headDim: Int, theta: Double, scaling: ModelConfiguration.RopeScaling? = nil) {
        precondition(headDim % 2 == 0, "rotary head dimension must be even, got \(headDim)")
        self.headDim = headDim
        var freqs = (0..<headDim / 2).map { 1 / pow(theta, Double(2 * $0) / Double(headDim)) }
        if let s = scaling, s.ropeType == "llama3" {
            freqs = Self.llama3(freqs, scaling: s)
        }
        inverseFrequencies = freqs
    }

    /// Llama 3.1's smooth interpolation: long wavelengths are divided by `factor`, short ones
    /// kept, and the band between blended (transformers `_compute_llama3_parameters`).
    static func llama3(_ freqs: [Double], scaling s: ModelConfiguration.RopeScaling) -> [Double] {
        let factor = s.factor ?? 8, low = s.lowFreqFactor ?? 1, high = s.highFreqFactor ?? 4
        let original = Double(s.originalMaxPositionEmbeddings ?? 8192)
        let lowWavelength = original / low, highWavelength = original / high
        return freqs.map { f in
            let wavelength = 2 * Double.pi / f
            if wavelength < highWavelength { return f }
            if wavelength > lowWavelength { return f / factor }
            let smooth = (original / wavelength - low) / (high - low)
            return (1 - smooth) * f / factor + smooth * f
        }
    }

    /// Rotates `heads` consecutive head vectors in every row of x (tokens, heads·headDim), where
    /// row t sits at position `positionOffset + t`.
    public func apply(to x: inout Tensor, heads: Int, positionOffset: Int) {
        let half = headDim / 2, width = heads * headDim
        precondition(x.columns == width, "rotary: \(x.shape) is not (tokens, \(heads)×\(headDim))")
        let tokens = x.rows
        var cosines = [Float](repeating: 0, count: half), sines = [Float](repeating: 0, count: half)
        x.withUnsafeMutableBufferPointer { p in
            for t in 0..<tokens {
                let position = Double(positionOffset + t)
                for i in 0..<half {
                    let angle = position * inverseFrequencies[i]
                    cosines[i] = Float(cos(angle)); sines[i] = Float(sin(angle))
                }
                for h in 0..<heads {
                    let base = t * width + h * headDim
                    for i in 0..<half {
                        let a = p[base + i], b = p[base + i + half]
                        p[base + i] = a * cosines[i] - b * sines[i]
                        p[base + i + half] = b * cosines[i] + a * sines[i]
                    }
                }
            }
        }
    }
}
