/// The key–value metadata of a GGUF file, in file order, with lookup by key.
///
/// Order is kept because GGUF has no canonical key order and a writer that re-emits a file
/// should reproduce it; lookup is a dictionary so `metadata["llama.block_count"]` is O(1).
/// Keys are unique (the reader rejects a duplicate, as llama.cpp does). The typed accessors
/// return nil both for an absent key and for a value of another type; callers that need to
/// tell the two apart use the subscript and `GGUFValue.type`.
public struct GGUFMetadata: Sendable, Equatable {
    /// Every entry in file order.
    public private(set) var entries: [(key: String, value: GGUFValue)]
    private var positions: [String: Int]

    /// Empty metadata.
    public init() {
        entries = []
        positions = [:]
    }

    /// Metadata from entries in order; a later duplicate key replaces the earlier value.
    public init(_ entries: [(key: String, value: GGUFValue)]) {
        self.init()
        for e in entries { self[e.key] = e.value }
    }

    public static func == (a: GGUFMetadata, b: GGUFMetadata) -> Bool {
        a.entries.count == b.entries.count && zip(a.entries, b.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    /// Number of entries.
    public var count: Int { entries.count }
    /// Keys in file order.
    public var keys: [String] { entries.map(\.key) }

    /// True when `key` is present.
    public func contains(_ key: String) -> Bool { positions[key] != nil }

    /// The value stored under `key`; setting appends a new key or replaces in place.
    public subscript(key: String) -> GGUFValue? {
        get { positions[key].map { entries[$0].value } }
        set {
            if let i = positions[key] {
                if let newValue {
                    entries[i].value = newValue
                } else {
                    entries.remove(at: i)
                    positions = [:]
                    for (j, e) in entries.enumerated() { positions[e.key] = j }
                }
            } else if let newValue {
                positions[key] = entries.count
                entries.append((key: key, value: newValue))
            }
        }
    }

    /// The string under `key`.
    public func string(_ key: String) -> String? { self[key]?.stringValue }
    /// The integer (of any integer type) under `key`.
    public func int(_ key: String) -> Int? { self[key]?.intValue }
    /// The number under `key` as Double (FLOAT32 converts exactly).
    public func double(_ key: String) -> Double? { self[key]?.doubleValue }
    /// The number under `key` as Float.
    public func float(_ key: String) -> Float? { self[key]?.floatValue }
    /// The flag under `key`.
    public func bool(_ key: String) -> Bool? { self[key]?.boolValue }
    /// The array of strings under `key`.
    public func stringArray(_ key: String) -> [String]? { self[key]?.stringArray }
    /// The array of integers under `key`.
    public func intArray(_ key: String) -> [Int]? { self[key]?.intArray }
    /// The array of numbers under `key`, as Float.
    public func floatArray(_ key: String) -> [Float]? { self[key]?.floatArray }

    /// `general.architecture`, e.g. "llama"; the prefix of the model's hyper-parameter keys.
    public var architecture: String? { string("general.architecture") }

    /// `general.alignment` when present (the reader validates it), else GGUF's default 32.
    public var alignment: Int { int("general.alignment") ?? GGUFHeader.defaultAlignment }
}
