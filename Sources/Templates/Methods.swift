import Foundation

/// Python methods of str, list and dict that templates call (`content.strip()`,
/// `message.get('x')`, `tool.items()` …). The ImmutableSandboxedEnvironment refuses the
/// methods that modify a list or dict: calling them is a SecurityError, as in transformers.
enum Methods {
    static let stringMethods: Set<String> = [
        "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith",
        "upper", "lower", "title", "capitalize", "casefold", "swapcase", "replace", "format", "find", "rfind",
        "index", "rindex", "count", "join", "isdigit", "isdecimal", "isnumeric", "isalpha", "isalnum",
        "isspace", "islower", "isupper", "istitle", "zfill", "center", "ljust", "rjust", "partition",
        "rpartition", "removeprefix", "removesuffix",
    ]
    static let listMethods: Set<String> = ["index", "count", "copy"]
    static let dictMethods: Set<String> = ["get", "items", "keys", "values", "copy"]
    static let unsafeListMethods: Set<String> = ["append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"]
    static let unsafeDictMethods: Set<String> = ["clear", "pop", "popitem", "setdefault", "update"]

    static func exists(_ object: Value, _ name: String) -> Bool {
        switch object {
        case .string: return stringMethods.contains(name)
        case .array: return listMethods.contains(name)
        case .tuple: return name == "index" || name == "count"
        case .object: return dictMethods.contains(name)
        default: return false
        }
    }

    /// The method as a value (`x = s.strip` then `x()`).
    static func bound(_ object: Value, _ name: String) -> Value {
        .function(Function(name: name, captured: { [object] }) { arguments, interpreter in
            try call(object, name, arguments, interpreter) ?? .undefined
        })
    }

    /// Calls `object.name(arguments)`; nil when `object` has no such method.
    static func call(_ object: Value, _ name: String, _ arguments: Arguments, _ interpreter: Interpreter) throws -> Value? {
        switch object {
        case .string(let s):
            guard stringMethods.contains(name) else { return nil }
            return try stringMethod(s, name, arguments)
        case .markup(let s):
            guard stringMethods.contains(name) else { return nil }
            return try markupMethod(s, name, arguments)
        case .tuple(let a):
            guard listMethods.contains(name), name != "copy" else { return nil }
            return try call(.array(a), name, arguments, interpreter)
        case .array(let a):
            if unsafeListMethods.contains(name) { throw PyError.security("access to attribute '\(name)' of 'list' object is unsafe.") }
            guard listMethods.contains(name) else { return nil }
            switch name {
            case "copy": return .array(a)
            case "count":
                let p = try Signature.bind(arguments, [("x", nil)], name: "count")
                return .int(a.filter { $0 == p[0] }.count)
            default:
                let p = try Signature.bind(arguments, [("x", nil)], name: "index")
                guard let i = a.firstIndex(of: p[0]) else { throw PyError.value("\(p[0].pythonRepr) is not in list") }
                return .int(i)
            }
        case .object(let o):
            if unsafeDictMethods.contains(name) { throw PyError.security("access to attribute '\(name)' of 'dict' object is unsafe.") }
            guard dictMethods.contains(name) else { return nil }
            switch name {
            case "get":
                let p = try Signature.bind(arguments, [("key", nil), ("default", Value.none)], name: "get")
                return o[p[0]] ?? p[1]
            case "items":
                _ = try Signature.bind(arguments, [], name: "items")
                return try interpreter.checkedNesting(.iterable(PyIterable(.dictItems, o.pairs.map { .tuple([$0.key, $0.value]) })))
            case "keys": _ = try Signature.bind(arguments, [], name: "keys"); return .iterable(PyIterable(.dictKeys, o.keys))
            case "values": _ = try Signature.bind(arguments, [], name: "values"); return .iterable(PyIterable(.dictValues, o.values))
            default: return .object(o)
            }
        default:
            return nil
        }
    }

    private static func optionalString(_ v: Value, _ method: String) throws -> String? {
        if case .none = v { return nil }
        guard let s = v.stringValue else { throw PyError.type("\(method) arg must be None or str") }
        return s
    }

    private static func requireString(_ v: Value, _ what: String) throws -> String {
        guard let s = v.stringValue else { throw PyError.type("\(what) must be str, not \(v.pythonTypeName)") }
        return s
    }

    /// markupsafe wraps these str methods to escape string arguments and return Markup.
    static let markupPreserving: Set<String> = [
        "capitalize", "title", "lower", "upper", "replace", "ljust", "rjust", "lstrip", "rstrip", "center", "strip",
        "swapcase", "zfill", "removeprefix", "removesuffix", "split", "rsplit", "splitlines", "partition", "rpartition",
    ]

    private static func markupMethod(_ s: String, _ name: String, _ arguments: Arguments) throws -> Value {
        func escape(_ v: Value) -> Value {
            if case .string(let t) = v { return .string(Filters.htmlEscape(t)) }
            return v.asPlain
        }
        func wrap(_ v: Value) -> Value {
            switch v {
            case .string(let t): return .markup(t)
            case .array(let a): return .array(a.map(wrap))
            case .tuple(let a): return .tuple(a.map(wrap))
            default: return v
            }
        }
        switch name {
        case "join":
            let p = try Signature.bind(arguments, [("iterable", nil)], name: name)
            let parts = try Access.iterate(p[0]).map { v -> String in
                guard let t = v.stringValue else { throw PyError.type("expected str instance, \(v.pythonTypeName) found") }
                return v.isMarkup ? t : Filters.htmlEscape(t)
            }
            return .markup(try Limit.joined(parts, separator: s))
        case "format":
            return .markup(try Formatting.strFormat(s, arguments, escaping: true))
        default:
            guard markupPreserving.contains(name) else { return try stringMethod(s, name, arguments) }
            let escaped = Arguments(positional: arguments.positional.map(escape), keywords: arguments.keywords.map { ($0.0, escape($0.1)) })
            return wrap(try stringMethod(s, name, escaped))
        }
    }

    private static func integer(_ v: Value, _ what: String) throws -> Int {
        guard let i = v.integer else { throw PyError.type("'\(v.pythonTypeName)' object cannot be interpreted as an integer") }
        return i
    }

    /// Python's optional `start, end` arguments (negative from the end, clamped).
    private static func range(_ count: Int, _ start: Value, _ end: Value) throws -> (Int, Int) {
        func clamp(_ v: Value, _ d: Int) throws -> Int {
            if case .none = v { return d }
            var i = try integer(v, "index")
            if i < 0 { i = max(0, i + count) }
            return min(i, count)
        }
        return (try clamp(start, 0), try clamp(end, count))
    }

    private static func stringMethod(_ s: String, _ name: String, _ arguments: Arguments) throws -> Value {
        switch name {
        case "strip", "lstrip", "rstrip":
            let p = try Signature.bind(arguments, [("chars", Value.none)], name: name)
            let chars = try optionalString(p[0], name)
            return .string(PyString.strip(s, chars, left: name != "rstrip", right: name != "lstrip"))
        case "split", "rsplit":
            let p = try Signature.bind(arguments, [("sep", Value.none), ("maxsplit", .int(-1))], name: name)
            let sep = try optionalString(p[0], name)
            let max = try integer(p[1], "maxsplit")
            let parts = name == "split" ? try PyString.split(s, sep, max) : try PyString.rsplit(s, sep, max)
            return .array(parts.map { .string($0) })
        case "splitlines":
            let p = try Signature.bind(arguments, [("keepends", .bool(false))], name: name)
            return .array(PyString.splitlines(s, keepends: p[0].isTruthy).map { .string($0) })
        case "startswith", "endswith":
            let p = try Signature.bind(arguments, [("prefix", nil), ("start", Value.none), ("end", Value.none)], name: name)
            let candidates: [Value]
            if case .tuple(let a) = p[0] { candidates = a } else { candidates = [p[0]] }
            let a = PyString.scalars(s)
            let (lo, hi) = try range(a.count, p[1], p[2])
            let sub = lo <= hi ? Array(a[lo..<hi]) : []
            for c in candidates {
                let x = PyString.scalars(try requireString(c, "\(name) first arg"))
                if lo > a.count || lo > hi && !x.isEmpty { continue }
                if x.count <= sub.count && (name == "startswith" ? Array(sub.prefix(x.count)) == x : Array(sub.suffix(x.count)) == x) {
                    return .bool(true)
                }
            }
            return .bool(false)
        case "upper": return .string(PyString.upper(s))
        case "lower", "casefold": return .string(PyString.lower(s))
        case "title": return .string(PyString.title(s))
        case "capitalize": return .string(PyString.capitalize(s))
        case "swapcase":
            return .string(s.unicodeScalars.map { c in
                c.properties.isUppercase ? c.properties.lowercaseMapping : c.properties.isLowercase ? c.properties.uppercaseMapping : String(c)
            }.joined())
        case "replace":
            let p = try Signature.bind(arguments, [("old", nil), ("new", nil), ("count", .int(-1))], name: name)
            return .string(try PyString.replace(s, try requireString(p[0], "replace() argument 1"),
                                            try requireString(p[1], "replace() argument 2"), try integer(p[2], "count")))
        case "format":
            return .string(try Formatting.strFormat(s, arguments))
        case "find", "rfind", "index", "rindex", "count":
            let p = try Signature.bind(arguments, [("sub", nil), ("start", Value.none), ("end", Value.none)], name: name)
            let a = PyString.scalars(s), x = PyString.scalars(try requireString(p[0], "must be str"))
            let (lo, hi) = try range(a.count, p[1], p[2])
            if name == "count" {
                return .int(lo <= hi ? PyString.count(PyString.string(a[lo..<hi]), PyString.string(x)) : 0)
            }
            let found = name.hasPrefix("r") ? PyString.rfind(a, x, from: lo, to: hi) : PyString.find(a, x, from: lo, to: hi)
            if found < 0 && name.hasSuffix("index") { throw PyError.value("substring not found") }
            return .int(found)
        case "join":
            let p = try Signature.bind(arguments, [("iterable", nil)], name: name)
            let parts = try Access.iterate(p[0]).enumerated().map { k, v -> String in
                guard let t = v.stringValue else {
                    throw PyError.type("sequence item \(k): expected str instance, \(v.pythonTypeName) found")
                }
                return t
            }
            return .string(try Limit.joined(parts, separator: s))
        case "isdigit", "isdecimal", "isnumeric":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy {
                name == "isnumeric" ? $0.properties.numericType != nil : $0.properties.numericType == .decimal || (name == "isdigit" && $0.properties.numericType == .digit)
            })
        case "isalpha": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic })
        case "isalnum": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        case "isspace": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(PyString.isSpace))
        case "islower", "isupper":
            let cased = s.unicodeScalars.filter { $0.properties.isCased }
            let ok = cased.allSatisfy { name == "islower" ? $0.properties.isLowercase : $0.properties.isUppercase }
            return .bool(!cased.isEmpty && ok)
        case "istitle": return .bool(!s.isEmpty && PyString.title(s) == s && s.unicodeScalars.contains { $0.properties.isCased })
        case "zfill":
            let p = try Signature.bind(arguments, [("width", nil)], name: name)
            let width = try integer(p[0], "width")
            let n = PyString.length(s)
            guard width > n else { return .string(s) }
            try Limit.padded(s, toWidth: width)
            let zeros = String(repeating: "0", count: width - n)
            if let first = s.first, first == "+" || first == "-" { return .string(String(first) + zeros + s.dropFirst()) }
            return .string(zeros + s)
        case "center", "ljust", "rjust":
            let p = try Signature.bind(arguments, [("width", nil), ("fillchar", .string(" "))], name: name)
            let width = try integer(p[0], "width")
            let fillText = try requireString(p[1], "fill character")
            guard fillText.unicodeScalars.count == 1, let fill = fillText.unicodeScalars.first else {
                throw PyError.type("The fill character must be exactly one character long")
            }
            let n = PyString.length(s)
            try Limit.padded(s, toWidth: width, fillBytes: String(fill).utf8.count)
            if name == "center" { return .string(PyString.center(s, width, fill)) }
            let padding = String(repeating: String(fill), count: max(0, width - n))
            return .string(name == "ljust" ? s + padding : padding + s)
        case "partition", "rpartition":
            let p = try Signature.bind(arguments, [("sep", nil)], name: name)
            let sep = PyString.scalars(try requireString(p[0], "sep"))
            guard !sep.isEmpty else { throw PyError.value("empty separator") }
            let a = PyString.scalars(s)
            let i = name == "partition" ? PyString.find(a, sep) : PyString.rfind(a, sep)
            if i < 0 {
                return name == "partition" ? .tuple([.string(s), "", ""]) : .tuple(["", "", .string(s)])
            }
            return .tuple([.string(PyString.string(a[..<i])), .string(PyString.string(sep)), .string(PyString.string(a[(i + sep.count)...]))])
        case "removeprefix":
            let p = try Signature.bind(arguments, [("prefix", nil)], name: name)
            let x = try requireString(p[0], "prefix")
            return .string(PyString.hasPrefix(s, x) ? PyString.string(PyString.scalars(s).dropFirst(PyString.length(x))) : s)
        case "removesuffix":
            let p = try Signature.bind(arguments, [("suffix", nil)], name: name)
            let x = try requireString(p[0], "suffix")
            return .string(PyString.hasSuffix(s, x) && !x.isEmpty ? PyString.string(PyString.scalars(s).dropLast(PyString.length(x))) : s)
        default:
            throw PyError.runtime("str has no method \(name)")
        }
    }
}

/// Binding of call arguments to a Python signature.
enum Signature {
    /// Parameters as (name, default); a nil default means required. Returns the
    /// argument values in parameter order.
    static func bind(_ arguments: Arguments, _ parameters: [(String, Value?)], name: String) throws -> [Value] {
        guard arguments.positional.count <= parameters.count else {
            throw PyError.type("\(name)() takes at most \(parameters.count) argument\(parameters.count == 1 ? "" : "s") (\(arguments.positional.count) given)")
        }
        var values: [Value?] = arguments.positional.map { $0 } + Array(repeating: nil, count: parameters.count - arguments.positional.count)
        for (key, value) in arguments.keywords {
            guard let index = parameters.firstIndex(where: { $0.0 == key }) else {
                throw PyError.type("\(name)() got an unexpected keyword argument '\(key)'")
            }
            if values[index] != nil { throw PyError.type("\(name)() got multiple values for argument '\(key)'") }
            values[index] = value
        }
        return try zip(parameters, values).map { parameter, value in
            guard let v = value ?? parameter.1 else {
                throw PyError.type("\(name)() missing required argument '\(parameter.0)'")
            }
            return v
        }
    }
}
