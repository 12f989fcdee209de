import Foundation
import QDistComm
import QDistIO

/// Token ids of a whole text file, tokenized once on rank 0 and broadcast, so every rank sees
/// exactly the same ids and only one rank pays for tokenization.
public enum TextTokens {
    public static func load(_ path: String, tokenizer: BPETokenizer, communicator comm: any Communicator) throws -> [Int] {
        var ids: [Int32] = []
        var failure: [UInt8] = []
        if comm.isMain {
            do {
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw QDistIOError(.io, path: path, "cannot read (no such file, or not readable)")
                }
                guard let text = String(data: data, encoding: .utf8) else {
                    throw QDistIOError(.invalidArgument, path: path, "not valid UTF-8 text")
                }
                ids = tokenizer.encode(text, addSpecialTokens: false).map { Int32($0) }
            } catch let error as QDistIOError {
                failure = Array(error.description.utf8)
            } catch {
                failure = Array("\(path): \(error.localizedDescription)".utf8)
            }
        }
        // Rank 0's failure travels too, so every rank fails with the same message.
        try comm.broadcast(&failure, root: 0)
        if !failure.isEmpty { throw TextTokensError(description: String(decoding: failure, as: UTF8.self)) }
        try comm.broadcast(&ids, root: 0)
        return ids.map(Int.init)
    }
}

/// A text file that could not be read or decoded (the message names the file).
public struct TextTokensError: Error, CustomStringConvertible {
    public let description: String
}
