import ArgumentParser
import Foundation
import QDistPipeline

/// `--adapter DIR` and `--no-nf4`, shared by `qdist eval` and `qdist generate`: open the model
/// the user named, with a PEFT LoRA adapter applied when one is given.
struct AdapterOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) to apply to the model; it is checked against the model's config first.",
        valueName: "dir"))
    var adapter: String?

    @Flag(name: .customLong("no-nf4"), help: ArgumentHelp(
        "With --adapter: apply the adapter to the base weights as stored, not to their NF4 quantization (QLoRA's training view, the default with an adapter)."))
    var noNF4 = false

    func validate() throws {
        if noNF4 && adapter == nil { throw ValidationError("--no-nf4 only applies with --adapter") }
    }

    /// The model at `path`, with the adapter applied when `--adapter` is given. This is the one
    /// place eval and generate build the base weight source.
    func openModel(_ path: String) throws -> ModelBundle {
        let bundle = try ModelBundle.open(path)
        guard let adapter else { return bundle }
        // TODO(nf4, issue 7): an adapter implies --nf4 unless --no-nf4. When the NF4 weight
        // wrapper lands, build the base source here as
        //   let base = noNF4 ? bundle : <bundle with its decoder linears NF4-quantized>
        // and apply the adapter to `base`. Until then the adapter is applied to the stored weights.
        return try bundle.applyingAdapter(at: URL(fileURLWithPath: adapter))
    }
}
