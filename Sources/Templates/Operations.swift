import Foundation

/// Attribute and item lookup, slicing and iteration, as jinja2's sandboxed
/// `Environment.getattr` / `getitem` do them on Python objects.
enum Access {
    /// `obj.name`: a Python attribute first (so `message.items` is the dict method),
    /// then the item; undefined when neither exists. The sandbox hides dunder attributes
    /// and the methods that would change a list or dict (they shadow items of the same
    /// name, as in jinja2's ImmutableSandboxedEnvironment).
    static func attribute(_ object: Value, _ name: String) -> Value {
        if name.hasPrefix("__") { return .undefined }
        if Methods.exists(object.asPlain, name) { return Methods.bound(object, name) }
        if case .object = object, Methods.unsafeDictMethods.contains(name) { return .undefined }
        switch object {
        case .object(let o): return o[name] ?? .undefined
        case .namespace(let ns): return ns.attributes[name] ?? .undefined
        case .function(let f): return f.attributes?(name) ?? .undefined
        default: return .undefined
        }
    }

    /// `obj[key]`: the item first, then (for a string key) the attribute.
    static func item(_ markupObject: Value, _ markupKey: Value) -> Value {
        let object = markupObject.asPlain, key = markupKey.asPlain
        switch (object, key) {
        case (.object(let o), _):
            if let v = o[key] { return v }
        case (.array(let a), _), (.tuple(let a), _):
            if let i = key.integer {
                let j = i < 0 ? i + a.count : i
                if j >= 0 && j < a.count { return a[j] }
                return .undefined
            }
        case (.string(let s), _):
            if let i = key.integer {
                let scalars = PyString.scalars(s)
                let j = i < 0 ? i + scalars.count : i
                if j >= 0 && j < scalars.count { return .string(String(scalars[j])) }
                return .undefined
            }
        case (.namespace(let ns), .string(let k)):
            return ns.attributes[k] ?? .undefined
        case (.iterable(let it), _):
            if let i = key.integer, let v = it.item(i) { return v }
        default:
            break
        }
        if case .string(let k) = key { return attribute(markupObject, k) }
        return .undefined
    }

    /// `obj[a:b:c]`: jinja2 compiles slices to plain Python subscription (no fallback
    /// to undefined), so slicing what is not a sequence is a TypeError.
    static func slice(_ object: Value, _ start: Int?, _ stop: Int?, _ step: Int?) throws -> Value {
        switch object.asPlain {
        case .array(let a): return .array(try PyString.slice(a, start, stop, step))
        case .tuple(let a): return .tuple(try PyString.slice(a, start, stop, step))
        case .string(let s): return .string(PyString.string(try PyString.slice(PyString.scalars(s), start, stop, step)))
        case .undefined: throw PyError.undefined(nil)
        case .object: throw PyError.type("unhashable type: 'slice'")
        case .iterable(let it):
            if case .range = it.kind { return .array(try PyString.slice(it.consume(), start, stop, step)) }
            throw PyError.type("'\(object.pythonTypeName)' object is not subscriptable")
        default: throw PyError.type("'\(object.pythonTypeName)' object is not subscriptable")
        }
    }

    /// Python's `iter(value)` collected: characters of a string, keys of a dict,
    /// nothing for undefined.
    static func iterate(_ value: Value) throws -> [Value] {
        switch value.asPlain {
        case .array(let a), .tuple(let a): return a
        case .string(let s):
            if s.utf8.count > TemplateLimits.current.maxItems { try Limit.items(s.unicodeScalars.count) }
            return s.unicodeScalars.map { .string(String($0)) }
        case .object(let o): return o.keys
        case .iterable(let i): return i.consume()
        case .undefined: return []
        default: throw PyError.type("'\(value.pythonTypeName)' object is not iterable")
        }
    }

    /// `len(value)`.
    static func length(_ value: Value) throws -> Int {
        switch value.asPlain {
        case .string(let s): return PyString.length(s)
        case .array(let a), .tuple(let a): return a.count
        case .object(let o): return o.count
        case .iterable(let i) where i.count != nil: return i.count!
        case .undefined: return 0
        default: throw PyError.type("object of type '\(value.pythonTypeName)' has no len()")
        }
    }

    /// Python's `in`.
    static func contains(_ markupContainer: Value, _ markupItem: Value) throws -> Bool {
        let container = markupContainer.asPlain, item = markupItem.asPlain
        switch container {
        case .string(let s):
            guard case .string(let needle) = item else {
                if item.isUndefined { throw PyError.undefined(nil) }
                throw PyError.type("'in <string>' requires string as left operand, not \(item.pythonTypeName)")
            }
            return PyString.contains(s, needle)
        case .array(let a), .tuple(let a): return a.contains(item)
        case .object(let o):
            guard Object.isHashable(item) else { throw PyError.type("unhashable type: '\(item.pythonTypeName)'") }
            return o[item] != nil
        case .iterable(let it):
            if it.isReusable { return it.consume().contains(item) }
            while let next = it.next() {
                if next == item { return true }
            }
            return false
        case .undefined: return false
        default: throw PyError.type("argument of type '\(container.pythonTypeName)' is not iterable")
        }
    }
}

/// Python's arithmetic and comparison operators.
enum Operators {
    static func typeError(_ op: String, _ a: Value, _ b: Value) -> PyError {
        .type("unsupported operand type(s) for \(op): '\(a.pythonTypeName)' and '\(b.pythonTypeName)'")
    }

    static func binary(_ op: Expr.BinaryOp, _ markupA: Value, _ markupB: Value) throws -> Value {
        if markupA.isMarkup || markupB.isMarkup {
            if let result = try markupBinary(op, markupA, markupB) { return result }
        }
        let a = markupA.asPlain, b = markupB.asPlain
        switch op {
        case .add:
            switch (a, b) {
            case (.string(let x), .string(let y)):
                try Limit.string(x.utf8.count + y.utf8.count)
                return .string(x + y)
            case (.array(let x), .array(let y)):
                try Limit.items(x.count + y.count)
                return .array(x + y)
            case (.tuple(let x), .tuple(let y)):
                try Limit.items(x.count + y.count)
                return .tuple(x + y)
            case (.tuple, _): throw PyError.type("can only concatenate tuple (not \"\(b.pythonTypeName)\") to tuple")
            case (.string, _): throw PyError.type("can only concatenate str (not \"\(b.pythonTypeName)\") to str")
            case (.array, _): throw PyError.type("can only concatenate list (not \"\(b.pythonTypeName)\") to list")
            default: return try arithmetic(op, a, b)
            }
        case .mul:
            if case .string(let s) = a, let n = b.integer { return .string(try repeated(s, n)) }
            if case .string(let s) = b, let n = a.integer { return .string(try repeated(s, n)) }
            if case .array(let x) = a, let n = b.integer { return .array(try repeated(x, n)) }
            if case .array(let x) = b, let n = a.integer { return .array(try repeated(x, n)) }
            if case .tuple(let x) = a, let n = b.integer { return .tuple(try repeated(x, n)) }
            if case .tuple(let x) = b, let n = a.integer { return .tuple(try repeated(x, n)) }
            for (sequence, other) in [(a, b), (b, a)] where sequence.sequenceItems != nil || sequence.stringValue != nil {
                if other.sequenceItems != nil || other.stringValue != nil || other.isNumber {
                    throw PyError.type("can't multiply sequence by non-int of type '\(other.pythonTypeName)'")
                }
            }
            return try arithmetic(op, a, b)
        case .mod:
            if case .string(let format) = a { return .string(try Formatting.percent(format, b)) }
            return try arithmetic(op, a, b)
        default:
            return try arithmetic(op, a, b)
        }
    }

    /// markupsafe's `Markup.__add__`, `__radd__`, `__mul__`, `__mod__`: the plain operand is escaped.
    private static func markupBinary(_ op: Expr.BinaryOp, _ a: Value, _ b: Value) throws -> Value? {
        func escaped(_ v: Value) -> String { v.isMarkup ? v.stringValue! : Filters.htmlEscape(v.stringValue!) }
        switch op {
        case .add:
            guard let x = a.stringValue, let y = b.stringValue else { throw typeError("+", a, b) }
            let (left, right) = a.isMarkup ? (x, escaped(b)) : (escaped(a), y)
            try Limit.string(left.utf8.count + right.utf8.count)
            return .markup(left + right)
        case .mul:
            if case .markup(let s) = a, let n = b.integer { return .markup(try repeated(s, n)) }
            if case .markup(let s) = b, let n = a.integer { return .markup(try repeated(s, n)) }
            return nil
        case .mod:
            if case .markup(let format) = a { return .markup(try Formatting.percent(format, b, escaping: true)) }
            return nil
        default:
            return nil
        }
    }

    /// `list * n`, refused before allocating past `maxItems`.
    private static func repeated(_ a: [Value], _ n: Int) throws -> [Value] {
        guard n > 0, !a.isEmpty else { return [] }
        try Limit.repeatedItems(a.count, n)
        return Array([[Value]](repeating: a, count: n).joined())
    }

    /// `str * n`, refused before allocating past `maxStringBytes`.
    private static func repeated(_ s: String, _ n: Int) throws -> String {
        guard n > 0, !s.isEmpty else { return "" }
        try Limit.repeated(s.utf8.count, n)
        return String(repeating: s, count: n)
    }

    private static func arithmetic(_ op: Expr.BinaryOp, _ a: Value, _ b: Value) throws -> Value {
        if let x = a.integer, let y = b.integer {
            switch op {
            case .add, .sub, .mul:
                return .int(op == .add ? try x.checkedAdding(y) : op == .sub ? try x.checkedSubtracting(y) : try x.checkedMultiplied(by: y))
            case .div:
                guard y != 0 else { throw PyError.zeroDivision("division by zero") }
                return .double(Double(x) / Double(y))
            case .floorDiv:
                guard y != 0 else { throw PyError.zeroDivision("integer division or modulo by zero") }
                if y == -1 { return .int(try x.checkedNegated()) }  // Int.min / -1 overflows
                let q = x / y
                return .int((x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q)
            case .mod:
                guard y != 0 else { throw PyError.zeroDivision("integer modulo by zero") }
                if y == -1 { return .int(0) }  // Int.min % -1 traps in Swift
                let r = x % y
                return .int(r != 0 && (r < 0) != (y < 0) ? r + y : r)
            case .pow:
                if y < 0 { return .double(pow(Double(x), Double(y))) }
                var result = 1, base = x, e = y
                while e > 0 {
                    if e & 1 == 1 { result = try result.checkedMultiplied(by: base) }
                    e >>= 1
                    if e > 0 { base = try base.checkedMultiplied(by: base) }
                }
                return .int(result)
            }
        }
        guard let x = a.number, let y = b.number else { throw typeError(op == .pow ? "** or pow()" : op.rawValue, a, b) }
        switch op {
        case .add: return .double(x + y)
        case .sub: return .double(x - y)
        case .mul: return .double(x * y)
        case .div:
            guard y != 0 else { throw PyError.zeroDivision("float division by zero") }
            return .double(x / y)
        case .floorDiv:
            guard y != 0 else { throw PyError.zeroDivision("float floor division by zero") }
            return .double(floorMod(x, y).0)
        case .mod:
            guard y != 0 else { throw PyError.zeroDivision("float modulo") }
            return .double(floorMod(x, y).1)
        case .pow:
            return .double(pow(x, y))
        }
    }

    /// CPython's float floor division and modulo (`float_divmod`).
    private static func floorMod(_ x: Double, _ y: Double) -> (Double, Double) {
        var mod = fmod(x, y)
        var div = (x - mod) / y
        if mod != 0 {
            if (y < 0) != (mod < 0) {
                mod += y
                div -= 1
            }
        } else {
            mod = copysign(0, y)
        }
        var floordiv: Double
        if div != 0 {
            floordiv = div.rounded(.down)
            if div - floordiv > 0.5 { floordiv += 1 }
        } else {
            floordiv = copysign(0, x / y)
        }
        return (floordiv, mod)
    }

    static func compare(_ op: Expr.CompareOp, _ markupA: Value, _ markupB: Value) throws -> Bool {
        let a = markupA.asPlain, b = markupB.asPlain
        switch op {
        case .eq: return a == b
        case .ne: return a != b
        case .in: return try Access.contains(b, a)
        case .notIn: return try !Access.contains(b, a)
        case .lt: return try less(markupA, markupB, "<")
        case .gt: return try less(markupB, markupA, ">", swapped: true)
        case .le: return try a == b && isOrderable(a, b) || less(markupA, markupB, "<=")
        case .ge: return try a == b && isOrderable(a, b) || less(markupB, markupA, ">=", swapped: true)
        }
    }

    private static func isOrderable(_ a: Value, _ b: Value) -> Bool {
        switch (a, b) {
        case (.string, .string), (.array, .array), (.tuple, .tuple): return true
        default: return a.isNumber && b.isNumber
        }
    }

    /// Python's `<` (code point order for strings, lexicographic for lists).
    static func less(_ markupA: Value, _ markupB: Value, _ op: String = "<", swapped: Bool = false) throws -> Bool {
        let a = markupA.asPlain, b = markupB.asPlain
        switch (a, b) {
        case (.string(let x), .string(let y)): return PyString.less(x, y)
        case (.array(let x), .array(let y)), (.tuple(let x), .tuple(let y)):
            for (p, q) in zip(x, y) where p != q { return try less(p, q, op, swapped: swapped) }
            return x.count < y.count
        default:
            if a.isUndefined || b.isUndefined { throw PyError.undefined(nil) }
            if let x = a.integer, let y = b.integer { return x < y }
            if let x = a.number, let y = b.number { return x < y }
            let (l, r) = swapped ? (markupB, markupA) : (markupA, markupB)
            throw PyError.type("'\(op)' not supported between instances of '\(l.pythonTypeName)' and '\(r.pythonTypeName)'")
        }
    }
}
