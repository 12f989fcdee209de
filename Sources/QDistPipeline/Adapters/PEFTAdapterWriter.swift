import Foundation
import QDistIO
import QDistModel
import QDistTensor

/// Writes a LoRA adapter as a PEFT adapter folder — `adapter_config.json` (the key set PEFT
/// 0.21 writes, see `PEFTAdapterConfigFile`) and `adapter_model.safetensors` (F32 tensors
/// named `base_model.model.model.layers.N.<module>.lora_{A,B}.weight`, metadata
/// `{"format": "pt"}`) — that `PeftModel.from_pretrained(base, folder)` loads.
///
/// The folder appears whole or not at all: both files are written into a hidden staging
/// folder beside the destination, which is then renamed into place. An existing destination
/// is replaced only when it is empty or is itself an adapter folder (it holds
/// adapter_config.json), so saving again over a previous adapter works and a mistyped path
/// never wipes an unrelated folder.
public enum PEFTAdapterWriter {
    /// Writes the adapter whose values are `parameters` (laid out by `layout`, which must be the
    /// layout of `config`) for the base model `baseModel` (a Hub id or a path, recorded as
    /// `base_model_name_or_path`) into the folder `to`.
    public static func write(config: LoRAConfig, layout: TrainableParameterLayout, parameters: [Float],
                             baseModel: String, to destination: URL) throws {
        try check(config: config, layout: layout, parameters: parameters, destination: destination)
        let fm = FileManager.default
        let parent = destination.deletingLastPathComponent()
        do { try fm.createDirectory(at: parent, withIntermediateDirectories: true) } catch {
            throw QDistIOError(.io, path: parent.path, "cannot create folder: \(FileErrorReason.describe(error))")
        }
        try checkReplaceable(destination)
        let token = "\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        let staging = parent.appendingPathComponent(".\(destination.lastPathComponent).partial-\(token)")
        do {
            try fm.createDirectory(at: staging, withIntermediateDirectories: false)
            try AtomicFileWriter.write(PEFTAdapterConfigFile.text(for: config, baseModel: baseModel),
                                       to: staging.appendingPathComponent(PEFTAdapterConfigFile.fileName))
            var tensors: [String: StoredTensor] = [:]
            for entry in layout.entries {
                tensors[entry.name] = StoredTensor(Tensor(shape: entry.shape, scalars: Array(parameters[entry.range])), as: .f32)
            }
            try SafetensorsWriter.write(tensors, metadata: ["format": "pt"],
                                        to: staging.appendingPathComponent(PEFTAdapterReader.weightsFileName))
            try moveIntoPlace(staging, destination, token: token)
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
    }

    /// Writes the two adapter files into `folder`, which may hold other things (a training run's
    /// checkpoints): each file atomically, the weights first, so the config — what PEFT looks
    /// for — only appears beside complete weights.
    public static func writeFiles(config: LoRAConfig, layout: TrainableParameterLayout, parameters: [Float],
                                  baseModel: String, into folder: URL) throws {
        try check(config: config, layout: layout, parameters: parameters, destination: folder)
        do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw QDistIOError(.io, path: folder.path, "cannot create folder: \(FileErrorReason.describe(error))")
        }
        var tensors: [String: StoredTensor] = [:]
        for entry in layout.entries {
            tensors[entry.name] = StoredTensor(Tensor(shape: entry.shape, scalars: Array(parameters[entry.range])), as: .f32)
        }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: folder.appendingPathComponent(PEFTAdapterReader.weightsFileName))
        try AtomicFileWriter.write(PEFTAdapterConfigFile.text(for: config, baseModel: baseModel),
                                   to: folder.appendingPathComponent(PEFTAdapterConfigFile.fileName))
    }

    /// Writes `adapter` (for example one read back, or a trained one wrapped in `PEFTAdapter`).
    public static func write(_ adapter: PEFTAdapter, baseModel: String? = nil, to destination: URL) throws {
        try write(config: adapter.lora, layout: adapter.layout, parameters: adapter.parameters.values,
                  baseModel: baseModel ?? adapter.baseModel ?? "", to: destination)
    }

    /// The arguments describe one adapter: a layout of this rank and these targets, a value for
    /// every element, and finite values (a diverged run must not leave an adapter that loads
    /// as garbage).
    static func check(config: LoRAConfig, layout: TrainableParameterLayout, parameters: [Float], destination: URL) throws {
        func invalid(_ message: String) -> QDistIOError { QDistIOError(.invalidArgument, path: destination.path, message) }
        guard parameters.count == layout.count else {
            throw invalid("\(parameters.count) parameter values for a layout of \(layout.count)")
        }
        let layoutTargets = Set(layout.entries.map(\.target))
        guard layoutTargets == Set(config.targets) else {
            throw invalid("the layout adapts \(layoutTargets.sorted().map(\.rawValue)) but the LoRA config targets \(config.targetModules)")
        }
        if let e = layout.entries.first(where: { ($0.role == .a ? $0.shape[0] : $0.shape[1]) != config.rank }) {
            throw invalid("tensor \(e.name) has shape \(e.shape), not rank \(config.rank)")
        }
        if let bad = parameters.firstIndex(where: { !$0.isFinite }),
           let e = layout.entries.first(where: { $0.range.contains(bad) }) {
            throw invalid("tensor \(e.name) holds NaN or infinite values; not writing an adapter that would load as garbage")
        }
    }

    /// Throws unless `destination` is absent, an empty folder, or an adapter folder.
    static func checkReplaceable(_ destination: URL) throws {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        guard fm.fileExists(atPath: destination.path, isDirectory: &isFolder) else { return }
        let contents = isFolder.boolValue ? (try? fm.contentsOfDirectory(atPath: destination.path)) ?? [] : nil
        guard let contents, contents.isEmpty || contents.contains(PEFTAdapterConfigFile.fileName) else {
            throw QDistIOError(.io, path: destination.path, "exists and is not a PEFT adapter folder; refusing to replace it")
        }
    }

    /// Renames `staging` to `destination`, first moving an existing destination aside (and
    /// back again if the second rename fails).
    static func moveIntoPlace(_ staging: URL, _ destination: URL, token: String) throws {
        let fm = FileManager.default
        guard fm.fileExists(atPath: destination.path) else {
            try fm.moveItem(at: staging, to: destination)
            return
        }
        let previous = destination.deletingLastPathComponent().appendingPathComponent(".\(destination.lastPathComponent).previous-\(token)")
        try fm.moveItem(at: destination, to: previous)
        do {
            try fm.moveItem(at: staging, to: destination)
        } catch {
            try? fm.moveItem(at: previous, to: destination)
            throw error
        }
        try? fm.removeItem(at: previous)
    }
}
