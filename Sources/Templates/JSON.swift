import Foundation
import JSON

// MARK: - Parsing (the JSON module's parser)

/// A JSON syntax error with the byte offset where parsing stopped (`JSON.JSONError`).
public typealias JSONError = JSON.JSONError

extension Value {
    /// Parses JSON into a value, keeping the key order of objects (`JSONSerialization`
    /// does not). Integers without fraction or exponent become `.int` (as Python's
    /// `json.loads`), other numbers `.double`; a repeated key keeps its first place and
    /// its last value, as a Python dict does. - Throws: `JSONError`.
    public init(json: Data) throws {
        self.init(try JSONValue.parse([UInt8](json)))
    }

    /// Parses JSON text; see `init(json:)`.
    public init(jsonString: String) throws {
        self.init(try JSONValue.parse(jsonString))
    }

    /// A parsed JSON value as a template value (objects as Python dicts).
    public init(_ json: JSONValue) {
        switch json {
        case .null: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let items): self = .array(items.map(Value.init))
        case .object(let members):
            var object = Object()
            for (key, value) in members { object[key] = Value(value) }
            self = .object(object)
        }
    }
}

// MARK: - Writing (Python's json.dumps)

/// `json.dumps(x, ensure_ascii=…, indent=…, separators=…, sort_keys=…)`, byte for byte.
struct JSONWriter {
    var ensureASCII = false
    /// nil: one line; otherwise the text repeated once per level.
    var indent: String? = nil
    var itemSeparator: String
    var keySeparator: String
    var sortKeys = false

    init(ensureASCII: Bool = false, indent: String? = nil, separators: (String, String)? = nil, sortKeys: Bool = false) {
        self.ensureASCII = ensureASCII
        self.indent = indent
        // Python: (', ', ': ') by default, (',', ': ') when indenting.
        let defaults = indent == nil ? (", ", ": ") : (",", ": ")
        (itemSeparator, keySeparator) = separators ?? defaults
        self.sortKeys = sortKeys
    }

    func dumps(_ value: Value) throws -> String {
        var out = ""
        try write(value, level: 0, into: &out, limit: TemplateLimits.current.maxStringBytes)
        return out
    }

    private func write(_ value: Value, level: Int, into out: inout String, limit: Int) throws {
        if out.utf8.count > limit { throw Limit.stringTooLong(nil) }
        let maxDepth = TemplateLimits.current.maxRenderDepth
        if level > maxDepth { throw PyError.limit("values nested deeper than \(maxDepth) (TemplateLimits.maxRenderDepth)") }
        switch value {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isNaN { out += "NaN" } else if d.isInfinite { out += d < 0 ? "-Infinity" : "Infinity" } else { out += d.description }
        case .string(let s), .markup(let s): out += quote(s)
        case .array(let items), .tuple(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            let (open, separator, close) = try layout(level)
            out += open
            for (k, item) in items.enumerated() {
                if k > 0 { out += separator }
                try write(item, level: level + 1, into: &out, limit: limit)
            }
            out += close + "]"
        case .object(let object):
            if object.isEmpty { out += "{}"; return }
            out += "{"
            let (open, separator, close) = try layout(level)
            out += open
            var pairs = object.pairs
            if sortKeys { try pairs.sort { try Operators.less($0.key, $1.key) } }
            for (k, pair) in pairs.enumerated() {
                if k > 0 { out += separator }
                out += quote(try keyString(pair.key)) + keySeparator
                try write(pair.value, level: level + 1, into: &out, limit: limit)
            }
            out += close + "}"
        case .undefined, .namespace, .function, .iterable:
            let name: String
            switch value {
            case .namespace: name = "TemplateNamespace"
            case .function: name = value.pythonTypeName
            case .iterable(let i): name = i.typeName
            default: name = "Undefined"
            }
            throw PyError.type("Object of type \(name) is not JSON serializable")
        }
    }

    /// Python converts int, float, bool and None keys to strings.
    private func keyString(_ key: Value) throws -> String {
        switch key {
        case .string(let s), .markup(let s): return s
        case .int(let i): return String(i)
        case .bool(let b): return b ? "true" : "false"
        case .none: return "null"
        case .double(let d):
            if d.isNaN { return "NaN" }
            if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
            return d.description
        default: throw PyError.type("keys must be str, int, float, bool or None, not \(key.pythonTypeName)")
        }
    }

    private func layout(_ level: Int) throws -> (String, String, String) {
        guard let indent else { return ("", itemSeparator, "") }
        try Limit.repeated(indent.utf8.count, level + 1)
        let inner = "\n" + String(repeating: indent, count: level + 1)
        let outer = "\n" + String(repeating: indent, count: level)
        return (inner, itemSeparator + inner, outer)
    }

    func quote(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 {
                    out += PyString.hex("\\u", c.value, 4)
                } else if ensureASCII && c.value > 0x7E {
                    if c.value > 0xFFFF {
                        let v = c.value - 0x10000
                        out += PyString.hex("\\u", 0xD800 + (v >> 10), 4) + PyString.hex("\\u", 0xDC00 + (v & 0x3FF), 4)
                    } else {
                        out += PyString.hex("\\u", c.value, 4)
                    }
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }
}
