import ArgumentParser

/// `qdist inspect` (being written; replaced by its real implementation).
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "(in progress)")
    func run() throws { throw ValidationError("qdist inspect is not built yet") }
}
