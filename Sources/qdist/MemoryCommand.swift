import ArgumentParser

/// `qdist memory` (being written; replaced by its real implementation).
struct MemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "memory", abstract: "(in progress)")
    func run() throws { throw ValidationError("qdist memory is not built yet") }
}
