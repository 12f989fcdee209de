import Foundation

/// Encoding of a whole matrix on several threads: its rows split into one contiguous range per
/// thread, each encoded by the row-range entry into its own slice of the output. Rows never
/// share blocks, so the bytes are the same for any thread count (llama-quantize threads the
/// same way); whole-model exports use it to run at llama-quantize's speed.
extension GGMLQuantize {
    /// `rows` encoded as `type` on up to `threads` threads (fewer for small matrices: a range
    /// gets at least 32 rows). Same result and errors as the single-threaded entry.
    public static func quantize(_ type: GGMLType, rows: UnsafeBufferPointer<Float>, rowLength: Int,
                                importance: [Float]?, threads: Int) throws -> [UInt8] {
        let rowCount = rows.count / max(rowLength, 1)
        let workers = min(threads, max(rowCount / 32, 1))
        guard workers > 1, let rowBytes = type.byteCount(elements: rowLength), rows.count == rowCount * rowLength,
              let source = rows.baseAddress else {
            return try quantize(type, rows: rows, rowLength: rowLength, importance: importance)
        }
        var out = [UInt8](repeating: 0, count: rowCount * rowBytes)
        let failures = FirstError()
        out.withUnsafeMutableBytes { dst in
            guard let output = dst.baseAddress else { return }
            let job = RowRangeJob(source: source, output: output, type: type, rows: rowCount, rowLength: rowLength,
                                  rowBytes: rowBytes, workers: workers, importance: importance, failures: failures)
            DispatchQueue.concurrentPerform(iterations: workers, execute: job.run)
        }
        if let error = failures.first { throw error }
        return out
    }

    /// One worker's contiguous range of rows (pointers into buffers the caller keeps alive).
    private struct RowRangeJob: @unchecked Sendable {
        let source: UnsafePointer<Float>, output: UnsafeMutableRawPointer
        let type: GGMLType, rows: Int, rowLength: Int, rowBytes: Int, workers: Int
        let importance: [Float]?
        let failures: FirstError

        func run(worker w: Int) {
            let r0 = rows * w / workers, r1 = rows * (w + 1) / workers
            guard r1 > r0 else { return }
            let part = UnsafeBufferPointer(start: source + r0 * rowLength, count: (r1 - r0) * rowLength)
            let target = UnsafeMutableRawBufferPointer(start: output + r0 * rowBytes, count: (r1 - r0) * rowBytes)
            do {
                if let importance {
                    try importance.withUnsafeBufferPointer { try GGMLQuantize.quantize(type, rows: part, rowLength: rowLength, importance: $0, into: target) }
                } else {
                    try GGMLQuantize.quantize(type, rows: part, rowLength: rowLength, importance: nil, into: target)
                }
            } catch { failures.record(error) }
        }
    }

    /// The first error any worker hit.
    private final class FirstError: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var first: Error?
        func record(_ e: Error) { lock.lock(); if first == nil { first = e }; lock.unlock() }
    }
}
