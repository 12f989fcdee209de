import ArgumentParser
import Foundation
import QDistComm
import QDistPipeline

/// Runs a command body on the world communicator with qdist's failure rule: in one process an
/// error is one line on stderr and exit 1; under MPI the failing rank aborts the whole job with
/// its rank and reason, so no peer waits forever in a collective. A planned stop
/// (`--stop-after-block`) exits 3 on every rank without aborting.
enum DistributedJob {
    static func run(_ command: String, _ body: (any Communicator) throws -> Void) throws {
        let comm: any Communicator
        do {
            comm = try CommunicatorFactory.makeWorldCommunicator()
        } catch {
            throw ConsoleOutput.fail(command, "\(error)")
        }
        if command == "quantize" || command == "finetune" {
            InterruptHandler.install(message: comm.isMain
                ? "qdist \(command): interrupted; finished \(command == "quantize" ? "blocks are" : "checkpoints are") kept — rerun the same command to resume"
                : nil)
        }
        do {
            try body(comm)
        } catch let stop as SequentialQuantizer.StoppedAfterBlock {
            // A stop asked for on the command line: every rank stops together, no abort.
            if comm.isMain { FileHandle.standardError.write(Data("qdist \(command): \(stop)\n".utf8)) }
            try? comm.finalize()
            throw ExitCode(3)
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
