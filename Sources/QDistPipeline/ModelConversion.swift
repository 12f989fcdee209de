import Foundation
import QDistIO
import QDistModel
import QDistTensor

/// `qdist convert`: a GGUF file (or a model folder) rewritten as a Hugging Face folder with
/// weights in one float dtype — tensors dequantized, Q/K rows un-permuted, names mapped — plus
/// the tokenizer files transformers needs.
public enum ModelConversion {
    /// What a conversion wrote.
    public struct Summary: Sendable {
        public var destination: URL
        public var tensors: Int
        public var parameters: Int
        public var bytes: Int
        public var seconds: Double
    }

    public static func convert(_ bundle: ModelBundle, to destination: URL, dtype: DType, overwrite: Bool,
                               otherInputs: [URL] = []) throws -> Summary {
        guard [.f32, .f16, .bf16].contains(dtype) else {
            throw QDistIOError(.invalidArgument, path: destination.path, "--dtype must be f32, f16 or bf16")
        }
        let start = Date()
        let shapes = bundle.config.tensorShapes
        var config = bundle.config
        config.torchDtype = ["f32": "float32", "f16": "float16", "bf16": "bfloat16"][dtype.rawValue.lowercased()]
        config.quantizationConfig = nil  // the weights are written dequantized

        let files = try bundle.tokenizerFileContents()
        var bytes = 0
        try ModelFolderWriter(destination: destination, overwrite: overwrite,
                              inputs: [URL(fileURLWithPath: bundle.path)] + otherInputs).write(
            config: config, tensors: shapes,
            load: { name in
                let stored = StoredTensor(try bundle.weights.tensor(name), as: dtype)
                bytes += stored.bytes.count
                return stored
            },
            tokenizerJSON: files.tokenizer, tokenizerConfig: files.tokenizerConfig,
            generationConfig: files.generationConfig)
        return Summary(destination: destination, tensors: shapes.count,
                       parameters: shapes.reduce(0) { $0 + $1.shape.reduce(1, *) }, bytes: bytes,
                       seconds: Date().timeIntervalSince(start))
    }

}
