import Foundation

/// A failure reading or writing a file, said in one line that names the file (and, where it
/// helps, the byte offset or the key at fault).
///
/// Every reader and writer in QDistIO throws this type so a command can print
/// `qdist <cmd>: error: \(error)` and a user sees exactly which file is bad and where, e.g.
/// `model.safetensors: tensor "w": data_offsets [0, 12] hold 12 bytes but F32 [2, 2] needs 16`.
/// The description never contains a newline: multi-line causes are joined with "; ".
public struct QDistIOError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, broadly; lets callers and tests react without parsing the message.
    public enum Kind: String, Sendable {
        /// The file or folder is missing, unreadable, or not writable.
        case io
        /// Text that should be JSON is not (syntax, duplicate key, invalid UTF-8, trailing bytes).
        case json
        /// A safetensors header breaks a rule of FORMATS.md §1.1.
        case safetensors
        /// A sharded checkpoint's index disagrees with its shards.
        case index
        /// A `config.json` lacks a key, has a wrong type, or names an unsupported model.
        case config
        /// The caller asked for something the file does not hold (an absent tensor name).
        case notFound
        /// The caller passed values that cannot be written (size mismatch, duplicate name).
        case invalidArgument
    }

    /// The file (or folder) at fault, as the caller named it.
    public var path: String
    public var kind: Kind
    /// The problem, without the path; one line.
    public var message: String
    /// Byte offset in the file where the problem was found, when one is known.
    public var byteOffset: Int?

    public init(_ kind: Kind, path: String, _ message: String, byteOffset: Int? = nil) {
        self.kind = kind
        self.path = path
        self.message = message.replacingOccurrences(of: "\n", with: "; ")
        self.byteOffset = byteOffset
    }

    /// Convenience for a `URL`: the path as a file-system path.
    public init(_ kind: Kind, url: URL, _ message: String, byteOffset: Int? = nil) {
        self.init(kind, path: url.path, message, byteOffset: byteOffset)
    }

    /// `path: message`, one line.
    public var description: String { "\(path): \(message)" }

    /// An `.io` error from the current `errno`, e.g. `x.safetensors: cannot open: No such file or directory`.
    static func posix(_ what: String, path: String, errno code: Int32 = errno) -> QDistIOError {
        QDistIOError(.io, path: path, "\(what): \(String(cString: strerror(code)))")
    }
}
