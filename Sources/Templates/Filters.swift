import Foundation

/// jinja2's built-in filters (jinja2/filters.py, 3.1) with transformers' `tojson`.
/// Filters jinja2 has but no chat template uses (groupby, wordwrap, urlize, xmlattr,
/// striptags, filesizeformat, pprint, random, urlencode) are left out; a template using
/// one fails to parse with "No filter named …".
enum Filters {
    static let names: Set<String> = [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "first", "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list",
        "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select",
        "selectattr", "slice", "sort", "string", "sum", "title", "tojson", "trim", "truncate", "unique",
        "upper", "wordcount",
    ]

    /// The filters that keep a Markup value Markup (they work on `soft_str(value)`).
    static let markupPreserving: Set<String> = ["capitalize", "center", "indent", "lower", "string", "title", "trim", "upper"]

    static func apply(_ name: String, _ value: Value, _ arguments: Arguments, _ interpreter: Interpreter) throws -> Value {
        switch name {
        case "safe":
            _ = try Signature.bind(arguments, [], name: name)
            return .markup(value.pythonString)
        case "e", "escape":
            _ = try Signature.bind(arguments, [], name: name)
            return value.isMarkup ? value : .markup(htmlEscape(value.pythonString))
        case "forceescape":
            _ = try Signature.bind(arguments, [], name: name)
            return .markup(htmlEscape(value.pythonString))
        case "d", "default":
            let p = try Signature.bind(arguments, [("default_value", .string("")), ("boolean", .bool(false))], name: name)
            if value.isUndefined || (p[1].isTruthy && !value.isTruthy) { return p[0] }
            return value
        case "format" where value.isMarkup:
            if !arguments.keywords.isEmpty {
                if !arguments.positional.isEmpty { throw PyError.runtime("can't handle positional and keyword arguments at the same time") }
                return .markup(try Formatting.percent(value.pythonString, .object(Object(arguments.keywords)), escaping: true))
            }
            return .markup(try Formatting.percent(value.pythonString, .tuple(arguments.positional), escaping: true))
        case "dictsort" where value.isMarkup:
            throw PyError.runtime("'Markup' object has no attribute 'items'")
        default:
            let result = try plain(name, value.asPlain, arguments, interpreter)
            if value.isMarkup, markupPreserving.contains(name), case .string(let s) = result { return .markup(s) }
            return result
        }
    }

    private static func plain(_ name: String, _ value: Value, _ arguments: Arguments, _ interpreter: Interpreter) throws -> Value {
        func bind(_ parameters: [(String, Value?)]) throws -> [Value] {
            try Signature.bind(arguments, parameters, name: name)
        }
        switch name {
        case "abs":
            _ = try bind([])
            switch value {
            case .int(let i): return .int(i < 0 ? try i.checkedNegated() : i)
            case .double(let d): return .double(abs(d))
            case .bool(let b): return .int(b ? 1 : 0)
            default: throw PyError.type("bad operand type for abs(): '\(value.pythonTypeName)'")
            }
        case "attr":
            let p = try bind([("name", nil)])
            let attribute = p[0].pythonString
            if attribute.hasPrefix("_") { return .undefined }
            if Methods.exists(value, attribute) { return Methods.bound(value, attribute) }
            if case .namespace(let ns) = value { return ns.attributes[attribute] ?? .undefined }
            return .undefined
        case "batch":
            let p = try bind([("linecount", nil), ("fill_with", Value.none)])
            guard let count = p[0].integer, count > 0 else { throw PyError.value("batch size must be a positive integer") }
            if case .none = p[1] {} else { try Limit.items(count) }  // the last batch is filled up to `count`
            var batches: [Value] = [], current: [Value] = []
            for item in try Access.iterate(value) {
                if current.count == count { batches.append(.array(current)); current = [] }
                current.append(item)
            }
            if !current.isEmpty {
                if case .none = p[1] {} else { current += Array(repeating: p[1], count: count - current.count) }
                batches.append(.array(current))
            }
            return try interpreter.checkedNesting(generator("do_batch", batches))
        case "capitalize":
            _ = try bind([])
            return .string(PyString.capitalize(value.pythonString))
        case "center":
            let p = try bind([("width", .int(80))])
            let text = value.pythonString, width = p[0].integer ?? 80
            try Limit.padded(text, toWidth: width)
            return .string(PyString.center(text, width))
        case "count", "length":
            _ = try bind([])
            return .int(try Access.length(value))
        case "dictsort":
            let p = try bind([("case_sensitive", .bool(false)), ("by", .string("key")), ("reverse", .bool(false))])
            guard case .object(let o) = value else {
                if value.isUndefined { throw PyError.undefined(nil) }
                throw PyError.runtime("'\(value.pythonTypeName)' object has no attribute 'items'")
            }
            let byValue: Bool
            switch p[1].stringValue {
            case "key": byValue = false
            case "value": byValue = true
            default: throw PyError.runtime("You can only sort by either \"key\" or \"value\"")
            }
            let pairs = o.pairs.map { Value.tuple([$0.key, $0.value]) }
            _ = try interpreter.checkedNesting(.array(pairs))
            return .array(try sorted(pairs, reverse: p[2].isTruthy) { pair in
                guard case .tuple(let kv) = pair else { return pair }
                return p[0].isTruthy ? kv[byValue ? 1 : 0] : ignoreCase(kv[byValue ? 1 : 0])
            })
        case "first":
            _ = try bind([])
            if case .iterable(let it) = value { return it.next() ?? .undefined }
            return try Access.iterate(value).first ?? .undefined
        case "last":
            _ = try bind([])
            switch value {
            case .iterable(let it):
                guard let items = it.reversedItems() else { throw PyError.type("'\(it.typeName)' object is not reversible") }
                return items.first ?? .undefined
            case .string, .array, .tuple, .object, .undefined:
                return try Access.iterate(value).last ?? .undefined
            default:
                throw PyError.type("'\(value.pythonTypeName)' object is not reversible")
            }
        case "float":
            let p = try bind([("default", .double(0))])
            if value.isUndefined { throw PyError.undefined(nil) }
            return toFloat(value).map(Value.double) ?? p[0]
        case "int":
            let p = try bind([("default", .int(0)), ("base", .int(10))])
            if value.isUndefined { throw PyError.undefined(nil) }
            let base = p[1].integer ?? 10
            if case .string(let s) = value {
                guard base == 0 || (2...36).contains(base) else { throw PyError.value("int() base must be >= 2 and <= 36, or 0") }
                if let i = try parseInt(s, base: base) { return .int(i) }
            }
            if case .string = value {} else if let i = value.integer { return .int(i) }
            if let d = toFloat(value) {
                // jinja2 returns the default for NaN (int() raises ValueError); too large a
                // float would be a Python big int.
                if d.isNaN { return p[0] }
                return .int(try Int.checked(d))
            }
            return p[0]
        case "format":
            if !arguments.keywords.isEmpty {
                if !arguments.positional.isEmpty { throw PyError.runtime("can't handle positional and keyword arguments at the same time") }
                return .string(try Formatting.percent(value.pythonString, .object(Object(arguments.keywords))))
            }
            return .string(try Formatting.percent(value.pythonString, .tuple(arguments.positional)))
        case "indent":
            let p = try bind([("width", .int(4)), ("first", .bool(false)), ("blank", .bool(false))])
            if value.isUndefined { throw PyError.undefined(nil) }
            guard value.stringValue != nil else {
                // jinja2 does `s += "\n"` then `s.splitlines()`.
                if case .array = value { throw PyError.runtime("'list' object has no attribute 'splitlines'") }
                throw PyError.type("unsupported operand type(s) for +=: '\(value.pythonTypeName)' and 'str'")
            }
            if p[0].stringValue == nil { try Limit.string(p[0].integer ?? 4) }
            let indention = p[0].stringValue ?? String(repeating: " ", count: max(0, p[0].integer ?? 4))
            let lines = PyString.splitlines(value.pythonString + "\n")
            // Every line may get the indention, the first too.
            try Limit.repeated(indention.utf8.count, lines.count + 1, plus: value.pythonString.utf8.count + lines.count)
            var result: String
            if p[2].isTruthy {
                result = lines.joined(separator: "\n" + indention)
            } else {
                result = lines.first ?? ""
                if lines.count > 1 {
                    result += "\n" + lines.dropFirst().map { $0.isEmpty ? $0 : indention + $0 }.joined(separator: "\n")
                }
            }
            if p[1].isTruthy { result = indention + result }
            return .string(result)
        case "items":
            _ = try bind([])
            switch value {
            case .undefined: return generator("do_items", [])
            case .object(let o): return try interpreter.checkedNesting(generator("do_items", o.pairs.map { .tuple([$0.key, $0.value]) }))
            default: throw PyError.type("Can only get item pairs from a mapping.")
            }
        case "join":
            let p = try bind([("d", .string("")), ("attribute", Value.none)])
            var items = try Access.iterate(value)
            if case .none = p[1] {} else { items = try items.map { try attributeGetter(p[1])($0) } }
            return .string(try Limit.joined(items.map(\.pythonString), separator: p[0].pythonString))
        case "list":
            _ = try bind([])
            return .array(try Access.iterate(value))
        case "lower":
            _ = try bind([])
            return .string(PyString.lower(value.pythonString))
        case "upper":
            _ = try bind([])
            return .string(PyString.upper(value.pythonString))
        case "title":
            _ = try bind([])
            return .string(jinjaTitle(value.pythonString))
        case "map":
            guard value.isTruthy else { return generator("sync_do_map", []) }
            let items = try Access.iterate(value)
            if arguments.positional.isEmpty, let attribute = arguments.keywords.first(where: { $0.0 == "attribute" })?.1 {
                let defaultValue = arguments.keywords.first(where: { $0.0 == "default" })?.1 ?? .none
                if let extra = arguments.keywords.first(where: { $0.0 != "attribute" && $0.0 != "default" }) {
                    throw PyError.runtime("Unexpected keyword argument '\(extra.0)'")
                }
                let get = attributeGetter(attribute)
                return generator("sync_do_map", try items.map { item in
                    let v = try get(item)
                    if v.isUndefined, defaultValue != .none { return defaultValue }
                    return v
                })
            }
            guard let filterName = arguments.positional.first?.stringValue else { throw PyError.runtime("map requires a filter argument") }
            guard names.contains(filterName) else { throw PyError.runtime("No filter named '\(filterName)'.") }
            let rest = Arguments(positional: Array(arguments.positional.dropFirst()), keywords: arguments.keywords)
            return generator("sync_do_map", try items.map { try apply(filterName, $0, rest, interpreter) })
        case "max", "min":
            let p = try bind([("case_sensitive", .bool(false)), ("attribute", Value.none)])
            let items = try Access.iterate(value)
            guard var best = items.first else { return .undefined }
            let get = attributeGetter(p[1])
            func key(_ v: Value) throws -> Value { p[0].isTruthy ? try get(v) : ignoreCase(try get(v)) }
            var bestKey = try key(best)
            for item in items.dropFirst() {
                let k = try key(item)
                if name == "max" ? try Operators.less(bestKey, k) : try Operators.less(k, bestKey) {
                    best = item
                    bestKey = k
                }
            }
            return best
        case "reject", "select", "rejectattr", "selectattr":
            guard value.isTruthy else { return generator("select_or_reject", []) }
            let byAttribute = name.hasSuffix("attr")
            let keep = name.hasPrefix("select")
            var args = arguments.positional
            var get: (Value) throws -> Value = { $0 }
            if byAttribute {
                guard !args.isEmpty else { throw PyError.runtime("Missing parameter for attribute name") }
                get = attributeGetter(args.removeFirst())
            }
            let testName = args.isEmpty ? nil : args.removeFirst().pythonString
            if let testName, !Tests.names.contains(testName) { throw PyError.runtime("No test named '\(testName)'.") }
            let testArguments = Arguments(positional: args, keywords: arguments.keywords)
            return generator("select_or_reject", try Access.iterate(value).filter { item in
                let v = try get(item)
                let ok = try testName.map { try Tests.apply($0, v, testArguments, interpreter) } ?? v.isTruthy
                return ok == keep
            })
        case "replace":
            let p = try bind([("old", nil), ("new", nil), ("count", Value.none)])
            return .string(try PyString.replace(value.pythonString, p[0].pythonString, p[1].pythonString, p[2].integer ?? -1))
        case "reverse":
            _ = try bind([])
            switch value {
            case .string(let s): return .string(PyString.string(PyString.scalars(s).reversed()))
            case .array(let a): return .iterable(PyIterable(.listReverse, a.reversed()))
            case .tuple(let a): return .iterable(PyIterable(.generator("reversed"), a.reversed()))
            case .object(let o): return .iterable(PyIterable(.listReverse, o.keys.reversed()))
            case .iterable(let it): return .iterable(PyIterable(.listReverse, it.reversedItems() ?? it.consume().reversed()))
            default:
                do { return .array(try Access.iterate(value).reversed()) } catch PyError.type { throw PyError.runtime("argument must be iterable") }
            }
        case "round":
            let p = try bind([("precision", .int(0)), ("method", .string("common"))])
            let precision = p[0].integer ?? 0
            guard let method = p[1].stringValue, ["common", "ceil", "floor"].contains(method) else {
                throw PyError.runtime("method must be common, ceil or floor")
            }
            if method == "common" {
                switch value {
                case .int(let i):
                    if precision >= 0 { return .int(i) }
                    if precision < -19 { return .int(0) }  // 10**19 is beyond any Int
                    let m = pow(10, Double(-precision))
                    return .int(try Int.checked(Operators.roundHalfEven(Double(i) / m) * m))
                case .bool(let b): return .int(b ? 1 : 0)
                case .double(let d): return .double(roundDecimal(d, precision))
                default: throw PyError.type("type \(value.pythonTypeName) doesn't define __round__ method")
                }
            }
            guard let d = value.number else { throw PyError.type("must be real number, not \(value.pythonTypeName)") }
            let scale = pow(10, Double(precision))
            return .double((method == "ceil" ? (d * scale).rounded(.up) : (d * scale).rounded(.down)) / scale)
        case "string":
            _ = try bind([])
            return .string(value.pythonString)
        case "slice":
            let p = try bind([("slices", nil), ("fill_with", Value.none)])
            guard let slices = p[0].integer, slices > 0 else { throw PyError.value("slices must be a positive integer") }
            try Limit.items(slices)
            let seq = try Access.iterate(value)
            let perSlice = seq.count / slices, withExtra = seq.count % slices
            var offset = 0
            var result: [Value] = []
            for k in 0..<slices {
                let start = offset + k * perSlice
                if k < withExtra { offset += 1 }
                let end = offset + (k + 1) * perSlice
                var part = Array(seq[min(start, seq.count)..<min(end, seq.count)])
                if case .none = p[1] {} else if k >= withExtra { part.append(p[1]) }
                result.append(.array(part))
            }
            return try interpreter.checkedNesting(generator("do_slice", result))
        case "sort":
            let p = try bind([("reverse", .bool(false)), ("case_sensitive", .bool(false)), ("attribute", Value.none)])
            let get = attributeGetter(p[2])
            return .array(try sorted(try Access.iterate(value), reverse: p[0].isTruthy) { item in
                p[1].isTruthy ? try get(item) : ignoreCase(try get(item))
            })
        case "sum":
            let p = try bind([("attribute", Value.none), ("start", .int(0))])
            let get = attributeGetter(p[0])
            var total = p[1]
            for item in try Access.iterate(value) { total = try Operators.binary(.add, total, try get(item)) }
            return total
        case "tojson":
            // transformers: json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
            let p = try bind([("ensure_ascii", .bool(false)), ("indent", Value.none), ("separators", Value.none), ("sort_keys", .bool(false))])
            var indent: String?
            switch p[1] {
            case .none: indent = nil
            case .string(let s), .markup(let s): indent = s
            default:
                guard let n = p[1].integer else { throw PyError.type("indent must be an int or a string") }
                try Limit.string(n)
                indent = String(repeating: " ", count: max(0, n))
            }
            var separators: (String, String)?
            switch p[2] {
            case .none: separators = nil
            case .array(let a) where a.count == 2, .tuple(let a) where a.count == 2:
                guard let item = a[0].stringValue, let key = a[1].stringValue else { throw PyError.type("separators must be strings") }
                separators = (item, key)
            default: throw PyError.value("separators must be a (item_separator, key_separator) pair")
            }
            let writer = JSONWriter(ensureASCII: p[0].isTruthy, indent: indent, separators: separators, sortKeys: p[3].isTruthy)
            return .string(try writer.dumps(value))
        case "trim":
            let p = try bind([("chars", Value.none)])
            return .string(PyString.strip(value.pythonString, p[0].stringValue))
        case "truncate":
            let p = try bind([("length", .int(255)), ("killwords", .bool(false)), ("end", .string("...")), ("leeway", Value.none)])
            // jinja2 measures the value itself: only a str (or a short list) gets through.
            guard value.stringValue != nil else {
                let count = try Access.length(value)
                if count <= (p[0].integer ?? 255).addingReportingOverflow(p[3].integer ?? 5).partialValue { return value }
                throw PyError.runtime("'\(value.pythonTypeName)' object has no attribute 'rsplit'")
            }
            let s = PyString.scalars(value.pythonString)
            let length = p[0].integer ?? 255
            let end = p[2].pythonString
            let leeway = p[3].integer ?? 5
            guard length >= PyString.length(end) else { throw PyError.runtime("expected length >= \(PyString.length(end)), got \(length)") }
            let (limit, overflow) = length.addingReportingOverflow(leeway)
            if overflow ? leeway > 0 : s.count <= limit { return .string(PyString.string(s)) }
            let head = PyString.string(s.prefix(length - PyString.length(end)))
            if p[1].isTruthy { return .string(head + end) }
            return .string((try PyString.rsplit(head, " ", 1)).first! + end)
        case "unique":
            let p = try bind([("case_sensitive", .bool(false)), ("attribute", Value.none)])
            let get = attributeGetter(p[1])
            // jinja2 keeps the keys in a set: linear time, and unhashable keys fail.
            var seen = Object()
            var result: [Value] = []
            for item in try Access.iterate(value) {
                let key = p[0].isTruthy ? try get(item) : ignoreCase(try get(item))
                guard Object.isHashable(key) else { throw PyError.type("unhashable type: '\(key.pythonTypeName)'") }
                if seen[key] == nil {
                    seen[key] = .bool(true)
                    result.append(item)
                }
            }
            return generator("do_unique", result)
        case "wordcount":
            _ = try bind([])
            var count = 0, inWord = false
            for c in value.pythonString.unicodeScalars {
                let w = PyString.isWord(c)
                if w && !inWord { count += 1 }
                inWord = w
            }
            return .int(count)
        default:
            throw PyError.runtime("No filter named '\(name)' found.")
        }
    }

    // MARK: Helpers

    /// What jinja2's generator filters (map, select, unique, batch, …) return.
    static func generator(_ name: String, _ items: [Value]) -> Value { .iterable(PyIterable(.generator(name), items)) }

    /// jinja2's `make_attrgetter`: `"a.b.0"` looks up `a`, then `b`, then item 0,
    /// each with `getitem` (item first, then attribute). None: the item itself.
    static func attributeGetter(_ attribute: Value) -> (Value) throws -> Value {
        let parts: [Value]
        switch attribute {
        case .none: return { $0 }
        case .string(let s): parts = s.split(separator: ".", omittingEmptySubsequences: false).map { Int($0).map(Value.int) ?? .string(String($0)) }
        default: parts = [attribute]
        }
        return { item in
            var v = item
            for part in parts {
                if v.isUndefined { throw PyError.undefined("undefined value has no attribute \(part.pythonRepr)") }
                v = Access.item(v, part)
            }
            return v
        }
    }

    /// jinja2's `ignore_case`: strings compared lower-cased.
    static func ignoreCase(_ v: Value) -> Value {
        if case .string(let s) = v.asPlain { return .string(PyString.lower(s)) }
        return v
    }

    /// Python's stable `sorted(items, key=key, reverse=reverse)`.
    static func sorted(_ items: [Value], reverse: Bool, key: (Value) throws -> Value) throws -> [Value] {
        let keyed = try items.enumerated().map { ($0.offset, try key($0.element), $0.element) }
        let order = try keyed.sorted { a, b in
            if try Operators.less(reverse ? b.1 : a.1, reverse ? a.1 : b.1) { return true }
            if try Operators.less(reverse ? a.1 : b.1, reverse ? b.1 : a.1) { return false }
            return a.0 < b.0
        }
        return order.map(\.2)
    }

    static func htmlEscape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// jinja2's `title` filter: upper-case the first character of each word, where
    /// words start after runs of spaces, '-', '(', '{', '[' or '<'.
    static func jinjaTitle(_ s: String) -> String {
        var out = ""
        var atWordStart = true
        var previousWasSeparator = false
        for c in s.unicodeScalars {
            let separator = PyString.isSpace(c) || "-({[<".unicodeScalars.contains(c)
            if separator != previousWasSeparator { atWordStart = true }
            out += atWordStart ? PyString.upper(String(c)) : PyString.lower(String(c))
            atWordStart = false
            previousWasSeparator = separator
        }
        return out
    }

    /// Python's `int(s, base)`: whitespace around, sign, underscores between digits.
    static func parseInt(_ s: String, base: Int) throws -> Int? {
        var t = PyString.strip(s, nil)
        var negative = false
        if let f = t.first, f == "+" || f == "-" { negative = f == "-"; t.removeFirst() }
        var radix = base
        let lower = t.lowercased()
        for (prefix, r) in [("0x", 16), ("0o", 8), ("0b", 2)] where lower.hasPrefix(prefix) && (base == r || base == 0) {
            t = String(t.dropFirst(2))
            if t.hasPrefix("_") { t.removeFirst() }
            radix = r
        }
        if radix == 0 { radix = 10 }
        guard !t.isEmpty, !t.hasPrefix("_"), !t.hasSuffix("_"), !t.contains("__"), !t.hasPrefix("+"), !t.hasPrefix("-") else { return nil }
        let digits = t.replacingOccurrences(of: "_", with: "")
        guard let magnitude = UInt64(digits, radix: radix) else {
            // All digits but too many: Python would make a big int.
            if digits.allSatisfy({ Int(String($0), radix: radix) != nil }) {
                throw PyError.overflow(Limit.integerTooLarge)
            }
            return nil
        }
        if negative {
            guard magnitude <= UInt64(Int.max) + 1 else { throw PyError.overflow(Limit.integerTooLarge) }
            return magnitude == UInt64(Int.max) + 1 ? Int.min : -Int(magnitude)
        }
        guard magnitude <= UInt64(Int.max) else { throw PyError.overflow(Limit.integerTooLarge) }
        return Int(magnitude)
    }

    /// Python's `float(value)` (nil for a TypeError or ValueError).
    static func toFloat(_ value: Value) -> Double? {
        switch value {
        case .int, .double, .bool: return value.number
        case .string(let s):
            let t = PyString.strip(s, nil).lowercased().replacingOccurrences(of: "_", with: "")
            switch t {
            case "inf", "+inf", "infinity", "+infinity": return .infinity
            case "-inf", "-infinity": return -.infinity
            case "nan", "+nan", "-nan": return .nan
            default:
                guard !t.isEmpty, t.unicodeScalars.allSatisfy({ "0123456789.e+-".unicodeScalars.contains($0) }) else { return nil }
                return Double(t)
            }
        default: return nil
        }
    }

    /// Python's `round(x, n)` for a float: correctly rounded to n decimals.
    static func roundDecimal(_ x: Double, _ n: Int) -> Double {
        guard x.isFinite else { return x }
        if n >= 0 {
            return Double(String(format: "%.\(min(n, 330))f", x)) ?? x
        }
        if n < -330 { return x * 0 }  // Python: 0.0 with the sign of x
        let m = pow(10, Double(-n))
        return Operators.roundHalfEven(x / m) * m
    }
}

extension Operators {
    static func roundHalfEven(_ x: Double) -> Double { x.rounded(.toNearestOrEven) }
}
