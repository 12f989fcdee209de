// port of transformers.optimization.get_cosine_schedule_with_warmup
// (`_get_cosine_schedule_with_warmup_lr_lambda`, num_cycles = 0.5).

import Foundation

/// The learning rate of every optimizer step: linear warmup from 0, then a half cosine down to
/// 0 at `totalSteps`, as transformers' `get_cosine_schedule_with_warmup`.
///
/// Step numbering follows HF's Trainer, which calls `scheduler.step()` after each
/// `optimizer.step()`: update k (counted from 0) uses `rate(at: k)`, so with warmup the very
/// first update has learning rate 0.
public struct LearningRateSchedule: Sendable, Equatable {
    public var peakLearningRate: Double
    public var warmupSteps: Int
    public var totalSteps: Int
    /// Cosine waves over the decay (0.5: one half wave, from peak to zero).
    public var cycles: Double

    public init(peakLearningRate: Double, warmupSteps: Int, totalSteps: Int, cycles: Double = 0.5) {
        precondition(warmupSteps >= 0 && totalSteps >= 0, "warmup and total steps must not be negative")
        self.peakLearningRate = peakLearningRate
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.cycles = cycles
    }

    /// The multiplier of the peak rate at update `step` (0-based): `lr_lambda(step)`.
    public func factor(at step: Int) -> Double {
        if step < warmupSteps { return Double(step) / Double(max(1, warmupSteps)) }
        let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
        return max(0, 0.5 * (1 + cos(Double.pi * cycles * 2 * progress)))
    }

    /// The learning rate of update `step` (0-based).
    public func rate(at step: Int) -> Double { peakLearningRate * factor(at: step) }
}
