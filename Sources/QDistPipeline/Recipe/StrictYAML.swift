import Foundation
import Yams

/// Decodes YAML into strict `Decodable` types and turns every failure into one line that names
/// the file, the line and the key: `recipe.yaml:12: recipe.GPTQModifier.blok_size: unknown key
/// (expected one of: targets, ignore, scheme, …)`.
///
/// Strictness lives in the types: their `init(from:)` calls `rejectUnknownKeys`, so a typo is an
/// error instead of a silently ignored setting — the failure mode of loosely typed configs.
public enum StrictYAML {
    /// A recipe that could not be decoded; `description` is the one-line message.
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// Deeper nesting is refused before parsing: the YAML parser recurses once per level, and
    /// a few thousand levels overflow the stack. Real recipes nest about six deep.
    public static let maximumDepth = 64

    public static func decode<T: Decodable>(_ type: T.Type, from text: String, path: String) throws -> T {
        if let (line, depth) = firstTooDeep(text) {
            throw Error(description: "\(path):\(line): nested \(depth) levels deep; qdist reads at most \(maximumDepth)")
        }
        let node: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else {
                throw Error(description: "\(path): empty recipe")
            }
            node = composed
        } catch let error as Error {
            throw error
        } catch let error as YamlError {
            throw Error(description: "\(path): not valid YAML: \(oneLine(error))")
        }
        if let duplicate = firstDuplicateKey(node) {
            throw Error(description: "\(path):\(duplicate.line): duplicate key '\(duplicate.key)' (a later value would silently replace the first)")
        }
        do {
            return try YAMLDecoder().decode(T.self, from: text)
        } catch let error as DecodingError {
            throw Error(description: describe(error, node: node, path: path))
        }
    }

    public static func decode<T: Decodable>(_ type: T.Type, contentsOf url: URL) throws -> T {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw Error(description: "\(url.path): cannot read the recipe (no such file?)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw Error(description: "\(url.path): not UTF-8 text")
        }
        return try decode(T.self, from: text, path: url.path)
    }

    /// The first line whose nesting exceeds `maximumDepth`: flow brackets (`[`, `{`) open
    /// outside quotes and comments, or block structure (indentation plus `- ` markers, each
    /// level at least one column), with that depth.
    static func firstTooDeep(_ text: String) -> (line: Int, depth: Int)? {
        var flow = 0
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var block = 0, atStart = true, quote: Character? = nil
            var previous: Character = " "
            for ch in line {
                if let q = quote {
                    if ch == q { quote = nil }
                } else if ch == "#" && (previous == " " || atStart) {
                    break
                } else if ch == "\"" || ch == "'" {
                    quote = ch
                    atStart = false
                } else if ch == "[" || ch == "{" {
                    flow += 1
                    atStart = false
                } else if ch == "]" || ch == "}" {
                    flow = max(0, flow - 1)
                    atStart = false
                } else if atStart && (ch == " " || ch == "-") {
                    if ch == " " && previous != "-" { block += 1 } else if ch == "-" { block += 1 }
                } else {
                    atStart = false
                }
                previous = ch
                if flow > maximumDepth { return (index + 1, flow) }
            }
            // Indentation counts columns: two spaces per level is the convention.
            if block / 2 > maximumDepth { return (index + 1, block / 2) }
        }
        return nil
    }

    /// The first mapping key that appears twice in its mapping, with its line (1-based).
    static func firstDuplicateKey(_ node: Node, depth: Int = 0) -> (key: String, line: Int)? {
        guard depth <= maximumDepth + 1 else { return nil }
        if let mapping = node.mapping {
            var seen = Set<String>()
            for (key, value) in mapping {
                if let k = key.string, !seen.insert(k).inserted { return (k, key.mark.map { $0.line } ?? 0) }
                if let d = firstDuplicateKey(value, depth: depth + 1) { return d }
            }
        } else if let sequence = node.sequence {
            for item in sequence { if let d = firstDuplicateKey(item, depth: depth + 1) { return d } }
        }
        return nil
    }

    static func oneLine(_ error: Swift.Error) -> String {
        "\(error)".split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    }

    /// `file:line: key.path: problem`, with the line of the deepest node the path reaches.
    static func describe(_ error: DecodingError, node: Node, path: String) -> String {
        let (codingPath, problem): ([CodingKey], String)
        switch error {
        case .keyNotFound(let key, let c):
            (codingPath, problem) = (c.codingPath, "missing required key '\(key.stringValue)'")
        case .typeMismatch(let type, let c):
            (codingPath, problem) = (c.codingPath, "expected \(typeName(type))")
        case .valueNotFound(let type, let c):
            (codingPath, problem) = (c.codingPath, "expected \(typeName(type)), found nothing")
        case .dataCorrupted(let c):
            (codingPath, problem) = (c.codingPath, c.debugDescription)
        @unknown default:
            (codingPath, problem) = ([], oneLine(error))
        }
        let keys = codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
        let dotted = keys.reduce("") { $0.isEmpty ? $1 : ($1.hasPrefix("[") ? $0 + $1 : $0 + "." + $1) }
        let line = self.node(at: codingPath, in: node)?.mark?.line
        return "\(path)\(line.map { ":\($0)" } ?? ""): \(dotted.isEmpty ? "" : dotted + ": ")\(problem)"
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is Bool.Type: return "true or false"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "a list" }
            if name.hasPrefix("Dictionary") { return "a mapping" }
            return name
        }
    }

    /// The node a coding path leads to, as deep as it exists.
    static func node(at path: [CodingKey], in root: Node) -> Node? {
        var current = root
        for key in path {
            if let index = key.intValue, let seq = current.sequence, index < seq.count {
                current = seq[index]
            } else if let map = current.mapping, let pair = map.first(where: { $0.key.string == key.stringValue }) {
                current = pair.value
            } else {
                return current  // a missing key: the mapping that lacks it
            }
        }
        return current
    }
}

/// A coding key for any string, to list the keys a mapping really has.
struct AnyCodingKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

extension Decoder {
    /// Throws `dataCorrupted` at the first key of this mapping that `K` does not declare.
    func rejectUnknownKeys<K: CodingKey & CaseIterable>(_: K.Type) throws {
        let container = try self.container(keyedBy: AnyCodingKey.self)
        let known = Set(K.allCases.map(\.stringValue))
        for key in container.allKeys where !known.contains(key.stringValue) {
            throw DecodingError.dataCorrupted(.init(
                codingPath: codingPath + [key],
                debugDescription: "unknown key (expected one of: \(K.allCases.map(\.stringValue).joined(separator: ", ")))"))
        }
    }
}
