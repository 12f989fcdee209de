import Foundation
import QDistComm
import QDistIO
import QDistTensor

/// The calibration windows of a quantization job: `samples` windows of `seqLen` tokens cut
/// from seeded random offsets of a text file (a .txt read whole, or a .jsonl whose lines have
/// a `text` field, joined by blank lines), tokenized without BOS.
///
/// `CalibrationSampler.pythonRandom` draws the windows of Python's `random.seed(seed)` followed by
/// `random.randint(0, count − seqLen)` per window, as the torch reference scripts of this field
/// (and Benchmarks/llmcompressor_reference.py) do, so a comparison is window for window.
///
/// Every rank draws the same windows (same seed) and keeps window i when i mod P = rank, so the
/// union over ranks is exactly the single-process set whatever P is.
public struct CalibrationSet: Sendable {
    /// All windows, in draw order (token ids).
    public let windows: [[Int]]
    /// Token count of the whole file, for the report.
    public let fileTokens: Int

    /// The windows rank `rank` of `size` processes.
    public func share(rank: Int, size: Int) -> [[Int]] {
        windows.indices.filter { $0 % size == rank }.map { windows[$0] }
    }

    /// Loads and cuts the windows. Rank 0 tokenizes and broadcasts (see `TextTokens`).
    public static func load(path: String, samples: Int, seqLen: Int, seed: UInt64, sampler: CalibrationSampler = .splitmix64,
                            tokenizer: BPETokenizer, communicator: any Communicator) throws -> CalibrationSet {
        let tokens: [Int]
        if path.hasSuffix(".jsonl") {
            tokens = try jsonlTokens(path, tokenizer: tokenizer, communicator: communicator)
        } else {
            tokens = try TextTokens.load(path, tokenizer: tokenizer, communicator: communicator)
        }
        guard tokens.count >= seqLen else {
            throw QDistIOError(.invalidArgument, path: path, "\(tokens.count) tokens cannot fill one \(seqLen)-token calibration window")
        }
        return CalibrationSet(windows: cut(tokens, samples: samples, seqLen: seqLen, seed: seed, sampler: sampler),
                              fileTokens: tokens.count)
    }

    /// `samples` windows at offsets drawn uniformly from [0, count − seqLen] by `sampler` seeded
    /// with `seed` (windows may overlap, as random-offset sampling does).
    public static func cut(_ tokens: [Int], samples: Int, seqLen: Int, seed: UInt64,
                           sampler: CalibrationSampler = .splitmix64) -> [[Int]] {
        let last = tokens.count - seqLen
        switch sampler {
        case .splitmix64:
            var rng = SeededGenerator(state: seed)
            return (0..<samples).map { _ in
                let start = Int(rng.next() % UInt64(last + 1))
                return Array(tokens[start..<start + seqLen])
            }
        case .pythonRandom:
            var rng = PythonRandom(seed: seed)
            return (0..<samples).map { _ in
                let start = rng.randint(0, last)
                return Array(tokens[start..<start + seqLen])
            }
        }
    }

    /// .jsonl: each non-empty line an object with a string `text`; texts joined by "\n\n".
    static func jsonlTokens(_ path: String, tokenizer: BPETokenizer, communicator comm: any Communicator) throws -> [Int] {
        try TextTokens.fromMainRank(path, communicator: comm) {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw QDistIOError(.io, path: path, "cannot read (no such file, or not readable)")
            }
            var texts: [String] = []
            for (n, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() where !line.allSatisfy({ $0 == 32 || $0 == 13 }) {
                let value = try JSONParser.parse(Array(line))
                guard let text = value["text"]?.stringValue else {
                    throw QDistIOError(.invalidArgument, path: path, "line \(n + 1): no string field \"text\"")
                }
                texts.append(text)
            }
            return tokenizer.encode(texts.joined(separator: "\n\n"))
        }
    }
}

/// How calibration window offsets are drawn from the seed.
public enum CalibrationSampler: String, Decodable, Sendable, Equatable, CaseIterable {
    /// SplitMix64 offsets modulo the span (qdist's default).
    case splitmix64
    /// CPython's `random.seed(seed); random.randint(0, count − seq_len)`, bit for bit.
    case pythonRandom = "python_random"
}
