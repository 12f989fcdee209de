import Foundation
import QDistIO
import QDistTensor
import QDistTestSupport
import XCTest

/// Builders shared by the QDistIO tests: hand-made safetensors bytes (valid or broken on
/// purpose), sample tensors of every dtype, and hex helpers for talking to Python.
enum Fixtures {
    /// `u64 N` + `header` + `data`; `declaredLength` overrides N (to lie about it).
    static func rawSafetensors(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
        let json = Array(header.utf8)
        var out = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: (declaredLength ?? UInt64(json.count)).littleEndian) { out.replaceSubrange(0..<8, with: $0) }
        return out + json + data
    }

    static func write(_ bytes: [UInt8], to url: URL) throws {
        try Data(bytes).write(to: url)
    }

    /// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
    static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed | 1
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state >> 24)
        }
    }

    /// One tensor of each dtype qdist supports, with random bytes (any bit pattern, NaNs
    /// included, so round trips are checked bit-exactly rather than by value).
    static func allDTypeTensors() -> [String: StoredTensor] {
        var out: [String: StoredTensor] = [:]
        for (i, dtype) in DType.allCases.enumerated() {
            let shape = [3, 2 + i % 3]
            var bytes = Self.bytes(shape.reduce(1, *) * dtype.byteSize, seed: UInt64(i + 1) * 7919)
            if dtype == .bool { bytes = bytes.map { $0 & 1 } }
            out["t.\(dtype.rawValue.lowercased())"] = StoredTensor(dtype: dtype, shape: shape, bytes: bytes)
        }
        out["scalar"] = StoredTensor(dtype: .f32, shape: [], bytes: [0, 0, 0x80, 0x3F])
        out["empty"] = StoredTensor(dtype: .f16, shape: [0, 4], bytes: [])
        return out
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = hex.utf8.makeIterator()
        while let hi = it.next(), let lo = it.next() {
            out.append(UInt8(String(decoding: [hi, lo], as: UTF8.self), radix: 16)!)
        }
        return out
    }

    /// Names of the hidden temporary files `AtomicFileWriter` would leave behind.
    static func temporaryLeftovers(in folder: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }
    }

    /// Runs the Python reference, failing the test (never skipping) when it is missing or errs.
    static func python(_ script: String, _ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let result = try QdistProcess.runPython(script, arguments: arguments)
        if result.status != 0 {
            XCTFail("python exited \(result.status):\n\(result.stderr)\n\(result.stdout)", file: file, line: line)
        }
        return result.stdout
    }
}
