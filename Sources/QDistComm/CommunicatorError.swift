import Foundation

/// A failed communicator call: which call, where in qdist it was made, and why.
///
/// MPI errors carry MPI's own error string and code (MPICommunicator sets MPI_ERRORS_RETURN, so
/// a failing call returns here instead of killing the job). Argument errors (a bad root, counts
/// that do not add up, a send to oneself) are caught before any MPI call, identically on every
/// rank that passed the same arguments. The pipeline layer decides whether to
/// ``Communicator/abort(reason:)``: a rank that throws and returns leaves its peers waiting.
public struct CommunicatorError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// An MPI function returned this code (not MPI_SUCCESS).
        case mpi(code: Int32)
        /// Point-to-point to a rank that is not another member of the group.
        case noPeer
        /// Arguments that cannot be right (root out of range, counts not matching the buffer).
        case invalidArgument
        /// A receive got a different element count from the one asked for.
        case countMismatch
        /// The communicator (or MPI) was already finalized.
        case finalized
        /// The launcher started several tasks in a way MPI cannot join (e.g. srun without PMIx).
        case launcher
    }

    public var kind: Kind
    /// The call that failed ("MPI_Allreduce", "send").
    public var call: String
    /// MPI's error string, or qdist's explanation.
    public var message: String
    /// The qdist source file and line of the failing call.
    public var file: String
    public var line: Int

    public init(_ kind: Kind, call: String, message: String, file: StaticString = #fileID, line: UInt = #line) {
        self.kind = kind
        self.call = call
        self.message = message
        self.file = "\(file)"
        self.line = Int(line)
    }

    public var description: String {
        var text = "\(call) failed at \(file):\(line): \(message)"
        if case .mpi(let code) = kind { text += " (MPI error \(code))" }
        return text
    }
}

/// Argument checks shared by both communicators, so both reject the same calls the same way.
enum CommunicatorValidation {
    static func root(_ root: Int, size: Int, call: String, file: StaticString = #fileID, line: UInt = #line) throws {
        guard (0..<size).contains(root) else {
            throw CommunicatorError(.invalidArgument, call: call, message: "root \(root) is not a rank of 0..<\(size)", file: file, line: line)
        }
    }

    static func peer(_ peer: Int, rank: Int, size: Int, call: String, file: StaticString = #fileID, line: UInt = #line) throws {
        guard (0..<size).contains(peer), peer != rank else {
            let why = peer == rank ? "rank \(rank) cannot \(call) to or from itself (no peer; size \(size))"
                                   : "peer \(peer) is not a rank of 0..<\(size)"
            throw CommunicatorError(.noPeer, call: call, message: why, file: file, line: line)
        }
    }

    static func tag(_ tag: Int, call: String, file: StaticString = #fileID, line: UInt = #line) throws {
        // MPI guarantees tags up to 32767 (MPI_TAG_UB is at least that); larger ones may fail.
        guard (0...32767).contains(tag) else {
            throw CommunicatorError(.invalidArgument, call: call, message: "tag \(tag) is outside 0...32767", file: file, line: line)
        }
    }

    static func count(_ count: Int, call: String, file: StaticString = #fileID, line: UInt = #line) throws {
        guard count >= 0 else {
            throw CommunicatorError(.invalidArgument, call: call, message: "negative count \(count)", file: file, line: line)
        }
    }

    /// Checks reduce-scatter counts (one per rank, non-negative, summing to the buffer's count).
    static func reduceScatter(counts: [Int], bufferCount: Int, size: Int,
                              file: StaticString = #fileID, line: UInt = #line) throws {
        guard counts.count == size else {
            throw CommunicatorError(.invalidArgument, call: "reduceScatter",
                                    message: "\(counts.count) counts for \(size) ranks", file: file, line: line)
        }
        guard counts.allSatisfy({ $0 >= 0 }), counts.reduce(0, +) == bufferCount else {
            throw CommunicatorError(.invalidArgument, call: "reduceScatter",
                                    message: "counts \(counts) do not add up to the buffer's \(bufferCount) elements",
                                    file: file, line: line)
        }
    }

    static func chunkSize(_ value: Int, file: StaticString = #fileID, line: UInt = #line) throws -> Int {
        guard value >= 1, value <= Int(Int32.max) else {
            throw CommunicatorError(.invalidArgument, call: "maxChunkElements",
                                    message: "\(value) is outside 1...\(Int32.max) (MPI counts are Int32)", file: file, line: line)
        }
        return value
    }
}

/// This machine's host name, for logs and the rank→host map.
public enum HostName {
    /// gethostname(2), or "unknown-host" when it fails.
    public static var current: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown-host" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Writes one line to stderr, unbuffered, so it is seen even when the process dies next.
func writeToStandardError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
