/// Typed, strict access to the keys of a JSON object, with errors that name the file and key.
///
/// Hugging Face JSON files (`config.json`, `quantization_config`, tokenizer configs) are read
/// through this so every problem reads like `config.json: key "rope_scaling.factor": expected a
/// number, found a string ("8")` or `config.json: missing required key "hidden_size"`, never a
/// Swift `DecodingError` dump. Keys that are not asked for are ignored (HF configs carry many);
/// a key that holds `null` counts as absent.
public struct JSONFields: Sendable {
    /// The file named in errors.
    public let path: String
    /// Dotted path of this object inside the file (`""` at the top level).
    public let keyPath: String
    /// What the errors are filed under.
    public let kind: QDistIOError.Kind
    private let values: [String: JSONValue]

    /// Wraps `value`, which must be an object (else an error naming `keyPath`, or the file).
    public init(_ value: JSONValue, path: String, keyPath: String = "", kind: QDistIOError.Kind = .config) throws(QDistIOError) {
        self.path = path
        self.keyPath = keyPath
        self.kind = kind
        guard let pairs = value.objectValue else {
            let what = keyPath.isEmpty ? "the file" : "key \(JSONSerializer.quoted(keyPath))"
            throw QDistIOError(kind, path: path, "\(what): expected a JSON object, found \(value.typeName)")
        }
        var values: [String: JSONValue] = [:]
        for (k, v) in pairs { values[k] = v }
        self.values = values
    }

    /// The raw value of `key`, `nil` when absent or `null`.
    public func value(_ key: String) -> JSONValue? {
        guard let v = values[key], !v.isNull else { return nil }
        return v
    }

    /// True when `key` is present with a non-null value.
    public func contains(_ key: String) -> Bool { value(key) != nil }

    private func fullKey(_ key: String) -> String { keyPath.isEmpty ? key : "\(keyPath).\(key)" }

    /// An error about `key` (the message follows `key "a.b": `).
    public func error(_ key: String, _ message: String) -> QDistIOError {
        QDistIOError(kind, path: path, "key \(JSONSerializer.quoted(fullKey(key))): \(message)")
    }

    private func mismatch(_ key: String, expected: String, found v: JSONValue) -> QDistIOError {
        let text = v.compactText
        let shown = text.count <= 40 ? " (\(text))" : ""
        return error(key, "expected \(expected), found \(v.typeName)\(shown)")
    }

    private func required<T>(_ key: String, _ convert: (String) throws(QDistIOError) -> T?) throws(QDistIOError) -> T {
        guard let v = try convert(key) else {
            throw QDistIOError(kind, path: path, "missing required key \(JSONSerializer.quoted(fullKey(key)))")
        }
        return v
    }

    /// An integer (a JSON number with no fraction, exact), or `nil` when absent.
    public func optionalInt(_ key: String) throws(QDistIOError) -> Int? {
        guard let v = value(key) else { return nil }
        guard let i = v.intValue else { throw mismatch(key, expected: "an integer", found: v) }
        return i
    }

    /// A required integer.
    public func int(_ key: String) throws(QDistIOError) -> Int { try required(key, optionalInt) }

    /// A number, or `nil` when absent.
    public func optionalDouble(_ key: String) throws(QDistIOError) -> Double? {
        guard let v = value(key) else { return nil }
        guard let d = v.doubleValue else { throw mismatch(key, expected: "a number", found: v) }
        return d
    }

    /// A required number.
    public func double(_ key: String) throws(QDistIOError) -> Double { try required(key, optionalDouble) }

    /// A string, or `nil` when absent.
    public func optionalString(_ key: String) throws(QDistIOError) -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v.stringValue else { throw mismatch(key, expected: "a string", found: v) }
        return s
    }

    /// A required string.
    public func string(_ key: String) throws(QDistIOError) -> String { try required(key, optionalString) }

    /// A boolean, or `nil` when absent.
    public func optionalBool(_ key: String) throws(QDistIOError) -> Bool? {
        guard let v = value(key) else { return nil }
        guard let b = v.boolValue else { throw mismatch(key, expected: "a boolean", found: v) }
        return b
    }

    /// An array of strings, or `nil` when absent.
    public func optionalStringArray(_ key: String) throws(QDistIOError) -> [String]? {
        guard let v = value(key) else { return nil }
        guard let items = v.arrayValue else { throw mismatch(key, expected: "an array of strings", found: v) }
        var out: [String] = []
        for item in items {
            guard let s = item.stringValue else { throw mismatch(key, expected: "an array of strings", found: v) }
            out.append(s)
        }
        return out
    }

    /// An integer or an array of integers (as `eos_token_id` may be), or `nil` when absent.
    public func optionalIntOrIntArray(_ key: String) throws(QDistIOError) -> [Int]? {
        guard let v = value(key) else { return nil }
        if let i = v.intValue { return [i] }
        guard let items = v.arrayValue else { throw mismatch(key, expected: "an integer or an array of integers", found: v) }
        var out: [Int] = []
        for item in items {
            guard let i = item.intValue else { throw mismatch(key, expected: "an integer or an array of integers", found: v) }
            out.append(i)
        }
        return out
    }

    /// A nested object, or `nil` when absent.
    public func optionalObject(_ key: String) throws(QDistIOError) -> JSONFields? {
        guard let v = value(key) else { return nil }
        return try JSONFields(v, path: path, keyPath: fullKey(key), kind: kind)
    }
}
