// A small JSON reader for tokenizer.json and its companion files.
//
// Foundation's JSONSerialization returns `[String: Any]`, and Swift dictionaries compare keys by
// canonical equivalence: two vocabulary entries that differ only in Unicode normalisation (Gemma 3
// has 434 such pairs, Llama 2 has 6) would collapse into one and tokens would silently go missing.
// This reader keeps objects as ordered key/value lists and every string's exact UTF-8 bytes.

/// A parsed JSON value. Objects keep their members in file order, duplicates included.
indirect enum JSONValue {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    /// The first member named `key` (keys the tokenizer asks for are ASCII, so `==` is exact).
    subscript(key: String) -> JSONValue? {
        guard case let .object(members) = self else { return nil }
        return members.first(where: { $0.key == key })?.value
    }

    var string: String? { if case let .string(s) = self { return s }; return nil }
    var bool: Bool? { if case let .bool(b) = self { return b }; return nil }
    var array: [JSONValue]? { if case let .array(a) = self { return a }; return nil }
    var members: [(key: String, value: JSONValue)]? { if case let .object(m) = self { return m }; return nil }
    var isNull: Bool { if case .null = self { return true }; return false }
    /// An integral number as `Int`.
    var int: Int? {
        guard case let .number(d) = self, d == d.rounded(), abs(d) < 9e15 else { return nil }
        return Int(d)
    }

    /// What kind of value this is, for error messages.
    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Parses a whole document. - Throws: `JSONValue.ParseError` with the byte offset.
    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        try bytes.withUnsafeBufferPointer { buffer in
            var parser = Parser(bytes: buffer)
            parser.skipSpace()
            let value = try parser.value(depth: 0)
            parser.skipSpace()
            guard parser.position == buffer.count else { throw parser.error("unexpected text after the JSON value") }
            return value
        }
    }

    struct ParseError: Error {
        let offset: Int
        let reason: String
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0

        func error(_ reason: String) -> ParseError { ParseError(offset: position, reason: reason) }

        mutating func skipSpace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func expect(_ literal: StaticString) throws {
            let n = literal.utf8CodeUnitCount
            guard position + n <= bytes.count else { throw error("unexpected end of input") }
            let p = literal.utf8Start
            for i in 0..<n where bytes[position + i] != p[i] { throw error("invalid literal") }
            position += n
        }

        mutating func value(depth: Int) throws -> JSONValue {
            guard depth < 512 else { throw error("nesting too deep") }
            guard position < bytes.count else { throw error("unexpected end of input") }
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
                    guard position < bytes.count else { throw error("unexpected end of input") }
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
                    guard position < bytes.count else { throw error("unexpected end of input") }
                    if bytes[position] == 0x2C { position += 1; continue }
                    if bytes[position] == 0x5D { position += 1; return .array(items) }
                    throw error("expected ',' or ']'")
                }
            case 0x22: return .string(try string())
            case 0x74: try expect("true"); return .bool(true)
            case 0x66: try expect("false"); return .bool(false)
            case 0x6E: try expect("null"); return .null
            default: return .number(try number())
            }
        }

        mutating func number() throws -> Double {
            let start = position
            var integral = true
            while position < bytes.count {
                let c = bytes[position]
                if c >= 0x30 && c <= 0x39 || c == 0x2D { position += 1; continue }
                if c == 0x2B || c == 0x2E || c == 0x65 || c == 0x45 { integral = false; position += 1; continue }
                break
            }
            guard position > start else { throw error("unexpected character") }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
            if integral, let i = Int(text) { return Double(i) }
            guard let d = Double(text) else { throw error("invalid number '\(text)'") }
            return d
        }

        mutating func hex4() throws -> UInt32 {
            guard position + 4 <= bytes.count else { throw error("unexpected end of input") }
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

        mutating func string() throws -> String {
            position += 1 // opening quote
            let start = position
            // Fast path: no escapes.
            while position < bytes.count, bytes[position] != 0x22, bytes[position] != 0x5C { position += 1 }
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
                    if cp >= 0xD800 && cp < 0xE000 { cp = 0xFFFD } // lone surrogate
                    UTF8Util.append(cp, to: &out)
                default: throw error("invalid escape")
                }
            }
            throw error("unterminated string")
        }
    }
}
