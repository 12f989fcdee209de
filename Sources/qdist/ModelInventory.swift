import Foundation
import QDistIO
import QDistTrain

/// Counts a model folder's parameters and decoder-linear shapes for `qdist memory --model`:
/// shapes come from config.json; the total from the safetensors headers when weights are
/// present (only headers are read), else from the shapes config.json implies.
enum ModelInventory {
    static func summary(ofModelAt path: String) throws -> ModelParameterSummary {
        let url = URL(fileURLWithPath: path)
        let config = try ModelConfiguration.load(from: url)
        let linears = config.linearLayers
        var total = Double(config.parameterCount)
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory)
        let files = isDirectory.boolValue ? (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? [] : [url.lastPathComponent]
        if exists, files.contains(where: { $0.hasSuffix(".safetensors") }) {
            let folder = try CheckpointFolder(url: url)
            total = Double(folder.tensorInfos.reduce(0) { $0 + $1.info.elementCount })
        }
        return ModelParameterSummary(
            total: total,
            linear: Double(linears.reduce(0) { $0 + $1.inFeatures * $1.outFeatures }),
            linearShapes: linears.map { ($0.inFeatures, $0.outFeatures) })
    }
}
