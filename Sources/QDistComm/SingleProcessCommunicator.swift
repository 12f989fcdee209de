import Foundation

/// The laptop mode: a group of one rank, where every collective is the identity.
///
/// It never calls MPI — not even MPI_Initialized — so `qdist` started without mpirun needs no
/// MPI daemon, no hostfile and no network. Arguments are still validated exactly as
/// ``MPICommunicator`` validates them (root must be 0, reduce-scatter counts must be `[count]`),
/// so code that is wrong for P ranks fails here too instead of only on the cluster.
/// Point-to-point has no peer and throws ``CommunicatorError/Kind/noPeer``.
public final class SingleProcessCommunicator: Communicator {
    public let rank = 0
    public let size = 1
    public let ranksOnNode = 1
    public let maxChunkElements: Int
    public var implementationName: String { "single-process" }

    /// A one-rank group; `maxChunkElements` is only recorded (nothing is ever split here).
    public init(maxChunkElements: Int = Int(Int32.max)) {
        self.maxChunkElements = max(1, min(maxChunkElements, Int(Int32.max)))
    }

    public func barrier() throws {}

    public func broadcast<T: CommunicatorScalar>(_ buffer: inout [T], root: Int) throws {
        try CommunicatorValidation.root(root, size: size, call: "broadcast")
    }

    public func reduce<T: CommunicatorScalar>(_ buffer: inout [T], op: ReduceOp, root: Int) throws {
        try CommunicatorValidation.root(root, size: size, call: "reduce")
    }

    public func allreduce<T: CommunicatorScalar>(_ buffer: inout [T], op: ReduceOp) throws {}

    public func allgather<T: CommunicatorScalar>(_ buffer: [T]) throws -> [T] { buffer }

    public func allgatherv<T: CommunicatorScalar>(_ buffer: [T]) throws -> [[T]] { [buffer] }

    public func reduceScatter<T: CommunicatorScalar>(_ buffer: [T], counts: [Int], op: ReduceOp) throws -> [T] {
        try CommunicatorValidation.reduceScatter(counts: counts, bufferCount: buffer.count, size: size)
        return buffer
    }

    public func send<T: CommunicatorScalar>(_ buffer: [T], to destination: Int, tag: Int) throws {
        try CommunicatorValidation.peer(destination, rank: rank, size: size, call: "send")
    }

    public func receive<T: CommunicatorScalar>(count: Int, from source: Int, tag: Int) throws -> [T] {
        try CommunicatorValidation.peer(source, rank: rank, size: size, call: "receive")
        return []
    }

    public func duplicate(maxChunkElements: Int?) throws -> any Communicator {
        SingleProcessCommunicator(maxChunkElements: maxChunkElements ?? self.maxChunkElements)
    }

    public func finalize() throws {}

    public func abort(reason: String) -> Never {
        writeToStandardError("qdist: rank 0/1 (\(HostName.current)): \(reason)")
        exit(1)
    }
}
