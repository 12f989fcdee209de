import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file so that readers see either the old file or the complete new one, never a
/// half-written one.
///
/// Bytes go to a temporary file in the destination's folder (`.<name>.tmp-<pid>-<random>`, so
/// the final `rename` stays on one file system and is atomic); `commit()` flushes it to disk
/// with `fsync`, renames it over the destination and syncs the folder. If anything fails, or
/// the writer is dropped before `commit()`, the temporary file is removed, so a crash or an
/// error in the middle of a multi-gigabyte shard never leaves a truncated `.safetensors` that a
/// later run would trust. (A process killed by a signal can leave the hidden temporary file.)
public final class AtomicFileWriter {
    /// Where the file appears on `commit()`.
    public let destination: URL
    /// The hidden file being written.
    public let temporaryURL: URL
    /// Bytes appended so far by the sequential `write` calls.
    public private(set) var position = 0
    private var descriptor: Int32
    private var committed = false

    /// Creates the temporary file next to `destination` (the folder must exist).
    public init(destination: URL) throws(QDistIOError) {
        self.destination = destination
        let folder = destination.deletingLastPathComponent()
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        temporaryURL = folder.appendingPathComponent(".\(destination.lastPathComponent).tmp-\(getpid())-\(suffix)")
        descriptor = open(temporaryURL.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if descriptor < 0 {
            throw QDistIOError.posix("cannot create a temporary file in \(folder.path)", path: destination.path)
        }
    }

    deinit { abandon() }

    /// Appends `bytes` at the current position.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(QDistIOError) {
        try write(bytes, at: position)
        position += bytes.count
    }

    /// Appends `bytes`.
    public func write(_ bytes: [UInt8]) throws(QDistIOError) {
        let result: Result<Void, QDistIOError> = bytes.withUnsafeBytes { raw in
            Result { () throws(QDistIOError) in try write(raw) }
        }
        try result.get()
    }

    /// Writes `bytes` at byte `offset` without moving the sequential position (for writers
    /// that know the layout in advance and fill it in any order).
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(QDistIOError) {
        guard !committed, descriptor >= 0 else {
            throw QDistIOError(.io, path: destination.path, "write after the file was committed or abandoned")
        }
        var done = 0
        while done < bytes.count {
            let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                abandon()
                throw QDistIOError.posix("write failed at byte \(offset + done)", path: destination.path, errno: code)
            }
            done += n
        }
    }

    /// Flushes the data to disk, renames the temporary file to `destination` (replacing any
    /// file there) and syncs the folder so the rename survives a power cut.
    public func commit() throws(QDistIOError) {
        guard !committed, descriptor >= 0 else {
            throw QDistIOError(.io, path: destination.path, "commit after the file was committed or abandoned")
        }
        if fsync(descriptor) != 0 {
            let code = errno
            abandon()
            throw QDistIOError.posix("fsync failed", path: destination.path, errno: code)
        }
        if close(descriptor) != 0 {
            let code = errno
            descriptor = -1
            abandon()
            throw QDistIOError.posix("close failed", path: destination.path, errno: code)
        }
        descriptor = -1
        if rename(temporaryURL.path, destination.path) != 0 {
            let code = errno
            abandon()
            throw QDistIOError.posix("cannot rename \(temporaryURL.lastPathComponent) into place", path: destination.path, errno: code)
        }
        committed = true
        let folder = open(destination.deletingLastPathComponent().path, O_RDONLY | O_CLOEXEC)
        if folder >= 0 {
            _ = fsync(folder)  // best effort: some file systems refuse fsync on folders
            _ = close(folder)
        }
    }

    /// Closes and deletes the temporary file; the destination is left untouched. Safe to call
    /// more than once, and a no-op after `commit()`.
    public func abandon() {
        guard !committed else { return }
        if descriptor >= 0 {
            _ = close(descriptor)
            descriptor = -1
            _ = unlink(temporaryURL.path)
        }
    }

    /// Runs `body` with a writer for `url` and commits when it returns; if it throws, the
    /// temporary file is removed and the error is rethrown unchanged.
    public static func write(to url: URL, _ body: (AtomicFileWriter) throws -> Void) throws {
        let writer = try AtomicFileWriter(destination: url)
        do {
            try body(writer)
            try writer.commit()
        } catch {
            writer.abandon()
            throw error
        }
    }

    /// Writes `bytes` as the whole content of `url`, atomically.
    public static func write(_ bytes: [UInt8], to url: URL) throws(QDistIOError) {
        let writer = try AtomicFileWriter(destination: url)
        try writer.write(bytes)
        try writer.commit()
    }
}
