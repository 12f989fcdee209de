import Foundation
import QDistComm
import QDistIO

/// Token ids of a whole text file, tokenized once on rank 0 and broadcast, so every rank sees
/// exactly the same ids and only one rank pays for tokenization.
public enum TextTokens {
    public static func load(_ path: String, tokenizer: BPETokenizer, communicator comm: any Communicator) throws -> [Int] {
        try fromMainRank(path, communicator: comm) {
            tokenizer.encode(try readText(path), addSpecialTokens: false)
        }
    }

    /// The whole file as UTF-8 text; a missing or undecodable file is a one-line error.
    static func readText(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw QDistIOError(.io, path: path, "cannot read (no such file, or not readable)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw QDistIOError(.invalidArgument, path: path, "not valid UTF-8 text")
        }
        return text
    }

    /// Runs `produce` on rank 0 only and broadcasts its ids — or its failure, so every rank
    /// fails with the same message instead of waiting in a collective.
    static func fromMainRank(_ path: String, communicator comm: any Communicator, _ produce: () throws -> [Int]) throws -> [Int] {
        var ids: [Int32] = []
        var failure: [UInt8] = []
        if comm.isMain {
            do {
                ids = try produce().map { Int32($0) }
            } catch let error as QDistIOError {
                failure = Array(error.description.utf8)
            } catch {
                failure = Array("\(path): \(error)".utf8)
            }
        }
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
