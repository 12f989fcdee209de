import QDistTrain

/// Counts a model folder's parameters and decoder-linear shapes for `qdist memory --model`.
enum ModelInventory {
    static func summary(ofModelAt path: String) throws -> ModelParameterSummary {
        struct NotYet: Error, CustomStringConvertible { var description: String { "reading model folders lands with QDistIO" } }
        throw NotYet()
    }
}
