import CMPI
import Foundation

/// The Open MPI implementation of ``Communicator``.
///
/// - Every MPI call goes through `mpiCheck`, and the communicator uses MPI_ERRORS_RETURN, so a
///   failure becomes a ``CommunicatorError`` naming the call, MPI's message, file and line.
/// - **Chunking.** MPI counts are Int32. Buffers above ``maxChunkElements`` travel in
///   consecutive chunks: broadcast, reduce, allreduce, send and receive split the buffer into
///   pieces of at most `maxChunkElements`. allgather, allgatherv and reduceScatter run in rounds
///   where each rank contributes at most `maxChunkElements / size` elements, so that the
///   round's total (and every displacement, also Int32) stays within `maxChunkElements`; when
///   the whole exchange already fits, they make a single MPI call with no extra copy.
/// - Thread safety: MPI is initialized with MPI_THREAD_MULTIPLE when granted (see
///   ``threadLevel``); still, collectives on one communicator must be issued in the same order
///   on every rank, so concurrent streams need ``duplicate(maxChunkElements:)``.
///   `@unchecked Sendable` because MPI handles import as `OpaquePointer`.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public let ranksOnNode: Int
    public let maxChunkElements: Int
    /// The thread support MPI granted.
    public let threadLevel: MPIThreadLevel
    public var implementationName: String { "mpi" }

    let comm: MPI_Comm
    private let isWorld: Bool
    private let lock = NSLock()
    private var released = false

    /// The largest chunk MPI's Int32 counts allow.
    public static let defaultMaxChunkElements = Int(Int32.max)

    /// Initializes MPI (once per process) and wraps MPI_COMM_WORLD.
    ///
    /// Ranks on this node come from OMPI_COMM_WORLD_LOCAL_SIZE when mpirun set it, else from
    /// MPI_Comm_split_type(MPI_COMM_TYPE_SHARED). Call only under a launcher (see
    /// ``CommunicatorFactory``): started alone, Open MPI runs as a one-rank "singleton".
    public convenience init(maxChunkElements: Int = MPICommunicator.defaultMaxChunkElements,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let chunk = try CommunicatorValidation.chunkSize(maxChunkElements)
        let level = try MPIRuntime.initialize()
        let world: MPI_Comm = qdist_mpi_comm_world()
        var rank: Int32 = 0, size: Int32 = 0
        try mpiCheck(MPI_Comm_rank(world, &rank), "MPI_Comm_rank")
        try mpiCheck(MPI_Comm_size(world, &size), "MPI_Comm_size")
        let onNode: Int
        if let local = environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap({ Int($0) }), local > 0 {
            onNode = local
        } else {
            onNode = try Self.sharedMemoryRanks(world, rank: rank)
        }
        self.init(comm: world, isWorld: true, rank: Int(rank), size: Int(size), ranksOnNode: onNode,
                  maxChunkElements: chunk, threadLevel: level)
    }

    private init(comm: MPI_Comm, isWorld: Bool, rank: Int, size: Int, ranksOnNode: Int,
                 maxChunkElements: Int, threadLevel: MPIThreadLevel) {
        self.comm = comm
        self.isWorld = isWorld
        self.rank = rank
        self.size = size
        self.ranksOnNode = ranksOnNode
        self.maxChunkElements = maxChunkElements
        self.threadLevel = threadLevel
    }

    private static func sharedMemoryRanks(_ world: MPI_Comm, rank: Int32) throws -> Int {
        var node: MPI_Comm? = nil
        try mpiCheck(MPI_Comm_split_type(world, qdist_mpi_comm_type_shared(), rank, qdist_mpi_info_null(), &node),
                     "MPI_Comm_split_type")
        var count: Int32 = 1
        try mpiCheck(MPI_Comm_size(node, &count), "MPI_Comm_size")
        try mpiCheck(MPI_Comm_free(&node), "MPI_Comm_free")
        return Int(count)
    }

    /// MPI_Get_library_version's first line, e.g. "Open MPI v4.1.4, package: Debian OpenMPI, ...".
    public var libraryVersion: String { MPIRuntime.libraryVersion }

    public func duplicate(maxChunkElements: Int?) throws -> any Communicator {
        try checkOpen("MPI_Comm_dup")
        let chunk = try CommunicatorValidation.chunkSize(maxChunkElements ?? self.maxChunkElements)
        var copy: MPI_Comm? = nil
        try mpiCheck(MPI_Comm_dup(comm, &copy), "MPI_Comm_dup")
        guard let copy else {
            throw CommunicatorError(.mpi(code: 0), call: "MPI_Comm_dup", message: "returned no communicator")
        }
        try mpiCheck(MPI_Comm_set_errhandler(copy, qdist_mpi_errors_return()), "MPI_Comm_set_errhandler")
        return MPICommunicator(comm: copy, isWorld: false, rank: rank, size: size, ranksOnNode: ranksOnNode,
                               maxChunkElements: chunk, threadLevel: threadLevel)
    }

    /// World: MPI_Finalize (once per process; free duplicates first). Duplicate: MPI_Comm_free.
    public func finalize() throws {
        lock.lock()
        let wasReleased = released
        released = true
        lock.unlock()
        guard !wasReleased else { return }
        if isWorld {
            try MPIRuntime.finalize()
        } else if !MPIRuntime.isFinalized {
            var handle: MPI_Comm? = comm
            try mpiCheck(MPI_Comm_free(&handle), "MPI_Comm_free")
        }
    }

    public func abort(reason: String) -> Never {
        writeToStandardError("qdist: rank \(rank)/\(size) (\(HostName.current)): \(reason)")
        // MPI_COMM_WORLD, not this communicator: the whole job must stop, not just this group.
        MPI_Abort(qdist_mpi_comm_world(), 1)
        exit(1)  // MPI_Abort does not return in Open MPI; this only satisfies `Never`.
    }

    // MARK: - Collectives over contiguous chunks

    public func barrier() throws {
        try checkOpen("MPI_Barrier")
        try mpiCheck(MPI_Barrier(comm), "MPI_Barrier")
    }

    public func broadcast<T: CommunicatorScalar>(_ buffer: inout [T], root: Int) throws {
        try checkOpen("MPI_Bcast")
        try CommunicatorValidation.root(root, size: size, call: "broadcast")
        var count = [Int64(buffer.count)]
        try count.withUnsafeMutableBytes { raw in
            try mpiCheck(MPI_Bcast(raw.baseAddress, 1, qdist_mpi_int64(), Int32(root), comm), "MPI_Bcast")
        }
        let n = Int(count[0])
        if rank != root && buffer.count != n { buffer = [T].zeroed(count: n) }
        let type = MPIRuntime.datatype(T.communicatorDatatype)
        try buffer.withUnsafeMutableBytes { raw in
            try forEachChunk(of: n) { start, chunk in
                try mpiCheck(MPI_Bcast(raw.baseAddress! + start * MemoryLayout<T>.stride, chunk, type,
                                       Int32(root), comm), "MPI_Bcast")
            }
        }
    }

    public func reduce<T: CommunicatorScalar>(_ buffer: inout [T], op: ReduceOp, root: Int) throws {
        try checkOpen("MPI_Reduce")
        try CommunicatorValidation.root(root, size: size, call: "reduce")
        let type = MPIRuntime.datatype(T.communicatorDatatype), mpiOp = MPIRuntime.op(op)
        let isRoot = rank == root
        try buffer.withUnsafeMutableBytes { raw in
            try forEachChunk(of: raw.count / MemoryLayout<T>.stride) { start, chunk in
                let pointer = raw.baseAddress! + start * MemoryLayout<T>.stride
                if isRoot {
                    try mpiCheck(MPI_Reduce(qdist_mpi_in_place(), pointer, chunk, type, mpiOp, Int32(root), comm), "MPI_Reduce")
                } else {
                    try mpiCheck(MPI_Reduce(pointer, nil, chunk, type, mpiOp, Int32(root), comm), "MPI_Reduce")
                }
            }
        }
    }

    public func allreduce<T: CommunicatorScalar>(_ buffer: inout [T], op: ReduceOp) throws {
        try checkOpen("MPI_Allreduce")
        let type = MPIRuntime.datatype(T.communicatorDatatype), mpiOp = MPIRuntime.op(op)
        try buffer.withUnsafeMutableBytes { raw in
            try forEachChunk(of: raw.count / MemoryLayout<T>.stride) { start, chunk in
                try mpiCheck(MPI_Allreduce(qdist_mpi_in_place(), raw.baseAddress! + start * MemoryLayout<T>.stride,
                                           chunk, type, mpiOp, comm), "MPI_Allreduce")
            }
        }
    }

    // MARK: - Point to point

    public func send<T: CommunicatorScalar>(_ buffer: [T], to destination: Int, tag: Int) throws {
        try checkOpen("MPI_Send")
        try CommunicatorValidation.peer(destination, rank: rank, size: size, call: "send")
        try CommunicatorValidation.tag(tag, call: "send")
        let type = MPIRuntime.datatype(T.communicatorDatatype)
        try buffer.withUnsafeBytes { raw in
            // Chunks of one message share the tag; MPI delivers them in order (non-overtaking).
            try forEachChunk(of: buffer.count) { start, chunk in
                try mpiCheck(MPI_Send(raw.baseAddress! + start * MemoryLayout<T>.stride, chunk, type,
                                      Int32(destination), Int32(tag), comm), "MPI_Send")
            }
        }
    }

    public func receive<T: CommunicatorScalar>(count: Int, from source: Int, tag: Int) throws -> [T] {
        try checkOpen("MPI_Recv")
        try CommunicatorValidation.peer(source, rank: rank, size: size, call: "receive")
        try CommunicatorValidation.tag(tag, call: "receive")
        try CommunicatorValidation.count(count, call: "receive")
        let type = MPIRuntime.datatype(T.communicatorDatatype)
        var result = [T].zeroed(count: count)
        try result.withUnsafeMutableBytes { raw in
            try forEachChunk(of: count) { start, chunk in
                var status = MPI_Status()
                try mpiCheck(MPI_Recv(raw.baseAddress! + start * MemoryLayout<T>.stride, chunk, type,
                                      Int32(source), Int32(tag), comm, &status), "MPI_Recv")
                var received: Int32 = 0
                try mpiCheck(MPI_Get_count(&status, type, &received), "MPI_Get_count")
                guard received == chunk else {
                    throw CommunicatorError(.countMismatch, call: "receive",
                                            message: "expected \(chunk) elements from rank \(source) (tag \(tag)), got \(received)")
                }
            }
        }
        return result
    }

    // MARK: - Helpers

    /// Proves that MPI errors come back as ``CommunicatorError`` instead of killing the job:
    /// makes an MPI_Bcast with an invalid root (bypassing qdist's own validation), which MPI's
    /// parameter check rejects locally on every rank with MPI_ERR_ROOT. Returns nil when the
    /// error arrived as expected, else what happened. Relies on Open MPI's default runtime
    /// parameter checking (MCA mpi_param_check=1).
    func verifyErrorsReturn() -> String? {
        var value: Int32 = 0
        do {
            try mpiCheck(MPI_Bcast(&value, 1, qdist_mpi_int32(), Int32(size), comm), "MPI_Bcast")
            return "MPI_Bcast with root \(size) succeeded"
        } catch let error as CommunicatorError {
            guard case .mpi = error.kind, error.call == "MPI_Bcast", !error.message.isEmpty,
                  error.file.hasSuffix("MPICommunicator.swift") else { return "unexpected error \(error)" }
            return nil
        } catch {
            return "unexpected error \(error)"
        }
    }

    /// Throws when this communicator or MPI itself was finalized (MPI calls would be erroneous).
    func checkOpen(_ call: StaticString, file: StaticString = #fileID, line: UInt = #line) throws {
        lock.lock()
        let wasReleased = released
        lock.unlock()
        if wasReleased || MPIRuntime.isFinalized {
            throw CommunicatorError(.finalized, call: "\(call)", message: "the communicator was finalized",
                                    file: file, line: line)
        }
    }

    /// Calls `body(start, count)` for consecutive pieces of at most ``maxChunkElements``.
    func forEachChunk(of count: Int, _ body: (_ start: Int, _ count: Int32) throws -> Void) rethrows {
        var start = 0
        while start < count {
            let n = min(maxChunkElements, count - start)
            try body(start, Int32(n))
            start += n
        }
    }
}
