import Foundation

/// What qdist may do with an output path, checked before any work starts: never write into,
/// over or around one of its inputs, and with `--overwrite` replace only a folder that qdist
/// itself wrote — recognised by the marker file it leaves in every output folder.
///
/// Why: `--overwrite` used to delete whatever the output path named — a folder of unrelated
/// files, or the very model being quantized (`--output` equal to `--model`). A marker costs one
/// empty file and makes "replace" mean "replace what qdist made".
public enum OutputFolderGuard {
    /// The marker qdist writes into every output folder (model folders, quantized checkpoints,
    /// finetune runs).
    public static let markerName = ".qdist-output"

    /// Refuses `destination` when it is, contains or lies inside one of `inputs`, and when it
    /// exists unless `overwrite` is set and it is a folder qdist wrote. Throws one line naming
    /// the path and the reason.
    public static func check(_ destination: URL, inputs: [URL], overwrite: Bool) throws(QDistIOError) {
        let out = resolved(destination)
        for input in inputs {
            let inp = resolved(input)
            if out == inp {
                throw QDistIOError(.invalidArgument, path: destination.path, "is the input \(input.path); write the output elsewhere")
            }
            if isInside(out, inp) {
                throw QDistIOError(.invalidArgument, path: destination.path, "lies inside the input \(input.path); write the output elsewhere")
            }
            if isInside(inp, out) {
                throw QDistIOError(.invalidArgument, path: destination.path, "contains the input \(input.path); write the output elsewhere")
            }
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: destination.path, isDirectory: &isDirectory) else { return }
        guard overwrite else {
            throw QDistIOError(.io, path: destination.path, "already exists (pass --overwrite to replace it)")
        }
        // An empty folder holds nothing to lose (a user or a batch script made it for us).
        if isDirectory.boolValue, (try? FileManager.default.contentsOfDirectory(atPath: destination.path))?.isEmpty == true { return }
        guard isDirectory.boolValue, FileManager.default.fileExists(atPath: marker(in: destination).path) else {
            throw QDistIOError(.io, path: destination.path,
                               "exists and was not written by qdist (no \(markerName) marker): --overwrite replaces only qdist's own outputs; remove it yourself or choose another output")
        }
    }

    /// Writes the marker into `folder` (a new output folder, before it is moved into place).
    ///
    /// Written in place, not through a temporary file and a rename: only the marker's existence
    /// counts, and a process killed while writing it must leave the folder empty or marked —
    /// never holding a stray temporary file, which would make the rerun refuse the folder as
    /// not qdist's (a finetune killed right after creating its output did exactly that).
    public static func mark(_ folder: URL) throws(QDistIOError) {
        let url = marker(in: folder)
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw QDistIOError.posix("cannot write the output marker", path: url.path) }
        defer { close(fd) }
        let text = Array("written by qdist\n".utf8)
        guard text.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == text.count else {
            throw QDistIOError.posix("cannot write the output marker", path: url.path)
        }
    }

    /// Removes `destination` after `check` allowed it (a qdist output, with --overwrite).
    public static func replace(_ destination: URL, overwrite: Bool) throws(QDistIOError) {
        try check(destination, inputs: [], overwrite: overwrite)
        guard FileManager.default.fileExists(atPath: destination.path) else { return }
        do { try FileManager.default.removeItem(at: destination) } catch {
            throw QDistIOError(.io, path: destination.path, "cannot remove the previous output: \(FileErrorReason.describe(error))")
        }
    }

    static func marker(in folder: URL) -> URL { folder.appendingPathComponent(markerName) }

    /// Absolute, standardized, symlinks resolved (as far as the path exists).
    static func resolved(_ url: URL) -> [String] {
        let absolute = url.path.hasPrefix("/") ? url : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(url.path)
        // Resolve the longest existing prefix, keep the rest as written.
        var existing = absolute.standardizedFileURL
        var rest: [String] = []
        while !FileManager.default.fileExists(atPath: existing.path) && existing.path != "/" {
            rest.insert(existing.lastPathComponent, at: 0)
            existing = existing.deletingLastPathComponent()
        }
        return existing.resolvingSymlinksInPath().pathComponents + rest
    }

    /// Whether `inner` lies strictly inside `outer` (component-wise).
    static func isInside(_ inner: [String], _ outer: [String]) -> Bool {
        inner.count > outer.count && Array(inner.prefix(outer.count)) == outer
    }
}
