import Foundation

/// Python's `str` semantics on Swift strings. Python indexes, compares and searches by
/// Unicode code points, whereas Swift's `String` works on grapheme clusters and
/// compares canonically equivalent strings as equal; everything here works on
/// `unicodeScalars` so that `len`, slicing, `in`, `split` and `==` give Python's results.
enum PyString {
    typealias Scalars = [Unicode.Scalar]

    static func scalars(_ s: String) -> Scalars { Array(s.unicodeScalars) }

    static func string<C: Collection>(_ scalars: C) -> String where C.Element == Unicode.Scalar {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    static func length(_ s: String) -> Int { s.unicodeScalars.count }

    static func equal(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }

    /// Code point order (Python's `<` on str); UTF-8 byte order is the same order.
    static func less(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    // MARK: Character classes

    /// `str.isspace()` (also what `\s` matches in Python's `re`).
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// Python's line boundaries for `str.splitlines()`.
    static func isLineBreak(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029: return true
        default: return false
        }
    }

    /// `\w` in Python's `re`: letters, digits (any script) and underscore.
    static func isWord(_ c: Unicode.Scalar) -> Bool {
        if c == "_" { return true }
        let p = c.properties
        return p.isAlphabetic || p.numericType != nil || p.generalCategory == .decimalNumber
    }

    /// `str.isprintable()` for one character, as `repr` uses it.
    static func isPrintable(_ c: Unicode.Scalar) -> Bool {
        if c == " " { return true }
        switch c.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
            return false
        default:
            return true
        }
    }

    // MARK: repr

    /// `repr(str)`: single quotes unless the text has ' and no ", escapes for
    /// backslash, the quote, \t \n \r and unprintable characters.
    static func repr(_ s: String) -> String {
        let hasSingle = s.unicodeScalars.contains("'"), hasDouble = s.unicodeScalars.contains("\"")
        let quote: Unicode.Scalar = hasSingle && !hasDouble ? "\"" : "'"
        var out = String.UnicodeScalarView()
        out.append(quote)
        for c in s.unicodeScalars {
            switch c {
            case quote, "\\": out.append("\\"); out.append(c)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            default:
                if c.value < 0x20 || c.value == 0x7F {
                    out.append(contentsOf: hex("\\x", c.value, 2).unicodeScalars)
                } else if c.value < 0x7F || isPrintable(c) {
                    out.append(c)
                } else if c.value <= 0xFF {
                    out.append(contentsOf: hex("\\x", c.value, 2).unicodeScalars)
                } else if c.value <= 0xFFFF {
                    out.append(contentsOf: hex("\\u", c.value, 4).unicodeScalars)
                } else {
                    out.append(contentsOf: hex("\\U", c.value, 8).unicodeScalars)
                }
            }
        }
        out.append(quote)
        return String(out)
    }

    static func hex(_ prefix: String, _ value: UInt32, _ digits: Int) -> String {
        let h = String(value, radix: 16)
        return prefix + String(repeating: "0", count: max(0, digits - h.count)) + h
    }

    /// `repr(float)`: the shortest string that reads back as the same double, with
    /// Python's layout (`1.0`, `1e-05`, `1e+16`, `inf`, `nan`). Swift's `description`
    /// produces exactly these digits and the same switch to exponent notation.
    static func floatRepr(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        return d.description
    }

    // MARK: Methods of str

    static func strip(_ s: String, _ chars: String?, left: Bool = true, right: Bool = true) -> String {
        let a = scalars(s)
        let set = chars.map { Set($0.unicodeScalars) }
        func strippable(_ c: Unicode.Scalar) -> Bool { set.map { $0.contains(c) } ?? isSpace(c) }
        var lo = 0, hi = a.count
        if left { while lo < hi && strippable(a[lo]) { lo += 1 } }
        if right { while hi > lo && strippable(a[hi - 1]) { hi -= 1 } }
        return string(a[lo..<hi])
    }

    /// `str.split(sep=None, maxsplit=-1)`.
    static func split(_ s: String, _ sep: String?, _ maxsplit: Int) throws -> [String] {
        let a = scalars(s)
        var result: [String] = []
        var remaining = maxsplit < 0 ? Int.max : maxsplit
        guard let sep else {
            var i = 0
            while remaining > 0 {
                while i < a.count && isSpace(a[i]) { i += 1 }
                if i == a.count { break }
                let j = i
                i += 1
                while i < a.count && !isSpace(a[i]) { i += 1 }
                result.append(string(a[j..<i]))
                remaining -= 1
            }
            if i < a.count {
                while i < a.count && isSpace(a[i]) { i += 1 }
                if i != a.count { result.append(string(a[i...])) }
            }
            return result
        }
        let p = scalars(sep)
        guard !p.isEmpty else { throw PyError.value("empty separator") }
        let search = Search(p)
        var start = 0
        while remaining > 0 {
            let i = search.first(in: a, from: start, to: a.count)
            if i < 0 { break }
            result.append(string(a[start..<i]))
            start = i + p.count
            remaining -= 1
        }
        result.append(string(a[start...]))
        return result
    }

    /// `str.rsplit(sep=None, maxsplit=-1)`.
    static func rsplit(_ s: String, _ sep: String?, _ maxsplit: Int) throws -> [String] {
        if maxsplit < 0 { return try split(s, sep, maxsplit) }
        let a = scalars(s)
        var result: [String] = []
        var remaining = maxsplit
        guard let sep else {
            var i = a.count
            while remaining > 0 {
                while i > 0 && isSpace(a[i - 1]) { i -= 1 }
                if i == 0 { break }
                let j = i
                i -= 1
                while i > 0 && !isSpace(a[i - 1]) { i -= 1 }
                result.append(string(a[i..<j]))
                remaining -= 1
            }
            if i > 0 {
                while i > 0 && isSpace(a[i - 1]) { i -= 1 }
                if i != 0 { result.append(string(a[..<i])) }
            }
            return result.reversed()
        }
        let p = scalars(sep)
        guard !p.isEmpty else { throw PyError.value("empty separator") }
        let search = Search(p)
        var end = a.count
        while remaining > 0 {
            let i = search.last(in: a, from: 0, to: end)
            if i < 0 { break }
            result.append(string(a[(i + p.count)..<end]))
            end = i
            remaining -= 1
        }
        result.append(string(a[..<end]))
        return result.reversed()
    }

    /// `str.splitlines(keepends=False)`.
    static func splitlines(_ s: String, keepends: Bool = false) -> [String] {
        let a = scalars(s)
        var result: [String] = []
        var start = 0, i = 0
        while i < a.count {
            if isLineBreak(a[i]) {
                var end = i + 1
                if a[i] == "\r" && end < a.count && a[end] == "\n" { end += 1 }
                result.append(string(a[start..<(keepends ? end : i)]))
                start = end
                i = end
            } else {
                i += 1
            }
        }
        if start < a.count { result.append(string(a[start...])) }
        return result
    }

    static func matches(_ a: Scalars, _ p: Scalars, at i: Int) -> Bool {
        guard i >= 0, i + p.count <= a.count else { return false }
        for k in 0..<p.count where a[i + k] != p[k] { return false }
        return true
    }

    /// Index of the first occurrence of `p` in `a[from..<to]`, or -1.
    static func find(_ a: Scalars, _ p: Scalars, from: Int = 0, to: Int? = nil) -> Int {
        let end = to ?? a.count
        guard p.count <= end - from else { return -1 }
        if p.isEmpty { return from }
        return Search(p).first(in: a, from: from, to: end)
    }

    static func rfind(_ a: Scalars, _ p: Scalars, from: Int = 0, to: Int? = nil) -> Int {
        let end = to ?? a.count
        guard p.count <= end - from else { return -1 }
        if p.isEmpty { return end }
        return Search(p).last(in: a, from: from, to: end)
    }

    /// Substring search in linear time (Knuth–Morris–Pratt): a naive search of a long
    /// needle in a long text takes their product, hours for a hostile template.
    struct Search {
        let pattern: Scalars, reversed: Scalars
        /// `next[j]`: the longest proper prefix of `pattern[...j]` that is also its suffix.
        let next: [Int], reversedNext: [Int]

        /// `pattern` must not be empty.
        init(_ pattern: Scalars) {
            self.pattern = pattern
            reversed = Array(pattern.reversed())
            next = Search.table(pattern)
            reversedNext = Search.table(reversed)
        }

        private static func table(_ p: Scalars) -> [Int] {
            var next = [Int](repeating: 0, count: p.count)
            var k = 0
            for j in 1..<max(1, p.count) {
                while k > 0 && p[j] != p[k] { k = next[k - 1] }
                if p[j] == p[k] { k += 1 }
                next[j] = k
            }
            return next
        }

        /// The first occurrence lying wholly in `a[from..<to]`, or -1.
        func first(in a: Scalars, from: Int, to end: Int) -> Int {
            var k = 0, i = max(0, from)
            while i < end {
                while k > 0 && a[i] != pattern[k] { k = next[k - 1] }
                if a[i] == pattern[k] { k += 1 }
                if k == pattern.count { return i - k + 1 }
                i += 1
            }
            return -1
        }

        /// The last occurrence lying wholly in `a[from..<to]`, or -1 (the reversed
        /// pattern searched from the end).
        func last(in a: Scalars, from: Int, to end: Int) -> Int {
            var k = 0, i = min(end, a.count) - 1
            while i >= max(0, from) {
                while k > 0 && a[i] != reversed[k] { k = reversedNext[k - 1] }
                if a[i] == reversed[k] { k += 1 }
                if k == reversed.count { return i }
                i -= 1
            }
            return -1
        }
    }

    static func contains(_ s: String, _ needle: String) -> Bool {
        needle.isEmpty || find(scalars(s), scalars(needle)) >= 0
    }

    static func count(_ s: String, _ needle: String) -> Int {
        let a = scalars(s), p = scalars(needle)
        if p.isEmpty { return a.count + 1 }
        let search = Search(p)
        var n = 0, i = 0
        while true {
            let j = search.first(in: a, from: i, to: a.count)
            if j < 0 { return n }
            n += 1
            i = j + p.count
        }
    }

    /// `str.replace(old, new, count=-1)`.
    /// Refused before replacing when the result would pass the string limit.
    static func replace(_ s: String, _ old: String, _ new: String, _ count: Int = -1) throws -> String {
        let a = scalars(s), p = scalars(old), q = scalars(new)
        var remaining = count < 0 ? Int.max : count
        if q.count > p.count {
            let matches = min(remaining, p.isEmpty ? a.count + 1 : PyString.count(s, old))
            try Limit.repeated(new.utf8.count, matches, plus: s.utf8.count)
        }
        var out: Scalars = []
        if p.isEmpty {
            for c in a {
                if remaining > 0 { out += q; remaining -= 1 }
                out.append(c)
            }
            if remaining > 0 { out += q }
            return string(out)
        }
        let search = Search(p)
        var i = 0
        while remaining > 0 {
            let j = search.first(in: a, from: i, to: a.count)
            if j < 0 { break }
            out += a[i..<j]
            out += q
            i = j + p.count
            remaining -= 1
        }
        out += a[i...]
        return string(out)
    }

    static func hasPrefix(_ s: String, _ p: String) -> Bool { s.utf8.starts(with: p.utf8) }
    static func hasSuffix(_ s: String, _ p: String) -> Bool { s.utf8.reversed().starts(with: p.utf8.reversed()) }

    static func upper(_ s: String) -> String { s.uppercased() }
    static func lower(_ s: String) -> String { s.lowercased() }

    /// `str.capitalize()`: the first character in title case, the rest lower case.
    static func capitalize(_ s: String) -> String {
        let a = scalars(s)
        guard let first = a.first else { return "" }
        return first.properties.titlecaseMapping + lower(string(a.dropFirst()))
    }

    /// `str.title()`: title case after an uncased character, lower case after a cased one.
    static func title(_ s: String) -> String {
        var out = ""
        var previousCased = false
        for c in s.unicodeScalars {
            out += previousCased ? c.properties.lowercaseMapping : c.properties.titlecaseMapping
            previousCased = c.properties.isCased
        }
        return out
    }

    /// `str.center(width, fillchar)`, CPython's split of the padding.
    static func center(_ s: String, _ width: Int, _ fill: Unicode.Scalar = " ") -> String {
        let n = length(s)
        guard width > n else { return s }
        let margin = width - n
        let left = margin / 2 + (margin & width & 1)
        return String(repeating: String(fill), count: left) + s + String(repeating: String(fill), count: margin - left)
    }

    /// Python's slice semantics (`a[start:stop:step]`) on any random-access array.
    static func slice<T>(_ a: [T], _ start: Int?, _ stop: Int?, _ step: Int?) throws -> [T] {
        let step = step ?? 1
        guard step != 0 else { throw PyError.value("slice step cannot be zero") }
        let n = a.count
        func clamp(_ v: Int?, _ defaultValue: Int, lower: Int, upper: Int) -> Int {
            guard var v else { return defaultValue }
            if v < 0 { v += n }
            return min(max(v, lower), upper)
        }
        var out: [T] = []
        if step > 0 {
            let lo = clamp(start, 0, lower: 0, upper: n), hi = clamp(stop, n, lower: 0, upper: n)
            var i = lo
            while i < hi {
                out.append(a[i])
                let (next, overflow) = i.addingReportingOverflow(step)
                if overflow { break }
                i = next
            }
        } else {
            let lo = clamp(start, n - 1, lower: -1, upper: n - 1), hi = clamp(stop, -1, lower: -1, upper: n - 1)
            var i = lo
            while i > hi { out.append(a[i]); i += step }
        }
        return out
    }
}

/// Python exceptions raised by value operations; the interpreter adds the position.
enum PyError: Error {
    case type(String)          // TypeError
    case value(String)         // ValueError
    case zeroDivision(String)  // ZeroDivisionError
    case overflow(String)      // OverflowError
    case security(String)      // jinja2 SecurityError
    case undefined(String?)    // UndefinedError; nil: the interpreter names the operand
    case runtime(String)       // TemplateRuntimeError
    case raised(String)        // raise_exception(message)
    case limit(String)         // a TemplateLimits limit (not a Python exception)

    var message: String? {
        switch self {
        case .type(let m), .value(let m), .zeroDivision(let m), .overflow(let m), .security(let m), .runtime(let m), .raised(let m), .limit(let m): return m
        case .undefined(let m): return m
        }
    }
}
