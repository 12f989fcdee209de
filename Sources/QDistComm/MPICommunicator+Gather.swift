import CMPI
import Foundation

/// A valid address for zero-element MPI arguments: MPI never reads it when the count is 0, but
/// some implementations reject a null buffer even then.
nonisolated(unsafe) private let zeroCountAddress = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)

/// The gather family (allgather, allgatherv, reduceScatter), whose receive layouts are described
/// by Int32 counts *and* Int32 displacements.
///
/// Large counts: when the whole exchange (the sum over ranks) fits in ``maxChunkElements``, one
/// MPI call moves it. Otherwise the exchange runs in rounds: in round k every rank contributes
/// elements `[k·c, (k+1)·c)` of its own block (fewer, or none, once its block is exhausted), with
/// `c = max(1, maxChunkElements / size)`, so every round's total and displacements fit in Int32.
/// Rounds go through a staging buffer of `c · size` elements and are copied into place.
extension MPICommunicator {
    public func allgather<T: CommunicatorScalar>(_ buffer: [T]) throws -> [T] {
        try checkOpen("MPI_Allgather")
        let n = buffer.count, ranks = size, stride = MemoryLayout<T>.stride
        var result = [T].zeroed(count: n * ranks)
        guard n > 0 else { return result }
        let type = MPIRuntime.datatype(T.communicatorDatatype)
        if n * ranks <= maxChunkElements {
            try buffer.withUnsafeBytes { send in
                try result.withUnsafeMutableBytes { receive in
                    try mpiCheck(MPI_Allgather(send.baseAddress, Int32(n), type, receive.baseAddress, Int32(n), type, comm),
                                 "MPI_Allgather")
                }
            }
            return result
        }
        let piece = max(1, maxChunkElements / ranks)
        var staging = [T].zeroed(count: piece * ranks)
        try buffer.withUnsafeBytes { send in
            try result.withUnsafeMutableBytes { out in
                try staging.withUnsafeMutableBytes { stage in
                    for start in Swift.stride(from: 0, to: n, by: piece) {
                        let m = min(piece, n - start)
                        try mpiCheck(MPI_Allgather(send.baseAddress! + start * stride, Int32(m), type,
                                                   stage.baseAddress, Int32(m), type, comm), "MPI_Allgather")
                        for r in 0..<ranks {
                            (out.baseAddress! + (r * n + start) * stride)
                                .copyMemory(from: stage.baseAddress! + r * m * stride, byteCount: m * stride)
                        }
                    }
                }
            }
        }
        return result
    }

    public func allgatherv<T: CommunicatorScalar>(_ buffer: [T]) throws -> [[T]] {
        try checkOpen("MPI_Allgatherv")
        let counts = try exchangeCounts(buffer.count)
        let total = counts.reduce(0, +), ranks = size, stride = MemoryLayout<T>.stride
        let type = MPIRuntime.datatype(T.communicatorDatatype)
        var result = counts.map { [T].zeroed(count: $0) }
        guard total > 0 else { return result }
        // Round size: everything at once when it fits, else `piece` elements per rank per round.
        let piece = total <= maxChunkElements ? (counts.max() ?? 0) : max(1, maxChunkElements / ranks)
        let maxCount = counts.max() ?? 0
        var staging = [T].zeroed(count: min(total, piece * ranks))
        try buffer.withUnsafeBytes { send in
            try staging.withUnsafeMutableBytes { stage in
                for start in Swift.stride(from: 0, to: maxCount, by: piece) {
                    let roundCounts = counts.map { Int32(max(0, min(piece, $0 - start))) }
                    var displacements = [Int32](repeating: 0, count: ranks)
                    for r in 1..<max(1, ranks) { displacements[r] = displacements[r - 1] + roundCounts[r - 1] }
                    let mine = Int(roundCounts[rank])
                    let sendAddress = mine > 0 ? UnsafeRawPointer(send.baseAddress! + start * stride) : UnsafeRawPointer(zeroCountAddress)
                    try mpiCheck(MPI_Allgatherv(sendAddress, Int32(mine), type, stage.baseAddress,
                                                roundCounts, displacements, type, comm), "MPI_Allgatherv")
                    for r in 0..<ranks where roundCounts[r] > 0 {
                        result[r].withUnsafeMutableBytes { out in
                            (out.baseAddress! + start * stride).copyMemory(
                                from: stage.baseAddress! + Int(displacements[r]) * stride,
                                byteCount: Int(roundCounts[r]) * stride)
                        }
                    }
                }
            }
        }
        return result
    }

    public func reduceScatter<T: CommunicatorScalar>(_ buffer: [T], counts: [Int], op: ReduceOp) throws -> [T] {
        try checkOpen("MPI_Reduce_scatter")
        try CommunicatorValidation.reduceScatter(counts: counts, bufferCount: buffer.count, size: size)
        let total = buffer.count, ranks = size, stride = MemoryLayout<T>.stride
        let type = MPIRuntime.datatype(T.communicatorDatatype), mpiOp = MPIRuntime.op(op)
        var result = [T].zeroed(count: counts[rank])
        guard total > 0 else { return result }
        if total <= maxChunkElements {
            let counts32 = counts.map { Int32($0) }
            try buffer.withUnsafeBytes { send in
                try result.withUnsafeMutableBytes { out in
                    try mpiCheck(MPI_Reduce_scatter(send.baseAddress, out.baseAddress ?? zeroCountAddress, counts32,
                                                    type, mpiOp, comm), "MPI_Reduce_scatter")
                }
            }
            return result
        }
        let piece = max(1, maxChunkElements / ranks)
        var offsets = [Int](repeating: 0, count: ranks)
        for r in 1..<max(1, ranks) { offsets[r] = offsets[r - 1] + counts[r - 1] }
        var packed = [T].zeroed(count: piece * ranks)
        try buffer.withUnsafeBytes { send in
            try result.withUnsafeMutableBytes { out in
                try packed.withUnsafeMutableBytes { pack in
                    for start in Swift.stride(from: 0, to: counts.max() ?? 0, by: piece) {
                        let roundCounts = counts.map { max(0, min(piece, $0 - start)) }
                        var position = 0
                        for r in 0..<ranks where roundCounts[r] > 0 {
                            (pack.baseAddress! + position * stride).copyMemory(
                                from: send.baseAddress! + (offsets[r] + start) * stride,
                                byteCount: roundCounts[r] * stride)
                            position += roundCounts[r]
                        }
                        let target = roundCounts[rank] > 0 ? out.baseAddress! + start * stride : zeroCountAddress
                        try mpiCheck(MPI_Reduce_scatter(pack.baseAddress, target, roundCounts.map { Int32($0) },
                                                        type, mpiOp, comm), "MPI_Reduce_scatter")
                    }
                }
            }
        }
        return result
    }

    /// Every rank's element count (one small MPI_Allgather of Int64).
    func exchangeCounts(_ count: Int) throws -> [Int] {
        let mine = [Int64(count)]
        var all = [Int64](repeating: 0, count: size)
        try mine.withUnsafeBytes { send in
            try all.withUnsafeMutableBytes { receive in
                try mpiCheck(MPI_Allgather(send.baseAddress, 1, qdist_mpi_int64(), receive.baseAddress, 1,
                                           qdist_mpi_int64(), comm), "MPI_Allgather")
            }
        }
        return all.map { Int($0) }
    }
}
