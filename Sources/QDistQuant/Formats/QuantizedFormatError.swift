/// Why quantized weights could not be packed or written in a checkpoint format, said in one
/// line that names the linear layer (or packing call) at fault.
///
/// Writers throw this *before* any file is touched, so a run that quantized for an hour learns
/// that, say, compressed-tensors cannot carry a shorter last group, with the module path:
/// `model.layers.0.mlp.down_proj: compressed-tensors needs in_features (100) divisible by group_size (32)`.
/// Problems in files on disk (a bad `config.json`, a missing tensor) are `QDistIOError`s
/// naming the file instead.
public struct QuantizedFormatError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The module path (or `"packing"`) the message is about.
    public var subject: String
    /// The problem, one line.
    public var message: String

    public init(_ subject: String, _ message: String) {
        self.subject = subject
        self.message = message.replacingOccurrences(of: "\n", with: "; ")
    }

    /// `subject: message`, one line.
    public var description: String { "\(subject): \(message)" }
}
