import Foundation
import QDistComm
import QDistIO
import QDistModel

/// One training example: tokens, and how many of them are prompt (left out of the loss).
public struct TrainingExample: Sendable, Equatable {
    public var tokens: [Int]
    /// Leading tokens whose prediction is not trained (0 for plain text).
    public var promptLength: Int

    public init(tokens: [Int], promptLength: Int = 0) {
        self.tokens = tokens
        self.promptLength = promptLength
    }

    /// Targets the loss counts: every position after the first that is not prompt.
    public var countedTokens: Int { max(0, tokens.count - max(1, promptLength)) }

    /// The graph's sequence: plain language modelling, or `TrainingSequence(prompt:completion:)`.
    public func sequence(dropoutSeed: UInt64) -> TrainingSequence {
        promptLength == 0
            ? TrainingSequence(tokens: tokens, dropoutSeed: dropoutSeed)
            : TrainingSequence(prompt: Array(tokens[..<promptLength]), completion: Array(tokens[promptLength...]), dropoutSeed: dropoutSeed)
    }
}

/// The examples of a fine-tuning run, read and tokenized on rank 0 and broadcast (as
/// `TextTokens` does), so every rank holds the same list and can take its share of any batch.
///
/// - `.txt`: the whole file tokenized (no special tokens) and cut into consecutive windows of
///   `seqLen` tokens (the remainder is dropped).
/// - `.jsonl` with `text`: each text tokenized with EOS appended, all packed end to end and cut
///   into windows the same way.
/// - `.jsonl` with `prompt` and `completion`: one example per line, prompt + completion + EOS
///   cut to `seqLen`, the loss counted on the completion only. Lines whose completion does not
///   fit are an error (they would train nothing).
public enum TrainingExamples {
    public static func load(path: String, seqLen: Int, tokenizer: BPETokenizer,
                            communicator: any Communicator) throws -> [TrainingExample] {
        precondition(seqLen >= 2, "seq_len must be at least 2")
        // Rank 0 produces a flat [count, (length, promptLength, tokens…)…] to broadcast.
        let flat = try TextTokens.fromMainRank(path, communicator: communicator) {
            let examples = try read(path: path, seqLen: seqLen, tokenizer: tokenizer)
            var flat = [examples.count]
            for e in examples { flat += [e.tokens.count, e.promptLength] + e.tokens }
            return flat
        }
        var examples: [TrainingExample] = []
        var i = 1
        for _ in 0..<flat[0] {
            let n = flat[i], prompt = flat[i + 1]
            examples.append(TrainingExample(tokens: Array(flat[(i + 2)..<(i + 2 + n)]), promptLength: prompt))
            i += 2 + n
        }
        return examples
    }

    /// The examples of a file, on the calling rank alone.
    public static func read(path: String, seqLen: Int, tokenizer: BPETokenizer) throws -> [TrainingExample] {
        let examples: [TrainingExample]
        if path.hasSuffix(".jsonl") {
            examples = try readJSONL(path: path, seqLen: seqLen, tokenizer: tokenizer)
        } else {
            examples = windows(tokenizer.encode(try TextTokens.readText(path), addSpecialTokens: false), seqLen: seqLen)
        }
        guard !examples.isEmpty else {
            throw QDistIOError(.invalidArgument, path: path, "no training example of \(seqLen) tokens (file too short for seq_len?)")
        }
        return examples
    }

    /// Consecutive, non-overlapping windows of `seqLen` tokens.
    public static func windows(_ tokens: [Int], seqLen: Int) -> [TrainingExample] {
        stride(from: 0, to: tokens.count - seqLen + 1, by: seqLen).map { TrainingExample(tokens: Array(tokens[$0..<$0 + seqLen])) }
    }

    static func readJSONL(path: String, seqLen: Int, tokenizer: BPETokenizer) throws -> [TrainingExample] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw QDistIOError(.io, path: path, "cannot read (no such file, or not readable)")
        }
        let eos = tokenizer.eosTokenID.map { [$0] } ?? []
        var packed: [Int] = []
        var pairs: [TrainingExample] = []
        for (n, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated()
        where !line.allSatisfy({ $0 == 32 || $0 == 13 || $0 == 9 }) {
            let value: JSONValue
            do { value = try JSONParser.parse(Array(line)) } catch {
                throw QDistIOError(.invalidArgument, path: path, "line \(n + 1): not a JSON object")
            }
            if let prompt = value["prompt"]?.stringValue, let completion = value["completion"]?.stringValue {
                let p = tokenizer.encode(prompt, addSpecialTokens: false)
                let tokens = Array((p + tokenizer.encode(completion, addSpecialTokens: false) + eos).prefix(seqLen))
                guard tokens.count > p.count else {
                    throw QDistIOError(.invalidArgument, path: path, "line \(n + 1): the prompt fills all \(seqLen) tokens of seq_len, so its completion would train nothing")
                }
                pairs.append(TrainingExample(tokens: tokens, promptLength: p.count))
            } else if let text = value["text"]?.stringValue {
                packed += tokenizer.encode(text, addSpecialTokens: false) + eos
            } else {
                throw QDistIOError(.invalidArgument, path: path, "line \(n + 1): needs a string \"text\", or \"prompt\" and \"completion\"")
            }
        }
        guard pairs.isEmpty || packed.isEmpty else {
            throw QDistIOError(.invalidArgument, path: path, "mixes \"text\" lines with \"prompt\"/\"completion\" lines; use one kind per file")
        }
        return pairs.isEmpty ? windows(packed, seqLen: seqLen) : pairs
    }
}
