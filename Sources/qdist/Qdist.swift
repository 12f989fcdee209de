import ArgumentParser
import Foundation

/// The qdist command line: one subcommand per file, each a thin shell over a library call.
@main
struct Qdist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qdist",
        abstract: "Compress and fine-tune Llama-family models, on a laptop or across an Open MPI cluster.",
        version: QdistVersion.string,
        subcommands: [QuantizeCommand.self, FinetuneCommand.self, EvalCommand.self, GenerateCommand.self, ConvertCommand.self, ImatrixCommand.self, MergeAdapterCommand.self, TinyModelCommand.self, RandomAdapterCommand.self, InspectCommand.self, MemoryCommand.self, FormatsCommand.self, EnvCommand.self])

    static func main() {
        // A file-size limit (ulimit -f, some quota setups) then fails the write with EFBIG, which
        // becomes a one-line error naming the file and removes the partial output, instead of
        // killing the process mid-write.
        signal(SIGXFSZ, SIG_IGN)
        var command: any ParsableCommand
        do {
            command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

/// The qdist release this binary was built from.
enum QdistVersion {
    static let string = "0.1.0"
}
