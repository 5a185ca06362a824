import Foundation

/// jinja2's built-in tests (`x is defined`, `x is string`, …; jinja2/tests.py).
enum Tests {
    static let names: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "filter",
        "float", "ge", "greaterthan", "gt", "in", "integer", "iterable", "le", "lessthan", "lower", "lt", "mapping",
        "ne", "none", "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined", "upper",
        "==", "!=", "<", "<=", ">", ">=",
    ]

    static func apply(_ name: String, _ markupValue: Value, _ arguments: Arguments, _ interpreter: Interpreter) throws -> Bool {
        let value = markupValue.asPlain
        func other() throws -> Value { try Signature.bind(arguments, [("other", nil)], name: name)[0] }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": if case .none = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "number": return value.isNumber
        case "string": if case .string = value { return true } else { return false }
        case "mapping": if case .object = value { return true } else { return false }
        case "callable": if case .function = value { return true } else { return false }
        case "iterable", "sequence":
            switch value {
            case .string, .array, .tuple, .object, .undefined: return true
            case .iterable(let it):
                if name == "iterable" { return true }
                if case .range = it.kind { return true }
                return false
            default: return false
            }
        case "escaped": return false
        case "odd", "even":
            // jinja2: `value % 2 == 1` / `value % 2 == 0`.
            if value.isUndefined { throw PyError.undefined(nil) }
            return try Operators.binary(.mod, value, .int(2)) == .int(name == "odd" ? 1 : 0)
        case "divisibleby":
            let num = try Signature.bind(arguments, [("num", nil)], name: name)[0]
            if value.isUndefined { throw PyError.undefined(nil) }
            return try Operators.binary(.mod, value, num) == .int(0)
        case "eq", "equalto", "==": return value == (try other())
        case "ne", "!=": return value != (try other())
        case "lt", "lessthan", "<": return try Operators.compare(.lt, value, try other())
        case "le", "<=": return try Operators.compare(.le, value, try other())
        case "gt", "greaterthan", ">": return try Operators.compare(.gt, value, try other())
        case "ge", ">=": return try Operators.compare(.ge, value, try other())
        case "in":
            let seq = try Signature.bind(arguments, [("seq", nil)], name: name)[0]
            return try Access.contains(seq, value)
        case "sameas":
            let o = try other()
            switch (value, o) {
            case (.namespace(let a), .namespace(let b)): return a === b
            case (.function(let a), .function(let b)): return a === b
            case (.array, .array), (.tuple, .tuple), (.object, .object): return false
            case (.bool, .bool), (.none, .none), (.undefined, .undefined): return value == o
            case (.int(let a), .int(let b)): return a == b
            case (.string(let a), .string(let b)): return PyString.equal(a, b)
            default: return false
            }
        case "lower":
            let s = value.pythonString
            let cased = s.unicodeScalars.filter { $0.properties.isCased }
            return !cased.isEmpty && cased.allSatisfy { $0.properties.isLowercase }
        case "upper":
            let s = value.pythonString
            let cased = s.unicodeScalars.filter { $0.properties.isCased }
            return !cased.isEmpty && cased.allSatisfy { $0.properties.isUppercase }
        case "filter": return Filters.names.contains(value.pythonString)
        case "test": return names.contains(value.pythonString)
        default:
            throw PyError.runtime("No test named '\(name)' found.")
        }
    }
}

/// The globals transformers' environment provides: jinja2's `range`, `dict`,
/// `namespace`, plus `raise_exception` and `strftime_now`.
enum Globals {
    /// jinja2's sandbox refuses longer ranges (`MAX_RANGE`).
    static let maxRange = 100_000

    static func make() -> [String: Value] {
        var globals: [String: Value] = [:]
        globals["range"] = .function(Function(name: "range") { arguments, _ in
            guard arguments.keywords.isEmpty else { throw PyError.type("range() takes no keyword arguments") }
            let ints = try arguments.positional.map { v -> Int in
                guard let i = v.integer else { throw PyError.type("'\(v.pythonTypeName)' object cannot be interpreted as an integer") }
                return i
            }
            var (start, stop, step) = (0, 0, 1)
            switch ints.count {
            case 1: stop = ints[0]
            case 2: (start, stop) = (ints[0], ints[1])
            case 3: (start, stop, step) = (ints[0], ints[1], ints[2])
            default: throw PyError.type("range expected at most 3 arguments, got \(ints.count)")
            }
            guard step != 0 else { throw PyError.value("range() arg 3 must not be zero") }
            // Checked: `stop - start` alone may not fit in 64 bits (then it is too big anyway).
            let (span, spanOverflow) = step > 0 ? stop.subtractingReportingOverflow(start) : start.subtractingReportingOverflow(stop)
            let stride = step.magnitude
            let count = spanOverflow ? UInt.max : span <= 0 ? 0 : (UInt(span) - 1) / stride + 1
            if count > UInt(maxRange) {
                throw PyError.overflow("Range too big. The sandbox blocks ranges larger than MAX_RANGE (\(maxRange)).")
            }
            return .iterable(PyIterable(.range(start, stop, step), (0..<Int(count)).map { .int(start + $0 * step) }))
        })
        globals["dict"] = .function(Function(name: "dict") { arguments, interpreter in
            var object = Object()
            if let first = arguments.positional.first {
                guard arguments.positional.count == 1 else { throw PyError.type("dict expected at most 1 argument, got \(arguments.positional.count)") }
                switch first {
                case .object(let o): object = o
                default:
                    for pair in try Access.iterate(first) {
                        let kv = try Access.iterate(pair)
                        guard kv.count == 2 else { throw PyError.value("dictionary update sequence element has length \(kv.count); 2 is required") }
                        guard Object.isHashable(kv[0]) else { throw PyError.type("unhashable type: '\(kv[0].pythonTypeName)'") }
                        object[kv[0]] = kv[1]
                    }
                }
            }
            for (key, value) in arguments.keywords { object[key] = value }
            return try interpreter.checkedNesting(.object(object))
        })
        globals["namespace"] = .function(Function(name: "namespace") { arguments, interpreter in
            var attributes = Object()
            if let first = arguments.positional.first {
                guard case .object(let o) = first else { throw PyError.type("namespace() argument must be a mapping") }
                attributes = o
            }
            for (key, value) in arguments.keywords { attributes[key] = value }
            if let bad = attributes.keys.first(where: { $0.stringValue?.hasPrefix("_") ?? false }) {
                throw PyError.security("Chat templates cannot store underscore-prefixed attributes on a namespace, but got \(bad.pythonRepr). Please rename the attribute.")
            }
            return .namespace(interpreter.adopt(Namespace(attributes)))
        })
        globals["raise_exception"] = .function(Function(name: "raise_exception") { arguments, _ in
            let message = try Signature.bind(arguments, [("message", nil)], name: "raise_exception")[0]
            throw PyError.raised(message.pythonString)
        })
        globals["strftime_now"] = .function(Function(name: "strftime_now") { arguments, interpreter in
            let format = try Signature.bind(arguments, [("format", nil)], name: "strftime_now")[0]
            guard case .string(let f) = format.asPlain else { throw PyError.type("strftime() argument 1 must be str, not \(format.pythonTypeName)") }
            return .string(Strftime.format(f, interpreter.now, interpreter.timeZone))
        })
        return globals
    }
}
