import ArgumentParser

/// `qdist formats` (being written; replaced by its real implementation).
struct FormatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "formats", abstract: "(in progress)")
    func run() throws { throw ValidationError("qdist formats is not built yet") }
}
