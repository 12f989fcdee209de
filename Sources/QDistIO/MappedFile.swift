import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole regular file mapped read-only into memory, unmapped when the last reference goes.
///
/// The binary readers (`SafetensorsReader`, `GGUFFile`) share this so that opening a file is
/// one `mmap` and no read: a multi-gigabyte checkpoint opens in microseconds and pages come in
/// only as tensors are decoded. An empty file maps to an empty buffer (POSIX `mmap` refuses
/// zero bytes), so callers check the size against their format's minimum and report it.
///
/// Failure mode to know: the mapping reflects the file on disk, so truncating the file while it
/// is mapped makes later reads fault (SIGBUS). qdist's writers never modify a file in place
/// (`AtomicFileWriter` renames a new one over it), which keeps open mappings valid.
final class MappedFile: @unchecked Sendable {
    /// The file, as opened.
    let url: URL
    /// The file's bytes; valid for the lifetime of this object.
    let bytes: UnsafeRawBufferPointer

    /// Size of the file in bytes.
    var count: Int { bytes.count }
    /// The file-system path, for error messages.
    var path: String { url.path }

    /// Maps the regular file at `url`; a missing, unreadable or non-regular file is an `.io`
    /// error naming it.
    init(url: URL) throws(QDistIOError) {
        self.url = url
        let path = url.path
        // Non-blocking: opening a FIFO for reading would otherwise wait forever for a writer;
        // it is then refused below as not a regular file.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw QDistIOError.posix("cannot open", path: path) }
        defer { _ = close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw QDistIOError.posix("cannot stat", path: path) }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw QDistIOError(.io, path: path, "not a regular file")
        }
        let size = Int(status.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0),
              base != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw QDistIOError.posix("cannot map \(size) bytes", path: path)
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
    }

    deinit {
        if let base = bytes.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }
}
