import CMPI
import Foundation

/// The thread support MPI granted (MPI_Init_thread's `provided`).
public enum MPIThreadLevel: String, Sendable {
    case single, funneled, serialized, multiple

    init(_ value: Int32) {
        switch value {
        case qdist_mpi_thread_multiple(): self = .multiple
        case qdist_mpi_thread_serialized(): self = .serialized
        case qdist_mpi_thread_funneled(): self = .funneled
        default: self = .single
        }
    }
}

/// Process-wide MPI life cycle: MPI may be initialized once and finalized once per process.
///
/// `initialize` asks for MPI_THREAD_MULTIPLE (a Swift program may call from any thread of the
/// cooperative pool; PLATFORM.md checked that Open MPI 4.1 grants it), sets
/// MPI_ERRORS_RETURN on MPI_COMM_WORLD so failures come back as codes, and registers an atexit
/// handler that finalizes MPI if the program exits without calling ``finalize()`` — without it
/// mpirun reports "exited without calling finalize" and fails the whole job.
enum MPIRuntime {
    private enum State { case untouched, initialized(MPIThreadLevel), finalized }
    private static let lock = NSLock()
    nonisolated(unsafe) private static var state = State.untouched

    /// Initializes MPI on first use and returns the thread level granted.
    static func initialize() throws -> MPIThreadLevel {
        lock.lock()
        defer { lock.unlock() }
        switch state {
        case .initialized(let level):
            return level
        case .finalized:
            throw CommunicatorError(.finalized, call: "MPI_Init_thread",
                                    message: "MPI was already finalized in this process and cannot start again")
        case .untouched:
            var provided: Int32 = 0
            try mpiCheck(MPI_Init_thread(nil, nil, qdist_mpi_thread_multiple(), &provided), "MPI_Init_thread")
            let level = MPIThreadLevel(provided)
            state = .initialized(level)
            atexit { MPIRuntime.finalizeAtExit() }
            try mpiCheck(MPI_Comm_set_errhandler(qdist_mpi_comm_world(), qdist_mpi_errors_return()),
                         "MPI_Comm_set_errhandler")
            return level
        }
    }

    /// True once ``finalize()`` ran; every MPI call after that is erroneous.
    static var isFinalized: Bool {
        lock.lock()
        defer { lock.unlock() }
        if case .finalized = state { return true }
        return false
    }

    /// MPI_Finalize, once (later calls do nothing). Collective over MPI_COMM_WORLD.
    static func finalize() throws {
        lock.lock()
        defer { lock.unlock() }
        guard case .initialized = state else { return }
        state = .finalized
        try mpiCheck(MPI_Finalize(), "MPI_Finalize")
    }

    /// The atexit path: finalize if MPI is up and nobody did. Uses `try` on the lock because a
    /// thread holding it at exit would otherwise deadlock the exit.
    private static func finalizeAtExit() {
        guard lock.try() else { return }
        defer { lock.unlock() }
        guard case .initialized = state else { return }
        state = .finalized
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 { MPI_Finalize() }
    }

    /// MPI_Get_library_version ("Open MPI v4.1.4, package: Debian OpenMPI, ..."), first line.
    static var libraryVersion: String {
        var buffer = [CChar](repeating: 0, count: Int(qdist_mpi_max_library_version_string()) + 1)
        var length: Int32 = 0
        guard MPI_Get_library_version(&buffer, &length) == MPI_SUCCESS else { return "unknown" }
        let bytes = buffer.prefix(Int(length)).prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let text = String(decoding: bytes, as: UTF8.self)
        return (text.split(whereSeparator: \.isNewline).first.map(String.init) ?? text)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func datatype(_ type: CommunicatorDatatype) -> MPI_Datatype {
        switch type {
        case .uint8: qdist_mpi_uint8()
        case .uint16: qdist_mpi_uint16()
        case .uint32: qdist_mpi_uint32()
        case .int32: qdist_mpi_int32()
        case .int64: qdist_mpi_int64()
        case .float: qdist_mpi_float()
        case .double: qdist_mpi_double()
        }
    }

    static func op(_ op: ReduceOp) -> MPI_Op {
        switch op {
        case .sum: qdist_mpi_sum()
        case .max: qdist_mpi_max()
        case .min: qdist_mpi_min()
        }
    }
}

/// The Open MPI release qdist was compiled against (from OMPI_*_VERSION in mpi.h). Reading it
/// calls no MPI function, so the single-process mode may report it.
public enum OpenMPIVersion {
    public static var compiled: String {
        "\(qdist_ompi_major()).\(qdist_ompi_minor()).\(qdist_ompi_release())"
    }
}

/// The checked wrapper around every MPI call (llm.c's `mpiCheck`): turns a return code other
/// than MPI_SUCCESS into a ``CommunicatorError`` carrying MPI's error string, the call's name,
/// and the qdist file and line of the call.
@inline(__always)
func mpiCheck(_ code: Int32, _ call: StaticString, file: StaticString = #fileID, line: UInt = #line) throws {
    guard code != MPI_SUCCESS else { return }
    throw CommunicatorError(.mpi(code: code), call: "\(call)", message: mpiErrorString(code), file: file, line: line)
}

/// MPI_Error_string for a code (callable before MPI_Init and after errors).
func mpiErrorString(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: Int(qdist_mpi_max_error_string()) + 1)
    var length: Int32 = 0
    guard MPI_Error_string(code, &buffer, &length) == MPI_SUCCESS else { return "unknown MPI error" }
    return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
