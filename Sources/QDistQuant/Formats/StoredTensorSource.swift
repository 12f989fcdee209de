import QDistIO
import QDistTensor

/// Where a quantized-checkpoint reader gets its tensors, as stored (packed int32 words must not
/// pass through Float32): a `CheckpointFolder` on disk, or the dictionary a writer just made.
public protocol StoredTensorSource {
    /// Every tensor name the source holds.
    var tensorNames: [String] { get }
    /// True when the source holds `name`.
    func contains(_ name: String) -> Bool
    /// The tensor's dtype, shape and bytes.
    func storedTensor(_ name: String) throws -> StoredTensor
    /// The file (or folder) named in errors about the tensors.
    var sourcePath: String { get }
    /// The file holding `name`, for errors about that one tensor (default: `sourcePath`).
    func filePath(of name: String) -> String
}

extension StoredTensorSource {
    public func filePath(of name: String) -> String { sourcePath }
}

extension CheckpointFolder: StoredTensorSource {
    /// The index file of a sharded checkpoint, else the path it was opened from.
    public var sourcePath: String { (indexURL ?? url).path }

    /// The shard holding `name` (a sharded checkpoint's errors then name the file at fault).
    public func filePath(of name: String) -> String { (try? reader(for: name).url.path) ?? sourcePath }
}

/// Stored tensors held in memory by name (a writer's output, tests).
public struct InMemoryStoredTensors: StoredTensorSource, Sendable {
    public var tensors: [String: StoredTensor]
    public var sourcePath: String

    public init(_ tensors: [String: StoredTensor], sourcePath: String = "<memory>") {
        self.tensors = tensors
        self.sourcePath = sourcePath
    }

    public var tensorNames: [String] { tensors.keys.sorted() }
    public func contains(_ name: String) -> Bool { tensors[name] != nil }
    public func storedTensor(_ name: String) throws -> StoredTensor {
        guard let t = tensors[name] else {
            throw QDistIOError(.notFound, path: sourcePath, "no tensor named \(JSONSerializer.quoted(name))")
        }
        return t
    }
}

extension StoredTensor {
    /// An `I32` tensor holding `values` (bit patterns kept: packed words go through unchanged).
    public static func int32(_ values: [Int32], shape: [Int]) -> StoredTensor {
        var bytes = [UInt8](repeating: 0, count: values.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v.littleEndian, toByteOffset: 4 * i, as: Int32.self) }
        }
        return StoredTensor(dtype: .i32, shape: shape, bytes: bytes)
    }

    /// An `I64` tensor holding `values`.
    static func int64(_ values: [Int64], shape: [Int]) -> StoredTensor {
        var bytes = [UInt8](repeating: 0, count: values.count * 8)
        bytes.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v.littleEndian, toByteOffset: 8 * i, as: Int64.self) }
        }
        return StoredTensor(dtype: .i64, shape: shape, bytes: bytes)
    }

    /// The elements of an `I32` tensor as bit patterns; `nil` for any other dtype.
    public var int32Values: [Int32]? {
        guard dtype == .i32 else { return nil }
        return bytes.withUnsafeBytes { raw in
            (0..<elementCount).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
        }
    }

    /// The elements of any signed or unsigned integer tensor (I8…I64, U8…U32) as `Int`; `nil`
    /// for floating-point and 64-bit unsigned dtypes.
    var integerValues: [Int]? {
        bytes.withUnsafeBytes { raw -> [Int]? in
            let n = elementCount
            switch dtype {
            case .i8: return (0..<n).map { Int(raw.load(fromByteOffset: $0, as: Int8.self)) }
            case .u8: return (0..<n).map { Int(raw.load(fromByteOffset: $0, as: UInt8.self)) }
            case .i16: return (0..<n).map { Int(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self))) }
            case .u16: return (0..<n).map { Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
            case .i32: return (0..<n).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
            case .u32: return (0..<n).map { Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            case .i64: return (0..<n).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
            default: return nil
            }
        }
    }
}

/// The tensors of one quantized module (`<module>.<tensor>`) in a source, with the one-line
/// errors every checkpoint reader gives: naming the source file and the tensor.
struct ModuleTensors {
    let module: String
    let source: any StoredTensorSource
    /// What a missing tensor's error says the format needs, e.g. "compressed-tensors int-quantized needs it".
    let missingHint: String

    /// An error about `<module>.<tensor>`.
    func fail(_ tensor: String, _ message: String) -> QDistIOError {
        QDistIOError(.config, path: source.sourcePath, "tensor \(JSONSerializer.quoted("\(module).\(tensor)")): \(message)")
    }

    /// `<module>.<tensor>`, which must exist.
    func load(_ tensor: String) throws -> StoredTensor {
        let name = "\(module).\(tensor)"
        guard source.contains(name) else { throw fail(tensor, "missing (\(missingHint))") }
        return try source.storedTensor(name)
    }
}
