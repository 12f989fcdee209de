import Foundation
import QDistComm
import QDistModel

/// Perplexity by qdist's protocol: the text tokenized once without BOS, cut into
/// non-overlapping windows of `seqLen` tokens, the first `windows` of them (default all);
/// ppl = exp(mean NLL over the seqLen − 1 predicted tokens of every window).
///
/// Under MPI window i belongs to rank i mod P. Each window's NLL sum travels by Allgatherv and
/// every rank adds them up in window order, so the result is the single-process one to the
/// last bit for any P (an Allreduce(SUM) would add in an order that depends on P).
public enum PerplexityEvaluation {
    /// What an evaluation measured; identical on every rank after the reduction.
    public struct Result: Sendable {
        public var perplexity: Double
        public var meanNegativeLogLikelihood: Double
        public var predictedTokens: Int
        public var windows: Int
        public var seqLen: Int
        /// Tokens forwarded (windows × seqLen) per second of wall time, all ranks together.
        public var tokensPerSecond: Double
        public var seconds: Double
        /// Peak resident memory of each rank, in rank order.
        public var peakResidentBytesPerRank: [Int]
    }

    /// Token ranges of the non-overlapping windows, at most `limit` of them.
    public static func windows(tokenCount: Int, seqLen: Int, limit: Int?) -> [Range<Int>] {
        precondition(seqLen >= 2, "a window needs at least 2 tokens")
        let available = tokenCount / seqLen
        let n = min(available, limit ?? available)
        return (0..<n).map { $0 * seqLen..<($0 + 1) * seqLen }
    }

    /// Evaluates `model` on `tokens`; every rank must call it with the same arguments.
    /// `scoreFrom` > 0 scores only positions ≥ it in every window (llama-perplexity's protocol
    /// with `seqLen / 2`).
    public static func run(model: LlamaModel, tokens: [Int], seqLen: Int, windowLimit: Int?, scoreFrom: Int = 0,
                           communicator comm: any Communicator) throws -> Result {
        let all = windows(tokenCount: tokens.count, seqLen: seqLen, limit: windowLimit)
        let mine = all.indices.filter { $0 % comm.size == comm.rank }
        let progress = ProgressReporter(label: "eval: window", total: mine.count, enabled: comm.isMain)
        let start = Date()
        var nllSums: [Double] = [], predicted: [Int] = []  // per window of mine
        for (done, i) in mine.enumerated() {
            let window = Array(tokens[all[i]])
            let nll = model.negativeLogLikelihood(window, scoreFrom: scoreFrom)
            nllSums.append(nll.sum)
            predicted.append(nll.predicted)
            progress.update(done: done + 1, work: (done + 1) * seqLen * comm.size)
        }
        let sums = try orderedSums(nllSums, predicted, windows: all.count, communicator: comm)
        var elapsed = [Date().timeIntervalSince(start)]
        try comm.allreduce(&elapsed, op: .max)
        let peaks = try comm.allgather([ProcessMemory.peakResidentBytes ?? 0])
        let mean = sums.predicted > 0 ? sums.nll / Double(sums.predicted) : .nan
        return Result(perplexity: exp(mean), meanNegativeLogLikelihood: mean, predictedTokens: sums.predicted,
                      windows: all.count, seqLen: seqLen,
                      tokensPerSecond: elapsed[0] > 0 ? Double(all.count * seqLen) / elapsed[0] : 0,
                      seconds: elapsed[0], peakResidentBytesPerRank: peaks)
    }

    /// Every rank's per-window sums added in global window order (`WindowOrderedSum`), so the
    /// ppl does not depend on P; token counts are integers and sum exactly.
    static func orderedSums(_ nll: [Double], _ predicted: [Int], windows: Int,
                            communicator comm: any Communicator) throws -> (nll: Double, predicted: Int) {
        let total = try WindowOrderedSum.vectors(nll.map { [$0] }, length: 1, windows: windows, communicator: comm)
        var count = [predicted.reduce(0, +)]
        if comm.size > 1 { try comm.allreduce(&count, op: .sum) }
        return (total[0], count[0])
    }
}
