import Foundation

/// Ctrl-C and SIGTERM (a batch system's time limit) during a long job: the process ends at once
/// with 128 + the signal's number, and the main rank says in one line that finished work is
/// kept and how to resume. Nothing needs cleaning up: every record the job keeps (a quantized
/// block, a training checkpoint) is written under a temporary name and renamed, so a signal
/// leaves either a complete record or none. Under mpirun the launcher forwards the signal to
/// every rank, so all of them end within the same moment.
enum InterruptHandler {
    /// The message, prepared before any signal can arrive: a handler may only call
    /// async-signal-safe functions, so it writes these bytes and exits, nothing else.
    nonisolated(unsafe) private static var message: UnsafeMutableBufferPointer<UInt8>? = nil

    /// Installs the handler for SIGINT and SIGTERM; `message` is printed (when non-nil) on
    /// stderr before the exit.
    static func install(message text: String?) {
        if let text {
            let bytes = Array((text + "\n").utf8)
            let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: bytes.count)
            _ = buffer.initialize(from: bytes)
            message = buffer
        }
        for s in [SIGINT, SIGTERM] {
            signal(s) { sig in
                if let m = InterruptHandler.message { _ = write(2, m.baseAddress, m.count) }
                _exit(128 + sig)
            }
        }
    }
}
