import Foundation
import QDistIO
import QDistTestSupport

/// llama.cpp's quantizer output on fixed inputs, as Tests/Reference/ggml_quantize_vectors.py
/// wrote it to Fixtures/ggml_quantize_vectors.vectors (the layout is documented in that script).
struct GGMLQuantizeFixture {
    /// One input matrix with its imatrix vectors and ggml's encodings of it.
    struct Matrix {
        let name: String
        let rows: Int, rowLength: Int
        let values: [Float]
        /// `importance[k - 1]` is the vector an entry with `importance == k` was encoded with.
        let importance: [[Float]]
        let entries: [Entry]
    }

    /// `ggml_quantize_chunk(type, values, …, imatrix)` for all rows of a matrix.
    struct Entry {
        let type: GGMLType
        /// 0: no imatrix; k: the matrix's `importance[k - 1]`.
        let importance: Int
        let bytes: [UInt8]
    }

    let source: String
    let matrices: [Matrix]

    /// The committed fixture, or the file named by $QDIST_GGML_QUANTIZE_VECTORS (a larger set
    /// from `ggml_quantize_vectors.py --stress`, for a one-off wider check).
    static let url: URL = override.map { URL(fileURLWithPath: $0) }
        ?? QdistProcess.repositoryRoot.appendingPathComponent("Tests/QDistIOTests/Fixtures/ggml_quantize_vectors.vectors")

    /// True when the tests read the committed fixture (whose exact contents they may assert).
    static var isCommitted: Bool { override == nil }

    private static let override: String? = ProcessInfo.processInfo.environment["QDIST_GGML_QUANTIZE_VECTORS"].flatMap { $0.isEmpty ? nil : $0 }

    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    /// Reads and checks the committed fixture; a malformed file names the byte offset.
    static func load() throws -> GGMLQuantizeFixture {
        var reader = Reader(bytes: [UInt8](try Data(contentsOf: url)))
        guard try reader.bytes(4) == Array("QGQV".utf8) else {
            throw Malformed(description: "\(url.path): not a QGQV fixture; regenerate it with Tests/Reference/ggml_quantize_vectors.py")
        }
        let version = try reader.u32()
        guard version == 1 else { throw Malformed(description: "\(url.path): fixture version \(version), this test reads 1") }
        let source = try reader.string()
        var matrices: [Matrix] = []
        for _ in 0..<(try reader.u32()) {
            let name = try reader.string()
            let rows = try reader.u32(), rowLength = try reader.u32()
            let values = try reader.floats(rows * rowLength)
            let importance = try (0..<(try reader.u32())).map { _ in try reader.floats(rowLength) }
            let entries = try (0..<(try reader.u32())).map { _ -> Entry in
                let offset = reader.offset
                let id = try reader.u32(), k = try reader.u32(), count = try reader.u32()
                guard let type = GGMLType(rawValue: UInt32(id)) else {
                    throw Malformed(description: "\(url.path) at byte \(offset): unknown ggml type \(id)")
                }
                return Entry(type: type, importance: k, bytes: try reader.bytes(count))
            }
            matrices.append(Matrix(name: name, rows: rows, rowLength: rowLength, values: values, importance: importance, entries: entries))
        }
        guard reader.offset == reader.data.count else {
            throw Malformed(description: "\(url.path): \(reader.data.count - reader.offset) trailing bytes")
        }
        return GGMLQuantizeFixture(source: source, matrices: matrices)
    }

    /// A little-endian cursor that reports where a short read happened.
    private struct Reader {
        let data: [UInt8]
        var offset = 0

        init(bytes: [UInt8]) { data = bytes }

        mutating func bytes(_ n: Int) throws -> [UInt8] {
            guard n >= 0, offset + n <= data.count else {
                throw Malformed(description: "\(GGMLQuantizeFixture.url.path): needs \(n) bytes at offset \(offset), file has \(data.count)")
            }
            defer { offset += n }
            return Array(data[offset..<offset + n])
        }

        mutating func u32() throws -> Int {
            let b = try bytes(4)
            return Int(UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24)
        }

        mutating func string() throws -> String { String(decoding: try bytes(try u32()), as: UTF8.self) }

        mutating func floats(_ n: Int) throws -> [Float] {
            let b = try bytes(4 * n)
            return (0..<n).map { i in
                Float(bitPattern: UInt32(b[4 * i]) | UInt32(b[4 * i + 1]) << 8 | UInt32(b[4 * i + 2]) << 16 | UInt32(b[4 * i + 3]) << 24)
            }
        }
    }
}
