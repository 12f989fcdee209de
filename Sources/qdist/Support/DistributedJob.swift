import ArgumentParser
import Foundation
import QDistComm

/// Runs a command body on the world communicator with qdist's failure rule: in one process an
/// error is one line on stderr and exit 1; under MPI the failing rank aborts the whole job with
/// its rank and reason, so no peer waits forever in a collective.
enum DistributedJob {
    static func run(_ command: String, _ body: (any Communicator) throws -> Void) throws {
        let comm: any Communicator
        do {
            comm = try CommunicatorFactory.makeWorldCommunicator()
        } catch {
            throw ConsoleOutput.fail(command, "\(error)")
        }
        do {
            try body(comm)
        } catch let exit as ExitCode {
            if comm.size > 1 && exit != .success { comm.abort(reason: "qdist \(command) failed") }
            throw exit
        } catch {
            if comm.size > 1 { comm.abort(reason: "qdist \(command): \(error)") }
            throw ConsoleOutput.fail(command, "\(error)")
        }
        try? comm.finalize()
    }
}
