import Foundation

/// Python's string formatting: `'%s' % x` (and the `format` filter) and `str.format`.
enum Formatting {
    // MARK: printf-style

    /// `format % args`: a list is the argument tuple, a dict feeds `%(name)s`.
    /// With `escaping` (a Markup format), string arguments are HTML-escaped.
    static func percent(_ format: String, _ args: Value, escaping: Bool = false) throws -> String {
        func text(_ s: String, _ v: Value) -> String { escaping && !v.isMarkup ? Filters.htmlEscape(s) : s }
        var positional: [Value]
        var mapping: Object?
        // CPython: a tuple is the argument list; anything else is one argument, and an
        // argument with __getitem__ (dict, list, undefined) also serves `%(name)s` and
        // never causes "not all arguments converted".
        var lenient = false
        switch args {
        case .tuple(let a): positional = a
        case .object(let o): positional = [args]; mapping = o; lenient = true
        case .array, .undefined: positional = [args]; lenient = true
        default: positional = [args]
        }
        let f = PyString.scalars(format)
        var out = ""
        var i = 0, next = 0
        func take() throws -> Value {
            guard next < positional.count else { throw PyError.type("not enough arguments for format string") }
            defer { next += 1 }
            return positional[next]
        }
        while i < f.count {
            let c = f[i]
            i += 1
            guard c == "%" else { out.unicodeScalars.append(c); continue }
            guard i < f.count else { throw PyError.value("incomplete format") }
            var value: Value?
            if f[i] == "(" {
                guard let close = f[i...].firstIndex(of: ")") else { throw PyError.value("incomplete format key") }
                let key = PyString.string(f[(i + 1)..<close])
                guard let mapping else { throw PyError.type("format requires a mapping") }
                value = mapping[key] ?? .undefined
                if value!.isUndefined { throw PyError.type("KeyError: '\(key)'") }
                i = close + 1
            }
            var flags = ""
            while i < f.count, "-+ #0".unicodeScalars.contains(f[i]) { flags.unicodeScalars.append(f[i]); i += 1 }
            // Saturating: a width or precision past any string limit stays past it.
            func digits(_ start: Int?, _ what: String) throws -> Int? {
                var n = start
                while i < f.count, ("0"..."9").contains(f[i]) {
                    n = Swift.min((n ?? 0) * 10 + Int(f[i].value - 48), Int.max / 100)
                    i += 1
                }
                return n
            }
            var width: Int?
            if i < f.count, f[i] == "*" { width = try take().integer; i += 1 }
            width = try digits(width, "width")
            if let w = width, w < 0 {  // `*` with a negative width: left-aligned
                flags += "-"
                width = w == Int.min ? Int.max : -w
            }
            var precision: Int?
            if i < f.count, f[i] == "." {
                i += 1
                precision = 0
                if i < f.count, f[i] == "*" { precision = try take().integer; i += 1 }
                precision = try digits(precision, "precision")
                if let p = precision, p < 0 { precision = nil }
            }
            guard i < f.count else { throw PyError.value("incomplete format") }
            let type = f[i]
            i += 1
            if type == "%" { out += "%"; continue }
            let v = try value ?? take()
            var spec = FormatSpec()
            spec.align = flags.contains("-") ? "<" : nil
            spec.zero = flags.contains("0") && !flags.contains("-")
            spec.sign = flags.contains("+") ? "+" : flags.contains(" ") ? " " : "-"
            spec.alternate = flags.contains("#")
            spec.width = width
            spec.precision = precision
            switch type {
            case "s":
                let s = text(v.pythonString, v)
                out += try pad(spec.precision.map { String(PyString.string(PyString.scalars(s).prefix($0))) } ?? s, spec, defaultAlign: ">")
            case "r", "a": out += try pad(text(v.pythonRepr, v), spec, defaultAlign: ">")
            case "d", "i", "u":
                guard let n = v.number else { throw PyError.type("%\(type) format: a real number is required, not \(v.pythonTypeName)") }
                spec.type = "d"
                out += try formatNumber(.int(try v.integer ?? Int.checked(n)), spec)
            default:
                guard "eEfFgGxXoc".unicodeScalars.contains(type) else {
                    throw PyError.value("unsupported format character '\(type)' (0x\(String(type.value, radix: 16)))")
                }
                spec.type = Character(type)
                if type == "c" {
                    if let n = v.integer {
                        guard let c = UInt32(exactly: n).flatMap(Unicode.Scalar.init) else {
                            throw PyError.overflow("%c arg not in range(0x110000)")
                        }
                        out += try pad(String(c), spec, defaultAlign: ">")
                    } else {
                        out += try pad(v.pythonString, spec, defaultAlign: ">")
                    }
                    continue
                }
                if spec.precision == nil && "eEfFgG".unicodeScalars.contains(type) { spec.precision = 6 }
                out += try formatNumber(v, spec)
            }
        }
        if !lenient && next < positional.count {
            throw PyError.type("not all arguments converted during string formatting")
        }
        return out
    }

    // MARK: str.format

    struct FormatSpec {
        var fill: Character = " "
        var align: Character?
        var sign: Character = "-"
        var alternate = false
        var zero = false
        var width: Int?
        var grouping: Character?
        var precision: Int?
        var type: Character?
    }

    static func parseSpec(_ text: String) throws -> FormatSpec {
        var spec = FormatSpec()
        var c = Array(text)
        if c.count >= 2, "<>=^".contains(c[1]) {
            spec.fill = c[0]; spec.align = c[1]; c.removeFirst(2)
        } else if let first = c.first, "<>=^".contains(first) {
            spec.align = first; c.removeFirst()
        }
        if let first = c.first, "+- ".contains(first) { spec.sign = first; c.removeFirst() }
        if c.first == "#" { spec.alternate = true; c.removeFirst() }
        if c.first == "0" { spec.zero = true; c.removeFirst() }
        var digits = ""
        while let first = c.first, first.isASCII, first.isNumber { digits.append(first); c.removeFirst() }
        if !digits.isEmpty { spec.width = Int(digits) }
        if let first = c.first, first == "," || first == "_" { spec.grouping = first; c.removeFirst() }
        if c.first == "." {
            c.removeFirst()
            digits = ""
            while let first = c.first, first.isASCII, first.isNumber { digits.append(first); c.removeFirst() }
            guard let p = Int(digits) else { throw PyError.value("Format specifier missing precision") }
            spec.precision = p
        }
        if let first = c.first { spec.type = first; c.removeFirst() }
        guard c.isEmpty else { throw PyError.value("Invalid format specifier '\(text)'") }
        return spec
    }

    static func pad(_ s: String, _ spec: FormatSpec, defaultAlign: Character) throws -> String {
        let n = PyString.length(s)
        guard let width = spec.width, width > n else { return s }
        try Limit.padded(s, toWidth: width, fillBytes: String(spec.fill).utf8.count)
        let fill = String(spec.fill), margin = width - n
        switch spec.align ?? defaultAlign {
        case "<": return s + String(repeating: fill, count: margin)
        case "^": return String(repeating: fill, count: margin / 2) + s + String(repeating: fill, count: margin - margin / 2)
        default: return String(repeating: fill, count: margin) + s
        }
    }

    /// `format(value, spec)` for one value.
    static func format(_ value: Value, _ specText: String) throws -> String {
        let spec = try parseSpec(specText)
        switch value.asPlain {
        case .string(let s):
            if let t = spec.type, t != "s" { throw PyError.value("Unknown format code '\(t)' for object of type 'str'") }
            let text = spec.precision.map { PyString.string(PyString.scalars(s).prefix($0)) } ?? s
            return try pad(text, spec, defaultAlign: "<")
        case .int, .double, .bool:
            if case .bool = value, spec.type == nil, spec.width == nil { return value.pythonString }
            return try formatNumber(value, spec)
        default:
            guard specText.isEmpty else { throw PyError.type("unsupported format string passed to \(value.pythonTypeName).__format__") }
            return value.pythonString
        }
    }

    static func formatNumber(_ value: Value, _ specIn: FormatSpec) throws -> String {
        var spec = specIn
        var body: String
        var negative = false
        if let i = value.integer, spec.type == nil || "dxXobcn".contains(spec.type!) {
            negative = i < 0
            let magnitude = i.magnitude
            switch spec.type {
            case "x": body = String(magnitude, radix: 16); if spec.alternate { body = "0x" + body }
            case "X": body = String(magnitude, radix: 16).uppercased(); if spec.alternate { body = "0X" + body }
            case "o": body = String(magnitude, radix: 8); if spec.alternate { body = "0o" + body }
            case "b": body = String(magnitude, radix: 2); if spec.alternate { body = "0b" + body }
            case "c":
                guard let c = UInt32(exactly: magnitude).flatMap(Unicode.Scalar.init) else {
                    throw PyError.overflow("%c arg not in range(0x110000)")
                }
                return String(c)
            default: body = group(String(magnitude), spec.grouping)
            }
        } else {
            guard let d = value.number else { throw PyError.type("a real number is required") }
            if spec.type == "d" { throw PyError.value("Unknown format code 'd' for object of type 'float'") }
            // The digits a precision asks for are made before any padding.
            if let precision = spec.precision { try Limit.string(precision.addingReportingOverflow(400).partialValue) }
            negative = d < 0 || (d == 0 && d.sign == .minus)
            let m = abs(d)
            let type = spec.type ?? (spec.precision == nil ? "r" : "g")
            switch type {
            case "f", "F", "%":
                let scaled = type == "%" ? m * 100 : m
                body = m.isFinite ? String(format: "%.\(spec.precision ?? 6)f", scaled) : (m.isNaN ? "nan" : "inf")
                if let dot = body.firstIndex(of: ".") {
                    body = group(String(body[..<dot]), spec.grouping) + body[dot...]
                } else {
                    body = group(body, spec.grouping)
                }
                if type == "%" { body += "%" }
                if type == "F" { body = body.uppercased() }
            case "e", "E":
                body = m.isFinite ? String(format: "%.\(spec.precision ?? 6)e", m) : (m.isNaN ? "nan" : "inf")
                if type == "E" { body = body.uppercased() }
            case "g", "G":
                body = m.isFinite ? String(format: "%.\(max(spec.precision ?? 6, 1))g", m) : (m.isNaN ? "nan" : "inf")
                if type == "G" { body = body.uppercased() }
            case "r":
                body = PyString.floatRepr(m)
            default:
                throw PyError.value("Unknown format code '\(type)' for object of type 'float'")
            }
        }
        let sign = negative ? "-" : spec.sign == "+" ? "+" : spec.sign == " " ? " " : ""
        if spec.zero && spec.align == nil {
            spec.fill = "0"
            spec.align = "="
        }
        if spec.align == "=", let width = spec.width, width > sign.count + body.count {
            try Limit.padded(sign + body, toWidth: width, fillBytes: String(spec.fill).utf8.count)
            return sign + String(repeating: String(spec.fill), count: width - sign.count - body.count) + body
        }
        return try pad(sign + body, spec, defaultAlign: ">")
    }

    private static func group(_ digits: String, _ separator: Character?) -> String {
        guard let separator else { return digits }
        var out = ""
        for (k, c) in digits.reversed().enumerated() {
            if k > 0 && k % 3 == 0 { out.append(separator) }
            out.append(c)
        }
        return String(out.reversed())
    }

    /// `template.format(*args, **kwargs)` with `{}`, `{0}`, `{name}`, `{x.attr}`, `{x[0]}`,
    /// `!r`/`!s` and format specs.
    /// With `escaping` (`Markup.format`), each field not itself Markup is HTML-escaped.
    static func strFormat(_ template: String, _ arguments: Arguments, escaping: Bool = false, recursion: Int = 2) throws -> String {
        // CPython allows a replacement field inside a format spec, but no deeper.
        guard recursion >= 0 else { throw PyError.value("Max string recursion exceeded") }
        let t = Array(template.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0, auto = 0
        while i < t.count {
            let c = t[i]
            if c == "}" {
                guard i + 1 < t.count, t[i + 1] == "}" else { throw PyError.value("Single '}' encountered in format string") }
                out.append("}"); i += 2; continue
            }
            guard c == "{" else { out.append(c); i += 1; continue }
            if i + 1 < t.count, t[i + 1] == "{" { out.append("{"); i += 2; continue }
            var depth = 1, j = i + 1
            while j < t.count && depth > 0 {
                if t[j] == "{" { depth += 1 } else if t[j] == "}" { depth -= 1 }
                if depth > 0 { j += 1 }
            }
            guard j < t.count else { throw PyError.value("expected '}' before end of string") }
            var field = PyString.string(t[(i + 1)..<j])
            i = j + 1
            var spec = ""
            if let colon = field.firstIndex(of: ":") {
                spec = String(field[field.index(after: colon)...])
                field = String(field[..<colon])
            }
            var conversion: Character?
            if let bang = field.firstIndex(of: "!") {
                conversion = field[field.index(after: bang)...].first
                field = String(field[..<bang])
            }
            // The first part names the argument; then .attr and [key] parts.
            let headEnd = field.firstIndex(where: { $0 == "." || $0 == "[" }) ?? field.endIndex
            let head = String(field[..<headEnd])
            var value: Value
            if head.isEmpty {
                guard auto < arguments.positional.count else { throw PyError.value("Replacement index \(auto) out of range for positional args tuple") }
                value = arguments.positional[auto]
                auto += 1
            } else if let index = Int(head) {
                guard index < arguments.positional.count else { throw PyError.value("Replacement index \(index) out of range for positional args tuple") }
                value = arguments.positional[index]
            } else {
                guard let v = arguments.keywords.last(where: { $0.0 == head })?.1 else { throw PyError.value("KeyError: '\(head)'") }
                value = v
            }
            var rest = field[headEnd...]
            while let first = rest.first {
                rest = rest.dropFirst()
                if first == "." {
                    let end = rest.firstIndex(where: { $0 == "." || $0 == "[" }) ?? rest.endIndex
                    value = Access.attribute(value, String(rest[..<end]))
                    rest = rest[end...]
                } else {
                    guard let close = rest.firstIndex(of: "]") else { throw PyError.value("Missing ']' in format string") }
                    let key = String(rest[..<close])
                    value = Access.item(value, Int(key).map(Value.int) ?? .string(key))
                    rest = rest[rest.index(after: close)...]
                }
            }
            if spec.contains("{") { spec = try strFormat(spec, arguments, recursion: recursion - 1) }
            switch conversion {
            case "r", "a": value = .string(value.pythonRepr)
            case "s": value = .string(value.pythonString)
            default: break
            }
            let formatted = try format(value, spec)
            out.append(contentsOf: (escaping && !value.isMarkup ? Filters.htmlEscape(formatted) : formatted).unicodeScalars)
        }
        return String(out)
    }
}
