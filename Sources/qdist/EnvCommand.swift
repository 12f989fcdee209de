import ArgumentParser

/// `qdist env` (being written; replaced by its real implementation).
struct EnvCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "env", abstract: "(in progress)")
    func run() throws { throw ValidationError("qdist env is not built yet") }
}
