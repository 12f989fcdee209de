import ArgumentParser
import Foundation
import QDistPipeline
import QDistTensor

/// `--dtype`, `--overwrite` and `--json` of the commands that write a float model folder
/// (`convert`, `merge-adapter`), and how they report what they wrote.
struct ModelFolderOptions: ParsableArguments {
    @Option(name: .long, help: "Element type of the written weights: f32, f16 or bf16.")
    var dtype = "f32"

    @Flag(name: .long, help: "Replace the output folder if it exists.")
    var overwrite = false

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard ["f32", "f16", "bf16"].contains(dtype.lowercased()) else {
            throw ValidationError("--dtype must be f32, f16 or bf16")
        }
    }

    /// The element type `--dtype` names.
    var target: DType { ["f32": .f32, "f16": .f16, "bf16": .bf16][dtype.lowercased()]! }

    /// One line (or one JSON object) about the folder written.
    func report(_ summary: ModelConversion.Summary) throws {
        if json {
            try ConsoleOutput.printJSON(["output": summary.destination.path, "tensors": summary.tensors,
                                         "parameters": summary.parameters, "bytes": summary.bytes, "seconds": summary.seconds])
        } else {
            print(String(format: "wrote %@: %d tensors, %@ parameters, %@ (%.1f s)", summary.destination.path, summary.tensors,
                         ConsoleOutput.count(Double(summary.parameters)), ConsoleOutput.bytes(Double(summary.bytes)), summary.seconds))
        }
    }
}
