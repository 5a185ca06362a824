// The one JSON reader: tokenizer.json and its companion files (Tokenizers), chat-template
// contexts and message lists (Templates, which maps the result to its `Value`).
//
// Foundation's JSONSerialization returns `[String: Any]`, and Swift dictionaries compare keys by
// canonical equivalence: two vocabulary entries that differ only in Unicode normalisation (Gemma 3
// has 434 such pairs, Llama 2 has 6) would collapse into one and tokens would silently go missing.
// This reader keeps objects as ordered key/value lists (duplicates included) and every string's
// exact UTF-8 bytes; integers stay integers (as Python's `json.loads`).

/// A parsed JSON value. Objects keep their members in file order, duplicates included.
public indirect enum JSONValue: Sendable {
    case null
    case bool(Bool)
    /// A number without fraction or exponent that fits an `Int` (`-0` is `.int(0)`).
    case int(Int)
    /// Every other number: with a fraction or exponent, or an integer too large for `Int`.
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    /// The first member named `key` (compared with Swift's `==`: exact for ASCII keys).
    public subscript(key: String) -> JSONValue? {
        guard case let .object(members) = self else { return nil }
        return members.first(where: { $0.key == key })?.value
    }

    public var string: String? { if case let .string(s) = self { return s }; return nil }
    public var bool: Bool? { if case let .bool(b) = self { return b }; return nil }
    public var array: [JSONValue]? { if case let .array(a) = self { return a }; return nil }
    public var members: [(key: String, value: JSONValue)]? { if case let .object(m) = self { return m }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }
    /// An integral number as `Int`: an integer, or a double with no fraction below 9e15 (`2.0`).
    public var int: Int? {
        switch self {
        case let .int(i): return i
        case let .double(d) where d == d.rounded() && abs(d) < 9e15: return Int(d)
        default: return nil
        }
    }

    /// What kind of value this is, for error messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// The deepest nesting of arrays and objects `parse` accepts (the parser recurses).
    public static let maxDepth = 512

    /// Parses a whole document (RFC 8259; a leading UTF-8 byte order mark is skipped).
    /// Strings: escapes decoded, a lone surrogate escape becomes U+FFFD, invalid UTF-8
    /// bytes U+FFFD. - Throws: `JSONError` with the byte offset where parsing stopped.
    public static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { (buffer) throws(JSONError) -> JSONValue in
            var parser = Parser(bytes: buffer)
            if buffer.starts(with: [0xEF, 0xBB, 0xBF]) { parser.position = 3 }
            parser.skipSpace()
            let value = try parser.value(depth: 0)
            parser.skipSpace()
            guard parser.position == buffer.count else { throw parser.error("unexpected data after the JSON value") }
            return value
        }
    }

    /// Parses JSON text; see `parse(_:)`.
    public static func parse(_ text: String) throws(JSONError) -> JSONValue {
        try parse(Array(text.utf8))
    }
}

extension JSONValue: Equatable {
    /// Structural equality; object members compare in order, numbers by case and value.
    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.double(x), .double(y)): return x == y
        case let (.string(x), .string(y)): return x.utf8.elementsEqual(y.utf8)
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key.utf8.elementsEqual($1.key.utf8) && $0.value == $1.value }
        default: return false
        }
    }
}

/// A JSON syntax error with the byte offset where parsing stopped.
public struct JSONError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var offset: Int
    public init(message: String, offset: Int) { self.message = message; self.offset = offset }
    public var description: String { "\(message) at byte \(offset)" }
}

private struct Parser {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func error(_ message: String) -> JSONError { JSONError(message: message, offset: position) }

    mutating func skipSpace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    mutating func expect(_ literal: StaticString) throws(JSONError) {
        let n = literal.utf8CodeUnitCount
        guard position + n <= bytes.count else { throw error("unexpected end of JSON") }
        let p = literal.utf8Start
        for i in 0..<n where bytes[position + i] != p[i] { throw error("invalid literal") }
        position += n
    }

    mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        guard depth < JSONValue.maxDepth else { throw error("JSON nested too deeply") }
        guard position < bytes.count else { throw error("unexpected end of JSON") }
        switch bytes[position] {
        case 0x7B: // {
            position += 1
            var members: [(key: String, value: JSONValue)] = []
            skipSpace()
            if position < bytes.count && bytes[position] == 0x7D { position += 1; return .object(members) }
            while true {
                skipSpace()
                guard position < bytes.count, bytes[position] == 0x22 else { throw error("expected a string key") }
                let key = try string()
                skipSpace()
                guard position < bytes.count, bytes[position] == 0x3A else { throw error("expected ':'") }
                position += 1
                skipSpace()
                members.append((key, try value(depth: depth + 1)))
                skipSpace()
                guard position < bytes.count else { throw error("unexpected end of JSON") }
                if bytes[position] == 0x2C { position += 1; continue }
                if bytes[position] == 0x7D { position += 1; return .object(members) }
                throw error("expected ',' or '}'")
            }
        case 0x5B: // [
            position += 1
            var items: [JSONValue] = []
            skipSpace()
            if position < bytes.count && bytes[position] == 0x5D { position += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard position < bytes.count else { throw error("unexpected end of JSON") }
                if bytes[position] == 0x2C { position += 1; continue }
                if bytes[position] == 0x5D { position += 1; return .array(items) }
                throw error("expected ',' or ']'")
            }
        case 0x22: return .string(try string())
        case 0x74: try expect("true"); return .bool(true)
        case 0x66: try expect("false"); return .bool(false)
        case 0x6E: try expect("null"); return .null
        default: return try number()
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    mutating func number() throws(JSONError) -> JSONValue {
        let start = position
        let negative = position < bytes.count && bytes[position] == 0x2D
        if negative { position += 1 }
        // Integer part, accumulated as a negative number so that Int.min fits.
        var magnitude = 0
        var fits = true
        let digitsStart = position
        while position < bytes.count, bytes[position] &- 0x30 < 10 {
            if fits {
                let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.subtractingReportingOverflow(Int(bytes[position] &- 0x30))
                if o1 || o2 { fits = false } else { magnitude = s }
            }
            position += 1
        }
        let digitCount = position - digitsStart
        guard digitCount > 0 else {
            if negative { throw error("invalid number") }
            throw error("invalid JSON value")
        }
        guard digitCount == 1 || bytes[digitsStart] != 0x30 else { position = digitsStart + 1; throw error("leading zero in number") }
        var integral = true
        if position < bytes.count, bytes[position] == 0x2E { // .
            integral = false
            position += 1
            guard digits() > 0 else { throw error("invalid number") }
        }
        if position < bytes.count, bytes[position] == 0x65 || bytes[position] == 0x45 { // e E
            integral = false
            position += 1
            if position < bytes.count, bytes[position] == 0x2B || bytes[position] == 0x2D { position += 1 }
            guard digits() > 0 else { throw error("invalid number") }
        }
        if integral && fits {
            if negative { return .int(magnitude) }
            if magnitude != Int.min { return .int(-magnitude) }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        guard let d = Double(text) else { throw error("invalid number") }
        return .double(d)
    }

    mutating func digits() -> Int {
        let s = position
        while position < bytes.count, bytes[position] &- 0x30 < 10 { position += 1 }
        return position - s
    }

    mutating func hex4() throws(JSONError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[position]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | d
            position += 1
        }
        return v
    }

    mutating func string() throws(JSONError) -> String {
        position += 1 // opening quote
        let start = position
        // Fast path: no escapes.
        while position < bytes.count, bytes[position] != 0x22, bytes[position] != 0x5C, bytes[position] >= 0x20 { position += 1 }
        guard position < bytes.count else { throw error("unterminated string") }
        if bytes[position] == 0x22 {
            let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
            position += 1
            return s
        }
        var out = Array(bytes[start..<position])
        while position < bytes.count {
            let c = bytes[position]
            if c == 0x22 { position += 1; return String(decoding: out, as: UTF8.self) }
            if c < 0x20 { throw error("control character in string") }
            if c != 0x5C { out.append(c); position += 1; continue }
            position += 1
            guard position < bytes.count else { break }
            let e = bytes[position]
            position += 1
            switch e {
            case 0x22, 0x5C, 0x2F: out.append(e)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                var cp = try hex4()
                if cp >= 0xD800 && cp < 0xDC00, position + 6 <= bytes.count, bytes[position] == 0x5C, bytes[position + 1] == 0x75 {
                    let save = position
                    position += 2
                    let low = try hex4()
                    if low >= 0xDC00 && low < 0xE000 {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        position = save
                    }
                }
                // A lone surrogate cannot be a Swift string: U+FFFD instead.
                let scalar = Unicode.Scalar(cp) ?? "\u{FFFD}"
                UTF8.encode(scalar) { out.append($0) }
            default:
                position -= 1
                throw error("invalid escape")
            }
        }
        throw error("unterminated string")
    }
}
