import Foundation
import QDistTensor
import QDistModel

/// Picks the next token from a row of logits: greedy at temperature 0, else softmax(z / T)
/// restricted to the smallest set of most likely tokens whose mass reaches `topP` (nucleus).
public struct TokenSampler: Sendable {
    public var temperature: Double
    public var topP: Double
    var rng: SeededGenerator

    public init(temperature: Double = 0, topP: Double = 1, seed: UInt64 = 0) {
        precondition(temperature >= 0 && topP > 0 && topP <= 1, "temperature ≥ 0 and 0 < top-p ≤ 1")
        self.temperature = temperature
        self.topP = topP
        self.rng = SeededGenerator(seed: seed)
    }

    /// The next token id for `logits` (one row of vocabulary scores).
    public mutating func next(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        if temperature == 0 { return best }
        let m = Double(logits[best])
        var weights = logits.enumerated().map { (id: $0.offset, p: exp((Double($0.element) - m) / temperature)) }
        let total = weights.reduce(0) { $0 + $1.p }
        weights.sort { $0.p > $1.p }
        var kept: [(id: Int, p: Double)] = []
        var mass = 0.0
        for w in weights {
            kept.append(w)
            mass += w.p / total
            if mass >= topP { break }
        }
        let keptMass = kept.reduce(0) { $0 + $1.p }
        var u = rng.uniform() * keptMass
        for w in kept {
            u -= w.p
            if u <= 0 { return w.id }
        }
        return kept[kept.count - 1].id
    }
}
