import Foundation
import QDistIO

/// Byte-level comparison of two written checkpoint folders, for the "same output for any
/// number of ranks and threads" tests: no tolerance, dtype and shape included.
public enum CheckpointComparison {
    /// Names of the tensors whose bytes, dtype or shape differ, over the union of both folders
    /// (a tensor present in one only counts as differing).
    public static func differingTensors(_ one: URL, _ other: URL) throws -> [String] {
        let a = try CheckpointFolder(url: one), b = try CheckpointFolder(url: other)
        let names = Set(a.tensorNames).union(b.tensorNames)
        return try names.sorted().filter { name in
            guard a.tensorNames.contains(name), b.tensorNames.contains(name) else { return true }
            return try a.storedTensor(name) != b.storedTensor(name)
        }
    }

    /// How many tensors the folder holds.
    public static func tensorCount(_ folder: URL) throws -> Int { try CheckpointFolder(url: folder).tensorNames.count }
}
