import ArgumentParser
import Foundation
import QDistPipeline

/// `--adapter DIR`, `--nf4` and `--no-nf4`, shared by `qdist eval` and `qdist generate`: open the
/// model the user named, its base rounded through NF4 as QLoRA training sees it (`--nf4`, implied
/// by `--adapter` unless `--no-nf4`), with a PEFT LoRA adapter applied when one is given.
struct AdapterOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) to apply to the model; it is checked against the model's config first.",
        valueName: "dir"))
    var adapter: String?

    @Flag(name: .long, help: "Round the base's decoder linear weights through NF4 (bitsandbytes blocks of 64, double-quantized absmax) on load: the base as QLoRA fine-tuning sees it.")
    var nf4 = false

    @Flag(name: .customLong("no-nf4"), help: ArgumentHelp(
        "With --adapter: apply the adapter to the base weights as stored, not to their NF4 quantization (QLoRA's training view, the default with an adapter)."))
    var noNF4 = false

    func validate() throws {
        if noNF4 && adapter == nil { throw ValidationError("--no-nf4 only applies with --adapter") }
        if noNF4 && nf4 { throw ValidationError("--nf4 and --no-nf4 contradict each other") }
    }

    /// True when the base is rounded through NF4: `--nf4`, or an adapter without `--no-nf4`.
    var useNF4: Bool { nf4 || (adapter != nil && !noNF4) }

    /// The model at `path`, with the adapter applied when `--adapter` is given. This is the one
    /// place eval and generate build the base weight source.
    func openModel(_ path: String) throws -> ModelBundle {
        var bundle = try ModelBundle.open(path)
        if useNF4 { bundle = bundle.roundingLinears(through: .nf4) }
        guard let adapter else { return bundle }
        return try bundle.applyingAdapter(at: URL(fileURLWithPath: adapter))
    }
}
