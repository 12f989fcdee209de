import QDistTensor

/// A flat little-endian byte encoding of named float32 and 4-bit tensors, so a frozen QLoRA
/// block can travel as one `[UInt8]` (ZeRO-3 shards these bytes and all-gathers them) and be
/// rebuilt exactly on the other side.
///
/// Layout: magic `QD4B`, `u32` version (1), `u32` entry count, then per entry `u8` kind
/// (0 float32 tensor, 1 four-bit tensor), `u16` name length + UTF-8 name, `u8` rank + `u64`
/// dims, and the data. A float32 tensor is its values. A four-bit tensor is `u8` quant type
/// (0 nf4, 1 fp4), `u32` block size, `u8` absmax kind (0 float32, 1 double-quantized); then
/// the packed codes; then float32 absmaxes, or `u32` second-level block size, `f32` offset,
/// the 8-bit codes and the second-level float32 absmaxes. Sizes follow from shape and block
/// sizes, so a truncated or padded payload is caught, with the byte offset in the message.
public enum FourBitPayload {
    /// One named tensor in a payload.
    public enum Entry: Sendable, Equatable {
        case float32(Tensor)
        case fourBit(FourBitTensor)
    }

    static let magic: [UInt8] = Array("QD4B".utf8)
    static let version: UInt32 = 1

    /// Encodes `entries` in order.
    public static func encode(_ entries: [(name: String, entry: Entry)]) -> [UInt8] {
        var w = ByteWriter()
        w.bytes(magic)
        w.u32(version)
        w.u32(UInt32(entries.count))
        for (name, entry) in entries {
            switch entry {
            case .float32(let t):
                w.u8(0); w.name(name); w.shape(t.shape)
                w.floats(t.scalars)
            case .fourBit(let q):
                w.u8(1); w.name(name); w.shape(q.shape)
                w.u8(q.quantType == .nf4 ? 0 : 1)
                w.u32(UInt32(q.blockSize))
                switch q.absmax {
                case .float32(let a):
                    w.u8(0); w.bytes(q.packed); w.floats(a)
                case .doubleQuantized(let d):
                    w.u8(1); w.bytes(q.packed)
                    w.u32(UInt32(d.blockSize)); w.floats([d.offset]); w.bytes(d.codes); w.floats(d.secondLevelAbsmax)
                }
            }
        }
        return w.out
    }

    /// Decodes a payload back into its entries; `subject` names it in errors.
    public static func decode(_ bytes: [UInt8], subject: String = "4-bit payload") throws(QuantizedFormatError) -> [(name: String, entry: Entry)] {
        var r = ByteReader(bytes: bytes, subject: subject)
        guard try r.bytes(4) == magic else { throw QuantizedFormatError(subject, "not a qdist 4-bit payload (magic is not QD4B)") }
        let v = try r.u32()
        guard v == version else { throw QuantizedFormatError(subject, "payload version \(v), this qdist reads version \(version)") }
        let count = Int(try r.u32())
        var entries: [(name: String, entry: Entry)] = []
        for _ in 0..<count {
            let kind = try r.u8()
            let name = try r.name()
            let shape = try r.shape()
            let n = shape.reduce(1, *)
            switch kind {
            case 0:
                entries.append((name, .float32(Tensor(shape: shape, scalars: try r.floats(n)))))
            case 1:
                let typeCode = try r.u8()
                guard typeCode <= 1 else { throw QuantizedFormatError(subject, "\(name): unknown 4-bit type \(typeCode) at byte \(r.offset - 1)") }
                let blockSize = Int(try r.u32())
                let absmaxKind = try r.u8()
                let packed = try r.bytes((n + 1) / 2)
                let blocks = blockSize > 0 ? (n + blockSize - 1) / blockSize : 0
                let absmax: FourBitTensor.Absmax
                switch absmaxKind {
                case 0: absmax = .float32(try r.floats(blocks))
                case 1:
                    let nested = Int(try r.u32())
                    guard nested > 0 else { throw QuantizedFormatError(subject, "\(name): second-level block size 0 at byte \(r.offset - 4)") }
                    let offset = try r.floats(1)[0]
                    let codes = try r.bytes(blocks)
                    let second = try r.floats((blocks + nested - 1) / nested)
                    absmax = .doubleQuantized(DoubleQuantizedAbsmax(codes: codes, secondLevelAbsmax: second, offset: offset, blockSize: nested))
                default:
                    throw QuantizedFormatError(subject, "\(name): unknown absmax kind \(absmaxKind) at byte \(r.offset - 1)")
                }
                entries.append((name, .fourBit(try FourBitTensor(shape: shape, quantType: typeCode == 0 ? .nf4 : .fp4, blockSize: blockSize,
                                                                  packed: packed, absmax: absmax, subject: "\(subject): \(name)"))))
            default:
                throw QuantizedFormatError(subject, "unknown entry kind \(kind) at byte \(r.offset - 1)")
            }
        }
        guard r.offset == bytes.count else {
            throw QuantizedFormatError(subject, "\(bytes.count - r.offset) bytes left over after the last entry (byte \(r.offset))")
        }
        return entries
    }
}

/// Appends little-endian fields.
struct ByteWriter {
    var out: [UInt8] = []
    mutating func u8(_ v: UInt8) { out.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    mutating func bytes(_ b: [UInt8]) { out.append(contentsOf: b) }
    mutating func floats(_ f: [Float]) {
        out.reserveCapacity(out.count + 4 * f.count)
        for x in f { u32(x.bitPattern) }
    }
    mutating func name(_ s: String) {
        let utf8 = Array(s.utf8)
        precondition(utf8.count <= Int(UInt16.max), "payload entry name longer than 65535 bytes")
        withUnsafeBytes(of: UInt16(utf8.count).littleEndian) { out.append(contentsOf: $0) }
        bytes(utf8)
    }
    mutating func shape(_ s: [Int]) {
        precondition(s.count <= 255, "tensor of rank \(s.count) in a payload")
        u8(UInt8(s.count))
        for d in s { u64(UInt64(d)) }
    }
}

/// Reads little-endian fields, failing with the byte offset when the payload ends early.
struct ByteReader {
    let bytes: [UInt8]
    let subject: String
    var offset = 0

    mutating func take(_ n: Int) throws(QuantizedFormatError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - offset else {
            throw QuantizedFormatError(subject, "truncated: needs \(n) more bytes at byte \(offset) of \(bytes.count)")
        }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }
    mutating func u8() throws(QuantizedFormatError) -> UInt8 { try take(1).first! }
    mutating func u32() throws(QuantizedFormatError) -> UInt32 {
        try take(4).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }
    mutating func u64() throws(QuantizedFormatError) -> UInt64 {
        try take(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }
    mutating func bytes(_ n: Int) throws(QuantizedFormatError) -> [UInt8] { Array(try take(n)) }
    mutating func floats(_ n: Int) throws(QuantizedFormatError) -> [Float] {
        let raw = try take(4 * n)
        var out = [Float](repeating: 0, count: n)
        raw.withUnsafeBytes { p in
            for i in 0..<n { out[i] = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        }
        return out
    }
    mutating func name() throws(QuantizedFormatError) -> String {
        let raw = try take(2)
        let length = Int(raw[raw.startIndex]) | Int(raw[raw.startIndex + 1]) << 8
        return String(decoding: try take(length), as: UTF8.self)
    }
    mutating func shape() throws(QuantizedFormatError) -> [Int] {
        let rank = Int(try u8())
        var dims: [Int] = []
        for _ in 0..<rank {
            let d = try u64()
            guard d < 1 << 40 else { throw QuantizedFormatError(subject, "dimension \(d) at byte \(offset - 8) is not plausible") }
            dims.append(Int(d))
        }
        return dims
    }
}
