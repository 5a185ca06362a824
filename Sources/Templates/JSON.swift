import Foundation

// MARK: - Parsing

extension Value {
    /// Parses JSON into a value, keeping the key order of objects (`JSONSerialization`
    /// does not). Integers without fraction or exponent become `.int` (as Python's
    /// `json.loads`), other numbers `.double`; a repeated key keeps its first place and
    /// its last value, as a Python dict does.
    public init(json: Data) throws {
        var parser = JSONParser(bytes: [UInt8](json))
        self = try parser.parseDocument()
    }

    /// Parses JSON text; see `init(json:)`.
    public init(jsonString: String) throws {
        try self.init(json: Data(jsonString.utf8))
    }
}

/// A JSON syntax error with the byte offset where parsing stopped.
public struct JSONError: Error, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public var description: String { "\(message) at byte \(offset)" }
}

private struct JSONParser {
    let bytes: [UInt8]
    var i = 0

    init(bytes: [UInt8]) {
        self.bytes = bytes
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }  // UTF-8 byte order mark
    }

    func fail(_ message: String) -> JSONError { JSONError(message: message, offset: i) }

    mutating func skipSpace() {
        while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
    }

    mutating func parseDocument() throws -> Value {
        let value = try parseValue(depth: 0)
        skipSpace()
        guard i == bytes.count else { throw fail("unexpected data after the JSON value") }
        return value
    }

    mutating func parseValue(depth: Int) throws -> Value {
        guard depth < 512 else { throw fail("JSON nested too deeply") }
        skipSpace()
        guard i < bytes.count else { throw fail("unexpected end of JSON") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1
            var object = Object()
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(object) }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try parseString()
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                object[key] = try parseValue(depth: depth + 1)
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end of JSON") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(object) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var array: [Value] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(array) }
            while true {
                array.append(try parseValue(depth: depth + 1))
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end of JSON") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(array) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .none
        default:
            return try parseNumber()
        }
    }

    mutating func literal(_ word: String) throws {
        let w = Array(word.utf8)
        guard bytes.count - i >= w.count, Array(bytes[i..<(i + w.count)]) == w else { throw fail("invalid literal") }
        i += w.count
    }

    mutating func parseNumber() throws -> Value {
        let start = i
        var isInteger = true
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.i
            while p.i < p.bytes.count, (0x30...0x39).contains(p.bytes[p.i]) { p.i += 1 }
            return p.i - s
        }
        guard digits(&self) > 0 else { throw fail("invalid JSON value") }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            guard digits(&self) > 0 else { throw fail("invalid number") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&self) > 0 else { throw fail("invalid number") }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if isInteger, let n = Int(text) { return .int(n) }
        guard let d = Double(text) else { throw fail("invalid number") }
        return .double(d)
    }

    mutating func hex4() throws -> UInt32 {
        guard bytes.count - i >= 4 else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v * 16 + d
            i += 1
        }
        return v
    }

    mutating func parseString() throws -> String {
        i += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") { i += 1; break }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < bytes.count else { throw fail("unterminated string") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800...0xDBFF).contains(code), bytes.count - i >= 6,
                   bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                    let save = i
                    i += 2
                    let low = try hex4()
                    if (0xDC00...0xDFFF).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        i = save
                    }
                }
                // A lone surrogate cannot be a Swift string: U+FFFD instead.
                let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(scalar).utf8))
            default:
                throw fail("invalid escape")
            }
        }
        return String(decoding: out, as: UTF8.self)  // invalid UTF-8 becomes U+FFFD
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
