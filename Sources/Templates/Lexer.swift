// Port of jinja2's lexer (jinja2/lexer.py, 3.1) for the environment transformers
// builds: default delimiters, trim_blocks=True, lstrip_blocks=True, no line statements.
//
// Whitespace control happens here, as in jinja2:
// - `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`, `-#}` after it.
// - trim_blocks: one newline right after `%}` or `#}` is dropped.
// - lstrip_blocks: spaces/tabs between the start of a line and `{%` or `{#` are dropped
//   (not before `{{`, and not with `{%+`).
// Newlines are normalised to "\n" and one trailing newline of the source is dropped.

struct Token {
    enum Kind: Equatable {
        case data, variableBegin, variableEnd, blockBegin, blockEnd
        case name, string, integer, float, op
        case eof
    }

    var kind: Kind
    /// Data text, name, decoded string literal or operator spelling.
    var text: String = ""
    var int: Int = 0
    var double: Double = 0
    var location: SourceLocation

    /// How jinja2 names the token in "unexpected …" messages.
    var described: String {
        switch kind {
        case .data: return "template data / text"
        case .variableBegin: return "begin of print statement"
        case .variableEnd: return "end of print statement"
        case .blockBegin: return "begin of statement block"
        case .blockEnd: return "end of statement block"
        case .name, .op: return text
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .eof: return "end of template"
        }
    }

    func isName(_ name: String) -> Bool { kind == .name && text == name }
    func isOp(_ op: String) -> Bool { kind == .op && text == op }
}

struct Lexer {
    private let s: [Unicode.Scalar]
    private var lineStarts: [Int] = [0]
    private var tokens: [Token] = []
    private var lineStarting = true
    let templateName: String

    init(source: String, templateName: String) {
        self.templateName = templateName
        // Normalise \r\n and \r to \n; drop one trailing newline (keep_trailing_newline=False).
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(source.unicodeScalars.count)
        var previousCR = false
        for c in source.unicodeScalars {
            if c == "\r" {
                scalars.append("\n")
                previousCR = true
                continue
            }
            if c == "\n" && previousCR { previousCR = false; continue }
            previousCR = false
            scalars.append(c)
        }
        if scalars.last == "\n" { scalars.removeLast() }
        s = scalars
        for (i, c) in s.enumerated() where c == "\n" { lineStarts.append(i + 1) }
    }

    func location(_ offset: Int) -> SourceLocation {
        var lo = 0, hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return SourceLocation(line: lo + 1, column: offset - lineStarts[lo] + 1)
    }

    func error(_ message: String, at offset: Int) -> TemplateError {
        let loc = location(offset)
        return TemplateError(message: message, line: loc.line, column: loc.column, kind: .syntax, templateName: templateName)
    }

    private func at(_ i: Int) -> Unicode.Scalar? { i < s.count ? s[i] : nil }

    private func has(_ text: String, at i: Int) -> Bool {
        var k = i
        for c in text.unicodeScalars {
            guard k < s.count, s[k] == c else { return false }
            k += 1
        }
        return true
    }

    private func skipSpace(_ i: Int) -> Int {
        var k = i
        while k < s.count && PyString.isSpace(s[k]) { k += 1 }
        return k
    }

    private mutating func emit(_ kind: Token.Kind, _ text: String = "", at offset: Int) {
        tokens.append(Token(kind: kind, text: text, location: location(offset)))
    }

    // MARK: Root state

    mutating func tokenize() throws -> [Token] {
        var pos = 0
        let n = s.count
        while pos < n {
            var tag = pos
            while tag + 1 < n, !(s[tag] == "{" && (s[tag + 1] == "{" || s[tag + 1] == "%" || s[tag + 1] == "#")) { tag += 1 }
            if tag + 1 >= n {
                emit(.data, PyString.string(s[pos..<n]), at: pos)
                break
            }
            let kind = s[tag + 1]
            var after = tag + 2
            var sign: Unicode.Scalar?
            if let c = at(after), c == "-" || c == "+" {
                sign = c
                after += 1
            }
            let raw = kind == "%" ? rawBegin(at: tag) : nil
            let text = stripped(Array(s[pos..<tag]), sign: sign, lstrip: kind != "{")
            if !text.isEmpty { emit(.data, PyString.string(text), at: pos) }
            lineStarting = false
            if let raw {
                pos = try rawBlock(from: raw, tagStart: tag)
            } else if kind == "#" {
                pos = try comment(from: after, tagStart: tag)
            } else {
                emit(kind == "%" ? .blockBegin : .variableBegin, at: tag)
                pos = try tagContents(from: after, block: kind == "%")
            }
        }
        emit(.eof, at: s.count)
        return tokens
    }

    /// jinja2's OptionalLStrip: the text before a tag, after `-` or lstrip_blocks.
    private func stripped(_ text: [Unicode.Scalar], sign: Unicode.Scalar?, lstrip: Bool) -> [Unicode.Scalar] {
        if sign == "-" {
            var end = text.count
            while end > 0 && PyString.isSpace(text[end - 1]) { end -= 1 }
            return Array(text[..<end])
        }
        guard sign != "+", lstrip else { return text }
        let lineStart = (text.lastIndex(of: "\n") ?? -1) + 1
        if lineStart > 0 || lineStarting {
            let tail = text[lineStart...]
            if !tail.isEmpty && tail.allSatisfy(PyString.isSpace) { return Array(text[..<lineStart]) }
        }
        return text
    }

    /// `{%(-|+|)\s*raw\s*(-%}\s*|%})` at `i`: the offset after it.
    private func rawBegin(at i: Int) -> Int? {
        var k = i + 2
        if let c = at(k), c == "-" || c == "+" { k += 1 }
        k = skipSpace(k)
        guard has("raw", at: k) else { return nil }
        k = skipSpace(k + 3)
        if has("-%}", at: k) { return skipSpace(k + 3) }
        if has("%}", at: k) { return k + 2 }
        return nil
    }

    private mutating func rawBlock(from start: Int, tagStart: Int) throws -> Int {
        // jinja2 stops without complaint when nothing follows the opening tag.
        if start >= s.count { return start }
        var k = start
        while k + 1 < s.count {
            if s[k] == "{" && s[k + 1] == "%" {
                var j = k + 2
                var sign: Unicode.Scalar?
                if let c = at(j), c == "-" || c == "+" { sign = c; j += 1 }
                j = skipSpace(j)
                if has("endraw", at: j) {
                    j = skipSpace(j + 6)
                    var end: Int?
                    if has("+%}", at: j) { end = j + 3 }
                    else if has("-%}", at: j) { end = skipSpace(j + 3) }
                    else if has("%}", at: j) { end = j + 2; if at(j + 2) == "\n" { end = j + 3 } }
                    if let end {
                        let text = stripped(Array(s[start..<k]), sign: sign, lstrip: true)
                        if !text.isEmpty { emit(.data, PyString.string(text), at: start) }
                        lineStarting = s[end - 1] == "\n"
                        return end
                    }
                }
            }
            k += 1
        }
        throw error("Missing end of raw directive", at: tagStart)
    }

    private mutating func comment(from start: Int, tagStart: Int) throws -> Int {
        // jinja2 stops without complaint when nothing follows `{#`.
        if start >= s.count { return start }
        var k = start
        while k < s.count {
            var end: Int?
            if has("+#}", at: k) { end = k + 3 }
            else if has("-#}", at: k) { end = skipSpace(k + 3) }
            else if has("#}", at: k) { end = k + 2; if at(k + 2) == "\n" { end = k + 3 } }
            if let end {
                lineStarting = s[end - 1] == "\n"
                return end
            }
            k += 1
        }
        throw error("Missing end of comment tag", at: tagStart)
    }

    // MARK: Inside {% %} and {{ }}

    private mutating func tagContents(from start: Int, block: Bool) throws -> Int {
        var pos = start
        var balance: [Unicode.Scalar] = []
        while pos < s.count {
            if balance.isEmpty, let end = tagEnd(at: pos, block: block) {
                emit(block ? .blockEnd : .variableEnd, at: pos)
                lineStarting = s[end - 1] == "\n"
                return end
            }
            let c = s[pos]
            if PyString.isSpace(c) {
                pos = skipSpace(pos)
            } else if let (end, value) = float(at: pos) {
                var t = Token(kind: .float, text: PyString.string(s[pos..<end]), location: location(pos))
                t.double = value
                tokens.append(t)
                pos = end
            } else if let (end, value) = try integer(at: pos) {
                var t = Token(kind: .integer, text: PyString.string(s[pos..<end]), location: location(pos))
                t.int = value
                tokens.append(t)
                pos = end
            } else if c == "_" || c.properties.isXIDStart {
                var end = pos + 1
                while end < s.count && s[end].properties.isXIDContinue { end += 1 }
                emit(.name, PyString.string(s[pos..<end]), at: pos)
                pos = end
            } else if c == "'" || c == "\"" {
                pos = try string(at: pos)
            } else if let op = op(at: pos) {
                switch op {
                case "{": balance.append("}")
                case "(": balance.append(")")
                case "[": balance.append("]")
                case "}", ")", "]":
                    guard let expected = balance.popLast() else { throw error("unexpected '\(op)'", at: pos) }
                    if String(expected) != op { throw error("unexpected '\(op)', expected '\(expected)'", at: pos) }
                default: break
                }
                emit(.op, op, at: pos)
                pos += op.unicodeScalars.count
            } else {
                throw error("unexpected char \(PyString.repr(String(c))) at \(pos)", at: pos)
            }
        }
        return pos  // unterminated tag: the parser reports the end of the template
    }

    private func tagEnd(at i: Int, block: Bool) -> Int? {
        if block {
            if has("+%}", at: i) { return i + 3 }
            if has("-%}", at: i) { return skipSpace(i + 3) }
            if has("%}", at: i) { return at(i + 2) == "\n" ? i + 3 : i + 2 }
        } else {
            if has("-}}", at: i) { return skipSpace(i + 3) }
            if has("}}", at: i) { return i + 2 }
        }
        return nil
    }

    private static let operators = ["//", "**", "==", "!=", ">=", "<=",
                                    "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}",
                                    ">", "<", "=", ".", ":", "|", ",", ";"]

    private func op(at i: Int) -> String? { Lexer.operators.first { has($0, at: i) } }

    private func isDigit(_ c: Unicode.Scalar?) -> Bool { c.map { ("0"..."9").contains($0) } ?? false }

    /// `(\d+_)*\d+` at i: the end offset.
    private func digits(at i: Int) -> Int? {
        guard isDigit(at(i)) else { return nil }
        var k = i
        while true {
            while isDigit(at(k)) { k += 1 }
            if at(k) == "_", isDigit(at(k + 1)) { k += 1 } else { return k }
        }
    }

    /// jinja2's float_re: digits with a fraction, an exponent or both; never right after a '.'.
    private func float(at i: Int) -> (Int, Double)? {
        guard i == 0 || s[i - 1] != ".", let intEnd = digits(at: i) else { return nil }
        func exponent(at k: Int) -> Int? {
            guard let c = at(k), c == "e" || c == "E" else { return nil }
            var j = k + 1
            if let sign = at(j), sign == "+" || sign == "-" { j += 1 }
            return digits(at: j)
        }
        var end: Int?
        if at(intEnd) == ".", let fractionEnd = digits(at: intEnd + 1) {
            end = exponent(at: fractionEnd) ?? fractionEnd
        } else {
            end = exponent(at: intEnd)
        }
        guard let end else { return nil }
        let text = PyString.string(s[i..<end].filter { $0 != "_" })
        guard let value = Double(text) else { return nil }
        return (end, value)
    }

    /// jinja2's integer_re: 0b…, 0o…, 0x…, decimal, or zeros.
    private func integer(at i: Int) throws -> (Int, Int)? {
        guard isDigit(at(i)) else { return nil }
        func run(_ k: Int, _ ok: (Unicode.Scalar) -> Bool) -> Int {
            var j = k
            while true {
                if let c = at(j), ok(c) { j += 1; continue }
                if at(j) == "_", let c = at(j + 1), ok(c) { j += 2; continue }
                return j
            }
        }
        let radixes: [(String, Int, (Unicode.Scalar) -> Bool)] = [
            ("0b", 2, { $0 == "0" || $0 == "1" }),
            ("0o", 8, { ("0"..."7").contains($0) }),
            ("0x", 16, { $0.properties.isASCIIHexDigit }),
        ]
        for (prefix, radix, ok) in radixes {
            let p = Array(prefix.unicodeScalars)
            if s[i] == p[0], let c = at(i + 1), String(c).lowercased() == String(p[1]) {
                let end = run(i + 2, ok)
                if end > i + 2 {
                    let text = PyString.string(s[(i + 2)..<end].filter { $0 != "_" })
                    guard let v = Int(text, radix: radix) else { throw error("integer too large", at: i) }
                    return (end, v)
                }
            }
        }
        let end = s[i] == "0" ? run(i + 1, { $0 == "0" }) : run(i + 1, isDigitScalar)
        let text = PyString.string(s[i..<end].filter { $0 != "_" })
        guard let v = Int(text) else { throw error("integer too large", at: i) }
        return (end, v)
    }

    private func isDigitScalar(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) }

    /// A string literal: jinja2 decodes it as Python's `unicode-escape` after
    /// `backslashreplace`, so escapes are Python's and other text stays as it is.
    private mutating func string(at i: Int) throws -> Int {
        let quote = s[i]
        var k = i + 1
        while k < s.count && s[k] != quote {
            k += s[k] == "\\" ? 2 : 1
        }
        guard k < s.count else { throw error("unexpected char \(PyString.repr(String(quote))) at \(i)", at: i) }
        let value = try decodeEscapes(Array(s[(i + 1)..<k]), at: i)
        emit(.string, value, at: i)
        return k + 1
    }

    private func decodeEscapes(_ body: [Unicode.Scalar], at offset: Int) throws -> String {
        // backslashreplace: non-ASCII becomes \xNN, \uNNNN or \UNNNNNNNN first.
        var ascii: [Unicode.Scalar] = []
        for c in body {
            if c.isASCII { ascii.append(c); continue }
            let v = c.value
            let escaped = v <= 0xFF ? PyString.hex("\\x", v, 2) : v <= 0xFFFF ? PyString.hex("\\u", v, 4) : PyString.hex("\\U", v, 8)
            ascii.append(contentsOf: escaped.unicodeScalars)
        }
        var out = String.UnicodeScalarView()
        var k = 0
        func hexValue(_ count: Int, _ what: String) throws -> UInt32 {
            guard k + count <= ascii.count,
                  let v = UInt32(PyString.string(ascii[k..<(k + count)]), radix: 16),
                  ascii[k..<(k + count)].allSatisfy({ $0.properties.isASCIIHexDigit }) else {
                throw error("truncated \(what) escape", at: offset)
            }
            k += count
            return v
        }
        while k < ascii.count {
            let c = ascii[k]
            k += 1
            guard c == "\\" else { out.append(c); continue }
            guard k < ascii.count else { throw error("\\ at end of string", at: offset) }
            let e = ascii[k]
            k += 1
            switch e {
            case "\n": break
            case "\\", "'", "\"": out.append(e)
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "0"..."7":
                var v = e.value - 0x30
                for _ in 0..<2 {
                    guard k < ascii.count, ("0"..."7").contains(ascii[k]) else { break }
                    v = v * 8 + ascii[k].value - 0x30
                    k += 1
                }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            case "x": out.append(Unicode.Scalar(try hexValue(2, "\\xXX")) ?? "\u{FFFD}")
            case "u": out.append(Unicode.Scalar(try hexValue(4, "\\uXXXX")) ?? "\u{FFFD}")
            case "U":
                let v = try hexValue(8, "\\UXXXXXXXX")
                guard v <= 0x10FFFF else { throw error("illegal Unicode character", at: offset) }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            case "N": throw error("\\N{…} escapes are not supported", at: offset)
            default:
                out.append("\\")
                out.append(e)
            }
        }
        return String(out)
    }
}
