/// The element types a ``Communicator`` can move, each mapped to the MPI datatype of the same
/// width and signedness.
///
/// Why a closed list: MPI reduces with typed arithmetic, so a buffer of `Float` must travel as
/// MPI_FLOAT or a SUM would add bit patterns. `Int` travels as 64-bit (qdist targets 64-bit
/// platforms only). Half-precision payloads (fp16/bf16) move as `UInt16` bit patterns and must
/// not be reduced with SUM/MAX/MIN — MPI has no arithmetic for them.
public enum CommunicatorDatatype: String, Sendable, CaseIterable {
    case uint8, uint16, uint32, int32, int64, float, double

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .uint8: 1
        case .uint16: 2
        case .uint32, .int32, .float: 4
        case .int64, .double: 8
        }
    }
}

/// A Swift scalar type that a ``Communicator`` can send, receive and reduce.
///
/// Conform only types whose memory layout is exactly the MPI datatype named by
/// ``communicatorDatatype``; a mismatch silently corrupts data on the wire.
public protocol CommunicatorScalar: Numeric, Sendable {
    /// The wire datatype of this type.
    static var communicatorDatatype: CommunicatorDatatype { get }
}

extension Float: CommunicatorScalar { public static var communicatorDatatype: CommunicatorDatatype { .float } }
extension Double: CommunicatorScalar { public static var communicatorDatatype: CommunicatorDatatype { .double } }
extension Int32: CommunicatorScalar { public static var communicatorDatatype: CommunicatorDatatype { .int32 } }
extension Int64: CommunicatorScalar { public static var communicatorDatatype: CommunicatorDatatype { .int64 } }
extension UInt8: CommunicatorScalar { public static var communicatorDatatype: CommunicatorDatatype { .uint8 } }
extension UInt16: CommunicatorScalar { public static var communicatorDatatype: CommunicatorDatatype { .uint16 } }
extension UInt32: CommunicatorScalar { public static var communicatorDatatype: CommunicatorDatatype { .uint32 } }
extension Int: CommunicatorScalar {
    /// `Int` is 64-bit on every platform qdist supports, so it travels as MPI_INT64_T.
    public static var communicatorDatatype: CommunicatorDatatype {
        precondition(MemoryLayout<Int>.size == 8, "qdist requires a 64-bit platform")
        return .int64
    }
}

/// The reductions qdist uses: SUM for Hessians, gradients and histograms; MAX/MIN for ranges.
public enum ReduceOp: String, Sendable, CaseIterable {
    case sum, max, min
}

/// The collectives and point-to-point calls qdist's pipelines need, over one group of ranks.
///
/// Two implementations exist: ``SingleProcessCommunicator`` (the laptop mode, size 1, no MPI at
/// all) and ``MPICommunicator`` (Open MPI). Pipeline code is written once against this protocol,
/// so a single-process run is the same algorithm with P = 1.
///
/// Rules every caller must follow (they are MPI's rules, and breaking them hangs or corrupts):
/// - Every rank calls the same collectives in the same order.
/// - `reduce`, `allreduce` and `allgather` need the same element count on every rank;
///   `broadcast` and `allgatherv` exchange counts themselves; `reduceScatter` needs the same
///   `counts` array (and buffer of `counts.sum` elements) on every rank.
/// - Methods throw ``CommunicatorError`` on failure; the pipeline layer decides whether to
///   ``abort(reason:)`` the whole job (a rank that throws and returns leaves its peers waiting).
/// - One communicator is not for concurrent collectives from several threads: use
///   ``duplicate(maxChunkElements:)`` to get an independent stream.
public protocol Communicator: AnyObject, Sendable {
    /// This process's index in the group, `0..<size`.
    var rank: Int { get }
    /// Number of ranks in the group.
    var size: Int { get }
    /// Ranks of this group running on this node (to divide the node's cores among them).
    var ranksOnNode: Int { get }
    /// Largest element count passed to one MPI call; larger buffers travel in consecutive
    /// chunks. MPI counts are Int32, so this is at most `Int(Int32.max)`.
    var maxChunkElements: Int { get }
    /// A short name of the implementation ("single-process", "mpi").
    var implementationName: String { get }

    /// Blocks until every rank has reached the barrier.
    func barrier() throws
    /// Copies root's buffer to every rank. Non-root buffers are resized to root's count first
    /// (the count travels in a small broadcast of its own), so receivers need not know it.
    func broadcast<T: CommunicatorScalar>(_ buffer: inout [T], root: Int) throws
    /// Combines every rank's buffer element-wise into root's buffer. Only root's result is
    /// meaningful; other ranks' buffers are left unchanged.
    func reduce<T: CommunicatorScalar>(_ buffer: inout [T], op: ReduceOp, root: Int) throws
    /// Combines every rank's buffer element-wise, leaving the result on every rank.
    func allreduce<T: CommunicatorScalar>(_ buffer: inout [T], op: ReduceOp) throws
    /// Concatenates every rank's buffer in rank order (all ranks pass the same count).
    func allgather<T: CommunicatorScalar>(_ buffer: [T]) throws -> [T]
    /// Gathers buffers of any count (zero included), one array per rank in rank order.
    func allgatherv<T: CommunicatorScalar>(_ buffer: [T]) throws -> [[T]]
    /// Reduces `buffer` (laid out as consecutive blocks of `counts[r]` elements) and hands rank
    /// r the reduced block r. Every rank passes the same `counts`, one per rank.
    func reduceScatter<T: CommunicatorScalar>(_ buffer: [T], counts: [Int], op: ReduceOp) throws -> [T]
    /// Sends to one other rank (blocking); messages with the same tag arrive in order.
    func send<T: CommunicatorScalar>(_ buffer: [T], to destination: Int, tag: Int) throws
    /// Receives exactly `count` elements from one other rank; a different count throws.
    func receive<T: CommunicatorScalar>(count: Int, from source: Int, tag: Int) throws -> [T]
    /// An independent communicator over the same ranks (its own message space), optionally
    /// with another chunk size. Collective: every rank calls it.
    func duplicate(maxChunkElements: Int?) throws -> any Communicator
    /// Releases the communicator (for the world communicator: finalizes MPI). Collective.
    /// Calls after this throw ``CommunicatorError/Kind/finalized``.
    func finalize() throws
    /// Prints `qdist: rank R/N (host): reason` to stderr and stops the whole job at once.
    func abort(reason: String) -> Never
}

extension Communicator {
    /// True on rank 0, the rank that logs and writes shared files (nanoGPT's `master_process`).
    public var isMain: Bool { rank == 0 }

    /// Element-wise SUM reduce-scatter, the ZeRO-2/3 gradient exchange.
    public func reduceScatter<T: CommunicatorScalar>(_ buffer: [T], counts: [Int]) throws -> [T] {
        try reduceScatter(buffer, counts: counts, op: .sum)
    }

    /// `receive(count:from:tag:)` with the element type spelled out at the call site.
    public func receive<T: CommunicatorScalar>(_ type: T.Type, count: Int, from source: Int, tag: Int) throws -> [T] {
        try receive(count: count, from: source, tag: tag)
    }

    /// Gathers one string from every rank (UTF-8 over `allgatherv`), in rank order.
    public func allgatherStrings(_ string: String) throws -> [String] {
        try allgatherv(Array(string.utf8)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Every rank's host name, in rank order.
    public func gatherHostNames() throws -> [String] {
        try allgatherStrings(HostName.current)
    }
}

extension Array where Element: CommunicatorScalar {
    /// `count` zeros, written as zero bytes. Receive buffers are made with this rather than
    /// `[T](repeating: .zero, count:)` because the communicators' methods are generic and run
    /// unspecialized when called through `any Communicator`: element-by-element
    /// initialization then cost ~20 ns per element, more than moving a ZeRO-3 block over MPI.
    /// All-zero bytes are `.zero` for every `CommunicatorScalar` (IEEE floats and integers).
    static func zeroed(count: Int) -> [Element] {
        [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 {
                UnsafeMutableRawBufferPointer(buffer).initializeMemory(as: UInt8.self, repeating: 0)
            }
            initialized = count
        }
    }
}
