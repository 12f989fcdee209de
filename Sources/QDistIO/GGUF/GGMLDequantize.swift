import QDistTensor

/// Decodes `blockCount` consecutive blocks at `source` into `blockCount × blockSize` Float32
/// values at `destination`. One per ggml type, reached through `GGMLType.traits.dequantize`.
///
/// Implementations read unaligned memory (GGUF blocks of 18 or 22 bytes put fp16 fields at odd
/// addresses) and never allocate; callers guarantee both buffers are large enough.
public typealias GGMLBlockDecoder = @Sendable (
    _ source: UnsafeRawPointer, _ blockCount: Int, _ destination: UnsafeMutablePointer<Float>
) -> Void

/// Dequantization of ggml tensor data to Float32, exactly as ggml does it.
///
/// Each decoder follows `dequantize_row_*` of ggml-quants.c (FORMATS.md §2.3) with the same
/// operation order — scale times code, then subtract the min, each rounded to Float32, with no
/// fused multiply-add — so results are bit-identical to ggml's reference path and to gguf-py's
/// `gguf.quants.dequantize`, which both compute in Float32. The families live in
/// GGMLDequantizeLegacy.swift (Q4_0…Q8_0), GGMLDequantizeK.swift (Q2_K…Q6_K) and
/// GGMLDequantizeTernary.swift (TQ1_0, TQ2_0); this file has the plain float and integer types.
public enum GGMLDequantize {
    /// An fp16 field of a block, as Float32.
    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ byteOffset: Int) -> Float {
        FloatBits.float(fromFP16: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: byteOffset, as: UInt16.self)))
    }

    /// F32: a copy.
    static func f32(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(y).copyMemory(from: src, byteCount: 4 * n)
    }

    /// F16: IEEE binary16 widened exactly.
    static func f16(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for i in 0..<n { y[i] = half(src, 2 * i) }
    }

    /// BF16: the upper half of a Float32.
    static func bf16(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for i in 0..<n {
            y[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
        }
    }

    /// F64: rounded to nearest Float32.
    static func f64(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for i in 0..<n {
            y[i] = Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
        }
    }

    /// I8: converted exactly.
    static func i8(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        let p = src.assumingMemoryBound(to: Int8.self)
        for i in 0..<n { y[i] = Float(p[i]) }
    }

    /// I16: converted exactly.
    static func i16(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for i in 0..<n { y[i] = Float(Int16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
    }

    /// I32: rounded to nearest Float32 (exact up to 2^24).
    static func i32(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for i in 0..<n { y[i] = Float(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
    }

    /// I64: rounded to nearest Float32 (exact up to 2^24).
    static func i64(_ src: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
        for i in 0..<n { y[i] = Float(Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
    }
}

extension GGMLType {
    /// The types with a dequantizer, in id order.
    public static let dequantizable: [GGMLType] = allCases.filter(\.canDequantize)

    /// True when `traits.dequantize` exists for this type. False for the IQ* codebook types
    /// and the intermediate-only Q8_1/Q8_K, which a reader reports instead of decoding.
    public var canDequantize: Bool { traits.dequantize != nil }

    /// Decodes `source` (whole blocks of this type) into `destination`, whose count must be
    /// `source.count / typeSize * blockSize`. Traps when the type has no dequantizer or the
    /// sizes disagree (programming errors: `GGUFFile` checks both before calling).
    public func dequantize(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableBufferPointer<Float>) {
        let t = traits
        guard let decode = t.dequantize else { preconditionFailure("no dequantizer for \(t.name)") }
        precondition(source.count % t.typeSize == 0, "\(t.name): \(source.count) bytes is not a whole number of \(t.typeSize)-byte blocks")
        let blocks = source.count / t.typeSize
        precondition(destination.count == blocks * t.blockSize,
                     "\(t.name): \(blocks) blocks decode to \(blocks * t.blockSize) values, destination holds \(destination.count)")
        guard blocks > 0, let src = source.baseAddress, let dst = destination.baseAddress else { return }
        decode(src, blocks, dst)
    }

    /// `bytes` (whole blocks of this type) dequantized to a new array.
    public func dequantize(_ bytes: [UInt8]) -> [Float] {
        let t = traits
        var out = [Float](repeating: 0, count: bytes.count / t.typeSize * t.blockSize)
        bytes.withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { dequantize(raw, into: $0) } }
        return out
    }
}
