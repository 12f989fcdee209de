/// A storage element type, spelled as safetensors spells it.
///
/// qdist computes in Float32 (`Tensor`); a `DType` says how elements sit in a file or a message
/// (`StoredTensor`). The raw values are the exact safetensors header strings, so parsing a header
/// is `DType(rawValue:)` and an unknown string is rejected by the caller with the file's name.
public enum DType: String, Sendable, CaseIterable, Codable {
    case bool = "BOOL"
    case u8 = "U8"
    case i8 = "I8"
    case f8E5M2 = "F8_E5M2"
    case f8E4M3 = "F8_E4M3"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8E5M2, .f8E4M3: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64: return 8
        }
    }

    /// Position in the safetensors Rust enum; its writer sorts tensors by this, descending, so
    /// that every tensor is naturally aligned without padding.
    public var safetensorsOrder: Int {
        switch self {
        case .bool: return 0
        case .u8: return 4
        case .i8: return 5
        case .f8E5M2: return 6
        case .f8E4M3: return 7
        case .i16: return 11
        case .u16: return 12
        case .f16: return 13
        case .bf16: return 14
        case .i32: return 15
        case .u32: return 16
        case .f32: return 17
        case .f64: return 19
        case .i64: return 20
        case .u64: return 21
        }
    }

    /// True for the floating-point types a weight may be stored in.
    public var isFloatingPoint: Bool {
        switch self {
        case .f8E5M2, .f8E4M3, .f16, .bf16, .f32, .f64: return true
        default: return false
        }
    }

    /// Decodes `count` little-endian elements at `source` into Float32 (integers convert exactly
    /// up to 2^24; fp64 rounds to nearest).
    public func decode(_ source: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch self {
        case .f32:
            UnsafeMutableRawPointer(out).copyMemory(from: source, byteCount: count * 4)
        case .f16:
            for i in 0..<count { out[i] = FloatBits.float(fromFP16: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bf16:
            for i in 0..<count { out[i] = FloatBits.float(fromBF16: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .f8E4M3:
            let p = source.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { out[i] = FloatBits.float(fromFP8E4M3: p[i]) }
        case .f8E5M2:
            let p = source.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { out[i] = FloatBits.float(fromFP8E5M2: p[i]) }
        case .f64:
            for i in 0..<count { out[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        case .bool, .u8:
            let p = source.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { out[i] = Float(p[i]) }
        case .i8:
            let p = source.assumingMemoryBound(to: Int8.self)
            for i in 0..<count { out[i] = Float(p[i]) }
        case .i16:
            for i in 0..<count { out[i] = Float(source.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)) }
        case .u16:
            for i in 0..<count { out[i] = Float(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .i32:
            for i in 0..<count { out[i] = Float(source.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
        case .u32:
            for i in 0..<count { out[i] = Float(source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
        case .i64:
            for i in 0..<count { out[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
        case .u64:
            for i in 0..<count { out[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) }
        }
    }

    /// Encodes Float32 values into this type's bytes (floats round to nearest even, fp8
    /// saturates; integers round to nearest and clamp to the type's range).
    public func encode(_ values: UnsafeBufferPointer<Float>, into destination: UnsafeMutableRawPointer) {
        let n = values.count
        switch self {
        case .f32:
            if let base = values.baseAddress { destination.copyMemory(from: base, byteCount: n * 4) }
        case .f16:
            for i in 0..<n { destination.storeBytes(of: FloatBits.fp16(fromFloat: values[i]), toByteOffset: 2 * i, as: UInt16.self) }
        case .bf16:
            for i in 0..<n { destination.storeBytes(of: FloatBits.bf16(fromFloat: values[i]), toByteOffset: 2 * i, as: UInt16.self) }
        case .f8E4M3:
            for i in 0..<n { destination.storeBytes(of: FloatBits.fp8E4M3(fromFloat: values[i]), toByteOffset: i, as: UInt8.self) }
        case .f8E5M2:
            for i in 0..<n { destination.storeBytes(of: FloatBits.fp8E5M2(fromFloat: values[i]), toByteOffset: i, as: UInt8.self) }
        case .f64:
            for i in 0..<n { destination.storeBytes(of: Double(values[i]), toByteOffset: 8 * i, as: Double.self) }
        case .bool:
            for i in 0..<n { destination.storeBytes(of: values[i] != 0 ? 1 : 0, toByteOffset: i, as: UInt8.self) }
        case .u8: for i in 0..<n { destination.storeBytes(of: clampedInteger(values[i], as: UInt8.self), toByteOffset: i, as: UInt8.self) }
        case .i8: for i in 0..<n { destination.storeBytes(of: clampedInteger(values[i], as: Int8.self), toByteOffset: i, as: Int8.self) }
        case .i16: for i in 0..<n { destination.storeBytes(of: clampedInteger(values[i], as: Int16.self), toByteOffset: 2 * i, as: Int16.self) }
        case .u16: for i in 0..<n { destination.storeBytes(of: clampedInteger(values[i], as: UInt16.self), toByteOffset: 2 * i, as: UInt16.self) }
        case .i32: for i in 0..<n { destination.storeBytes(of: clampedInteger(values[i], as: Int32.self), toByteOffset: 4 * i, as: Int32.self) }
        case .u32: for i in 0..<n { destination.storeBytes(of: clampedInteger(values[i], as: UInt32.self), toByteOffset: 4 * i, as: UInt32.self) }
        case .i64: for i in 0..<n { destination.storeBytes(of: clampedInteger(values[i], as: Int64.self), toByteOffset: 8 * i, as: Int64.self) }
        case .u64: for i in 0..<n { destination.storeBytes(of: clampedInteger(values[i], as: UInt64.self), toByteOffset: 8 * i, as: UInt64.self) }
        }
    }
}

/// Rounds to the nearest integer (ties to even) and clamps into `T`; NaN becomes 0.
@inlinable
func clampedInteger<T: FixedWidthInteger>(_ x: Float, as _: T.Type) -> T {
    if x.isNaN { return 0 }
    let r = Double(x).rounded(.toNearestOrEven)
    if r <= Double(T.min) { return T.min }
    if r >= Double(T.max) { return T.max }
    return T(r)
}
