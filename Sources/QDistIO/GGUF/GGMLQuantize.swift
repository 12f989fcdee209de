/// Encoding of Float32 rows into ggml tensor types, byte-identical to llama.cpp.
///
/// The entry point mirrors ggml's `ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row,
/// imatrix)`: without an importance vector every type runs its `quantize_row_*_ref` encoder;
/// with one, the types whose `quantize_*` reads it (Q4_0…Q5_1, Q2_K…Q6_K) run their per-row
/// `quantize_row_*_impl` instead, and the rest (Q8_0, TQ1_0, TQ2_0, F32, F16, BF16) ignore it,
/// as ggml does. Same bytes as llama.cpp means a qdist-written GGUF loads and scores exactly
/// as one written by `llama-quantize` (Tests/QDistIOTests/GGMLQuantizeTests.swift holds
/// llama.cpp's own output as the fixture).
///
/// The families live in GGMLQuantizeLegacy.swift, GGMLQuantizeK.swift (Q2_K, Q3_K, Q6_K),
/// GGMLQuantizeK45.swift (Q4_K, Q5_K), GGMLQuantizeTernary.swift and GGMLQuantizeFloat.swift;
/// ggml's scale searches (`make_q*_quants`) are in GGMLQuantizeSearch.swift.
///
/// Every function here is pure over a row range: rows never share blocks, so callers may split
/// a matrix into row chunks and encode them concurrently, each into its own slice of the output.
public enum GGMLQuantize {
    /// `rows` (row-major, `rowLength` values per row) encoded as `type`, one row after another
    /// as a GGUF tensor stores them. `importance` is llama.cpp's imatrix vector for this tensor
    /// (one weight per column, `rowLength` of them) or nil.
    ///
    /// Throws `GGMLQuantizeError` when `type` has no encoder, `rowLength` is not a positive
    /// multiple of the block size, `rows` is not a whole number of rows, or `importance` has the
    /// wrong length.
    public static func quantize(_ type: GGMLType, rows: UnsafeBufferPointer<Float>, rowLength: Int,
                                importance: [Float]?) throws -> [UInt8] {
        let rowBytes = try validate(type, valueCount: rows.count, rowLength: rowLength, importanceCount: importance?.count)
        let total = rows.count / rowLength * rowBytes
        return try [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            if let importance {
                try importance.withUnsafeBufferPointer {
                    try quantize(type, rows: rows, rowLength: rowLength, importance: $0, into: raw)
                }
            } else {
                try quantize(type, rows: rows, rowLength: rowLength, importance: nil, into: raw)
            }
            initialized = total
        }
    }

    /// Array convenience for `quantize(_:rows:rowLength:importance:)`.
    public static func quantize(_ type: GGMLType, _ values: [Float], rowLength: Int, importance: [Float]? = nil) throws -> [UInt8] {
        try values.withUnsafeBufferPointer { try quantize(type, rows: $0, rowLength: rowLength, importance: importance) }
    }

    /// Encodes `rows` into `destination`, which must hold exactly `rows.count / rowLength`
    /// encoded rows (`type.byteCount(elements: rowLength)` bytes each). Every byte of it is
    /// written. Allocates only one small scratch per call, so a parallel caller hands each
    /// worker a row range and the matching slice of the output.
    public static func quantize(_ type: GGMLType, rows: UnsafeBufferPointer<Float>, rowLength: Int,
                                importance: UnsafeBufferPointer<Float>?,
                                into destination: UnsafeMutableRawBufferPointer) throws {
        let rowBytes = try validate(type, valueCount: rows.count, rowLength: rowLength, importanceCount: importance?.count)
        let rowCount = rows.count / rowLength
        guard destination.count == rowCount * rowBytes else {
            throw GGMLQuantizeError.destinationSize(expected: rowCount * rowBytes, actual: destination.count)
        }
        guard rowCount > 0, let source = rows.baseAddress, let output = destination.baseAddress,
              let encoder = type.traits.quantize else { return }
        let scratch = GGMLQuantizeScratch()
        for r in 0..<rowCount {
            let row = source + r * rowLength, out = output + r * rowBytes
            if let weighted = encoder.weighted, let weights = importance?.baseAddress {
                weighted(row, rowLength, weights, out, scratch)
            } else {
                encoder.reference(row, rowLength, out, scratch)
            }
        }
    }

    /// Bytes of one encoded row, after the same checks `quantize` makes.
    static func validate(_ type: GGMLType, valueCount: Int, rowLength: Int, importanceCount: Int?) throws -> Int {
        let traits = type.traits
        guard traits.quantize != nil else { throw GGMLQuantizeError.noEncoder(type) }
        guard rowLength > 0, rowLength % traits.blockSize == 0 else {
            throw GGMLQuantizeError.rowLength(type, rowLength: rowLength, blockSize: traits.blockSize)
        }
        guard valueCount % rowLength == 0 else { throw GGMLQuantizeError.valueCount(valueCount, rowLength: rowLength) }
        if let importanceCount, importanceCount != rowLength {
            throw GGMLQuantizeError.importanceLength(importanceCount, rowLength: rowLength)
        }
        return rowLength / traits.blockSize * traits.typeSize
    }
}

/// How ggml writes one type (the `quantize` column of `GGMLType.traits`): its reference encoder
/// and, where ggml's `quantize_<type>` reads an importance vector, the weighted one.
public struct GGMLBlockEncoder: Sendable {
    /// ggml `quantize_row_<type>_ref` over one row: `(row, rowLength, destination, scratch)`.
    typealias Reference = @Sendable (UnsafePointer<Float>, Int, UnsafeMutableRawPointer, GGMLQuantizeScratch) -> Void
    /// ggml `quantize_row_<type>_impl` over one row: `(row, rowLength, importance, destination, scratch)`.
    typealias Weighted = @Sendable (UnsafePointer<Float>, Int, UnsafePointer<Float>, UnsafeMutableRawPointer, GGMLQuantizeScratch) -> Void

    let reference: Reference
    let weighted: Weighted?

    init(_ reference: @escaping Reference, weighted: Weighted? = nil) {
        self.reference = reference
        self.weighted = weighted
    }

    /// True when an importance vector changes the output; false for the types whose ggml
    /// encoder ignores it (Q8_0, TQ1_0, TQ2_0 and the float types).
    public var usesImportance: Bool { weighted != nil }
}

extension GGMLType {
    /// The types qdist can write, in id order.
    public static let quantizable: [GGMLType] = allCases.filter(\.canQuantize)

    /// True when `traits.quantize` exists: F32, F16, BF16, Q4_0…Q8_0, Q2_K…Q6_K, TQ1_0, TQ2_0.
    /// The IQ* types need ggml's lattice searches and are not written (yet).
    public var canQuantize: Bool { traits.quantize != nil }
}

/// Why `GGMLQuantize.quantize` refused its input.
public enum GGMLQuantizeError: Error, Equatable, CustomStringConvertible {
    /// The type has no encoder (IQ*, Q8_1, Q8_K, the integer types, F64).
    case noEncoder(GGMLType)
    /// Rows must be a positive whole number of blocks: ggml never lets a block straddle rows.
    case rowLength(GGMLType, rowLength: Int, blockSize: Int)
    /// The value count is not a whole number of rows.
    case valueCount(Int, rowLength: Int)
    /// An importance vector has one weight per column.
    case importanceLength(Int, rowLength: Int)
    /// The output buffer does not match the encoded size.
    case destinationSize(expected: Int, actual: Int)

    public var description: String {
        switch self {
        case .noEncoder(let type):
            let names = GGMLType.quantizable.map(\.traits.name).joined(separator: ", ")
            return "cannot quantize to \(type.traits.name): qdist encodes \(names)"
        case .rowLength(let type, let rowLength, let blockSize):
            return "\(type.traits.name) encodes rows in blocks of \(blockSize) values; a row of \(rowLength) is not a positive multiple (keep this tensor in F16/F32 or pick a type with smaller blocks)"
        case .valueCount(let count, let rowLength):
            return "\(count) values are not a whole number of rows of \(rowLength)"
        case .importanceLength(let count, let rowLength):
            return "the importance vector has \(count) entries but rows have \(rowLength) columns (an imatrix entry is per input column of this tensor)"
        case .destinationSize(let expected, let actual):
            return "the output buffer holds \(actual) bytes; the encoded rows need \(expected)"
        }
    }
}

/// Per-call working memory of the encoders: the C functions' stack arrays (`L[QK_K]`,
/// `Laux`, `weights`, `scales`, `mins`, `sw`, `Ls`, `Lm`), allocated once per call and reused
/// for every block so the hot loops never allocate. One per thread; never shared.
final class GGMLQuantizeScratch {
    /// `uint8_t L[QK_K]` (unsigned levels) and `int8_t L[QK_K]` (signed levels).
    let levels: UnsafeMutablePointer<UInt8>
    let signedLevels: UnsafeMutablePointer<Int8>
    /// `Laux[32]`, a trial's levels before they are accepted (unsigned and signed).
    let trialLevels: UnsafeMutablePointer<UInt8>
    let signedTrialLevels: UnsafeMutablePointer<Int8>
    /// Per-element weights of one sub-block (≤ 32).
    let weights: UnsafeMutablePointer<Float>
    /// Per-sub-block scales, mins and weight sums (≤ 16 sub-blocks).
    let scales: UnsafeMutablePointer<Float>
    let mins: UnsafeMutablePointer<Float>
    let sumWeights: UnsafeMutablePointer<Float>
    /// The sub-block scales and mins quantized (`Ls`, `Lm`), unsigned and signed.
    let scaleLevels: UnsafeMutablePointer<UInt8>
    let minLevels: UnsafeMutablePointer<UInt8>
    let signedScaleLevels: UnsafeMutablePointer<Int8>

    init() {
        let k = GGMLType.superBlockSize
        levels = .allocate(capacity: k)
        signedLevels = .allocate(capacity: k)
        trialLevels = .allocate(capacity: 32)
        signedTrialLevels = .allocate(capacity: 32)
        weights = .allocate(capacity: 32)
        scales = .allocate(capacity: 16)
        mins = .allocate(capacity: 16)
        sumWeights = .allocate(capacity: 16)
        scaleLevels = .allocate(capacity: 16)
        minLevels = .allocate(capacity: 16)
        signedScaleLevels = .allocate(capacity: 16)
    }

    deinit {
        for p in [levels, trialLevels, scaleLevels, minLevels] { p.deallocate() }
        for p in [signedLevels, signedTrialLevels, signedScaleLevels] { p.deallocate() }
        for p in [weights, scales, mins, sumWeights] { p.deallocate() }
    }
}
