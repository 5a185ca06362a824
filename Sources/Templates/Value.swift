import Foundation

/// A value inside a template: what Python objects are to jinja2.
///
/// Context variables are built from the first eight cases (`Value(json:)` makes them
/// from JSON); the interpreter adds namespaces and callables. Semantics follow Python:
/// `int` and `double` are distinct (`1.0` renders "1.0"), `bool` counts as a number,
/// objects keep their insertion order, strings are sequences of Unicode scalars.
public enum Value: Sendable {
    /// A missing variable, key or attribute: falsy, renders as "", iterates as empty;
    /// most other uses are errors (jinja2's default `Undefined`).
    case undefined
    /// Python's `None`: renders as "None".
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    /// jinja2's `Markup` (from `|safe` or `|escape`): a str, except that `+`, `%` and its
    /// methods HTML-escape the plain strings combined with it (`'<'|safe + '<'` is "<&lt;").
    case markup(String)
    /// A Python list.
    case array([Value])
    /// A Python tuple (`(a, b)`, dict items, `varargs`): a list that prints as `(a, b)`
    /// and never equals a list.
    case tuple([Value])
    /// A Python dict with string keys, in insertion order.
    case object(Object)
    /// A `namespace()`: attributes that `{% set ns.x = … %}` can change from any scope.
    case namespace(Namespace)
    /// A built-in function, bound method or macro.
    case function(Function)
    /// A Python iterable that is not a list: the generators filters such as `map` and
    /// `selectattr` return (single use, no `len`, not JSON serializable), `range()`,
    /// and the views `dict.items()` / `keys()` / `values()`.
    case iterable(PyIterable)
}

/// A lazy Python sequence. Items are computed eagerly, but consumed as Python would:
/// a generator or reverse iterator yields its items once.
public final class PyIterable: @unchecked Sendable {
    enum Kind {
        case generator(String)  // the generator function's name, e.g. "select_or_reject"
        case listReverse
        case range(Int, Int, Int)
        case dictKeys, dictValues, dictItems
    }

    let kind: Kind
    private let items: [Value]
    private var position = 0

    init(_ kind: Kind, _ items: [Value]) {
        self.kind = kind
        self.items = items
    }

    /// Single-use iterators are consumed by iteration; ranges and dict views are not.
    var isReusable: Bool {
        switch kind {
        case .generator, .listReverse: return false
        default: return true
        }
    }

    var typeName: String {
        switch kind {
        case .generator: return "generator"
        case .listReverse: return "list_reverseiterator"
        case .range: return "range"
        case .dictKeys: return "dict_keys"
        case .dictValues: return "dict_values"
        case .dictItems: return "dict_items"
        }
    }

    /// `len()`, for the kinds that have one.
    var count: Int? { isReusable ? items.count : nil }

    /// How many items it holds (consumed or not), for the limits.
    var size: Int { items.count }

    /// Every item, consumed or not (for the nesting limit).
    var allItems: [Value] { items }

    /// The items a new `iter()` yields now (consuming a single-use iterator).
    func consume() -> [Value] {
        if isReusable { return items }
        defer { position = items.count }
        return Array(items[position...])
    }

    /// `next(iter(x))`.
    func next() -> Value? {
        if isReusable { return items.first }
        guard position < items.count else { return nil }
        defer { position += 1 }
        return items[position]
    }

    /// Indexing, for ranges.
    func item(_ i: Int) -> Value? {
        guard case .range = kind else { return nil }
        let j = i < 0 ? i + items.count : i
        return j >= 0 && j < items.count ? items[j] : nil
    }

    /// `reversed(x)` for the reversible kinds.
    func reversedItems() -> [Value]? {
        switch kind {
        case .range, .dictKeys, .dictValues, .dictItems: return items.reversed()
        default: return nil
        }
    }

    var repr: String {
        switch kind {
        case .generator(let name): return "<generator object \(name)>"
        case .listReverse: return "<list_reverseiterator object>"
        case .range(let start, let stop, let step): return step == 1 ? "range(\(start), \(stop))" : "range(\(start), \(stop), \(step))"
        case .dictKeys, .dictValues, .dictItems:
            return "\(typeName)(" + Value.array(items).pythonRepr + ")"
        }
    }
}

/// A dictionary that keeps insertion order, like a Python dict. Keys are usually
/// strings (JSON objects); template literals may also use numbers, booleans or none
/// (`{0: 'a'}`), which Python hashes so that `1`, `1.0` and `true` are the same key.
public struct Object: Sendable, ExpressibleByDictionaryLiteral {
    /// The keys in insertion order.
    public private(set) var keys: [Value] = []
    private var storage: [HashKey: Value] = [:]

    /// Python's key identity: strings by code points (UTF-8 bytes, not Swift's
    /// canonical equivalence), numbers by value.
    private enum HashKey: Hashable {
        case string(String), int(Int), double(Double), none, undefined

        static func == (a: HashKey, b: HashKey) -> Bool {
            switch (a, b) {
            case (.string(let x), .string(let y)): return x.utf8.elementsEqual(y.utf8)
            case (.int(let x), .int(let y)): return x == y
            case (.double(let x), .double(let y)): return x == y
            case (.none, .none), (.undefined, .undefined): return true
            default: return false
            }
        }

        func hash(into hasher: inout Hasher) {
            switch self {
            case .string(var s):
                hasher.combine(0 as UInt8)
                s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
            case .int(let i): hasher.combine(1 as UInt8); hasher.combine(i)
            case .double(let d): hasher.combine(2 as UInt8); hasher.combine(d)
            case .none: hasher.combine(3 as UInt8)
            case .undefined: hasher.combine(4 as UInt8)
            }
        }

        init?(_ value: Value) {
            switch value {
            case .string(let s), .markup(let s): self = .string(s)
            case .int(let i): self = .int(i)
            case .bool(let b): self = .int(b ? 1 : 0)
            case .double(let d):
                if d == d.rounded(), let i = Int(exactly: d) { self = .int(i) } else { self = .double(d) }
            case .none: self = .none
            case .undefined: self = .undefined
            default: return nil
            }
        }
    }

    public init() {}

    public init(dictionaryLiteral elements: (String, Value)...) {
        for (key, value) in elements { self[key] = value }
    }

    public init<S: Sequence>(_ pairs: S) where S.Element == (String, Value) {
        for (key, value) in pairs { self[key] = value }
    }

    /// Whether `key` can be a dict key (Python: hashable).
    static func isHashable(_ key: Value) -> Bool { HashKey(key) != nil }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }
    public var values: [Value] { keys.map { storage[HashKey($0)!]! } }
    public var pairs: [(key: Value, value: Value)] { keys.map { ($0, storage[HashKey($0)!]!) } }

    /// A new key goes to the end; replacing a value keeps the key's place (as Python).
    public subscript(key: Value) -> Value? {
        get { HashKey(key).flatMap { storage[$0] } }
        set {
            guard let k = HashKey(key) else { return }
            if let newValue {
                if storage.updateValue(newValue, forKey: k) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: k) != nil {
                keys.removeAll { HashKey($0) == k }
            }
        }
    }

    public subscript(key: String) -> Value? {
        get { self[.string(key)] }
        set { self[.string(key)] = newValue }
    }
}

/// jinja2's `Namespace`: shared by reference, so assignments inside loops are seen outside.
public final class Namespace: @unchecked Sendable {
    public var attributes: Object
    public init(_ attributes: Object = Object()) { self.attributes = attributes }
}

/// Arguments of a call: positional values then keyword values, in source order.
struct Arguments {
    var positional: [Value] = []
    var keywords: [(String, Value)] = []
}

/// Something a template can call: built-ins, bound methods, macros, and `loop` (a
/// callable object with attributes, like jinja2's LoopContext).
public final class Function: @unchecked Sendable {
    public let name: String
    let call: (Arguments, Interpreter) throws -> Value
    /// Set for macros (`<Macro 'name'>` when rendered).
    let isMacro: Bool
    /// Attributes, for callable objects such as `loop`.
    let attributes: ((String) -> Value?)?
    /// Python type name and repr, for callable objects.
    let typeName: String?
    let repr: (() -> String)?
    /// The values it holds on to (a bound method's object, the items of `loop`): the
    /// nesting limit looks through a function into them.
    let captured: (() -> [Value])?

    init(name: String, isMacro: Bool = false, typeName: String? = nil, attributes: ((String) -> Value?)? = nil,
         repr: (() -> String)? = nil, captured: (() -> [Value])? = nil, call: @escaping (Arguments, Interpreter) throws -> Value) {
        self.name = name
        self.isMacro = isMacro
        self.typeName = typeName
        self.attributes = attributes
        self.repr = repr
        self.captured = captured
        self.call = call
    }
}

// MARK: - Python semantics

extension Value {
    public var isUndefined: Bool { if case .undefined = self { return true } else { return false } }

    /// Python truthiness.
    public var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s), .markup(let s): return !s.isEmpty
        case .array(let a), .tuple(let a): return !a.isEmpty
        case .object(let o): return !o.isEmpty
        case .namespace, .function: return true
        case .iterable(let i): return i.count.map { $0 > 0 } ?? true
        }
    }

    /// The Python type name used in error messages (`int`, `str`, `NoneType`, …).
    var pythonTypeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .markup: return "Markup"
        case .array: return "list"
        case .tuple: return "tuple"
        case .object: return "dict"
        case .namespace: return "Namespace"
        case .function(let f): return f.typeName ?? (f.isMacro ? "Macro" : "function")
        case .iterable(let i): return i.typeName
        }
    }

    /// jinja2's `object_type_repr`: "dict object" in undefined-attribute messages (the
    /// module is named for classes outside builtins).
    var objectTypeRepr: String {
        switch self {
        case .none: return "None"
        case .markup: return "markupsafe.Markup object"
        case .namespace: return "transformers.utils.chat_template_utils.TemplateNamespace object"
        case .function(let f):
            if f.isMacro { return "jinja2.runtime.Macro object" }
            if f.typeName == "LoopContext" { return "jinja2.runtime.LoopContext object" }
            return "\(pythonTypeName) object"
        default: return "\(pythonTypeName) object"
        }
    }

    /// Numeric view (bool counts as int, as in Python).
    var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    var integer: Int? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    var isNumber: Bool { number != nil }

    /// The text of a str (plain or Markup).
    var stringValue: String? {
        switch self {
        case .string(let s), .markup(let s): return s
        default: return nil
        }
    }

    /// The items of a list or tuple.
    var sequenceItems: [Value]? {
        switch self {
        case .array(let a), .tuple(let a): return a
        default: return nil
        }
    }

    var isMarkup: Bool { if case .markup = self { return true } else { return false } }

    /// Markup as a plain str: where Python treats both alike.
    var asPlain: Value { if case .markup(let s) = self { return .string(s) } else { return self } }

    /// `str(value)`: what `{{ value }}` prints.
    var pythonString: String {
        switch self {
        case .undefined: return ""
        case .string(let s), .markup(let s): return s
        default: return pythonRepr
        }
    }

    /// `repr(value)`: how values print inside lists and dicts.
    ///
    /// Bounded: it stops once past `TemplateLimits.maxStringBytes` (the interpreter then
    /// refuses the too long string), prints a namespace that contains itself as Python
    /// does (`<Namespace {'self': <Namespace {...}>}>`), and prints `...` for values
    /// nested deeper than `maxRenderDepth`.
    var pythonRepr: String {
        var out = ""
        var active: [ObjectIdentifier] = []
        let limits = TemplateLimits.current
        appendRepr(into: &out, budget: limits.maxStringBytes, depth: limits.maxRenderDepth, active: &active)
        return out
    }

    private func appendRepr(into out: inout String, budget: Int, depth: Int, active: inout [ObjectIdentifier]) {
        if out.utf8.count > budget { return }
        guard depth > 0 else { out += "..."; return }
        func items(_ a: [Value], _ open: String, _ close: String) {
            out += open
            for (k, item) in a.enumerated() {
                if k > 0 { out += ", " }
                item.appendRepr(into: &out, budget: budget, depth: depth - 1, active: &active)
                if out.utf8.count > budget { return }
            }
            out += close
        }
        func dict(_ o: Object) {
            out += "{"
            for (k, pair) in o.pairs.enumerated() {
                if k > 0 { out += ", " }
                pair.key.appendRepr(into: &out, budget: budget, depth: depth - 1, active: &active)
                out += ": "
                pair.value.appendRepr(into: &out, budget: budget, depth: depth - 1, active: &active)
                if out.utf8.count > budget { return }
            }
            out += "}"
        }
        switch self {
        case .undefined: out += "Undefined"
        case .none: out += "None"
        case .bool(let b): out += b ? "True" : "False"
        case .int(let i): out += String(i)
        case .double(let d): out += PyString.floatRepr(d)
        case .string(let s): out += PyString.repr(s)
        case .markup(let s): out += "Markup(" + PyString.repr(s) + ")"
        case .array(let a): items(a, "[", "]")
        case .tuple(let a): items(a, "(", a.count == 1 ? ",)" : ")")
        case .object(let o): dict(o)
        case .namespace(let n):
            let id = ObjectIdentifier(n)
            if active.contains(id) { out += "<Namespace {...}>"; return }
            active.append(id)
            out += "<Namespace "
            dict(n.attributes)
            out += ">"
            active.removeLast()
        case .function(let f): out += f.repr?() ?? (f.isMacro ? "<Macro '\(f.name)'>" : "<built-in function \(f.name)>")
        case .iterable(let i): out += i.repr
        }
    }
}

extension Value: Equatable {
    /// Python `==`: numbers across int/float/bool, strings by Unicode scalars (not by
    /// canonical equivalence as Swift's `==` would), containers element-wise.
    public static func == (lhs: Value, rhs: Value) -> Bool {
        switch (lhs, rhs) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)), (.markup(let a), .markup(let b)),
             (.string(let a), .markup(let b)), (.markup(let a), .string(let b)):
            return PyString.equal(a, b)
        case (.array(let a), .array(let b)), (.tuple(let a), .tuple(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0 == $1 }
        case (.object(let a), .object(let b)):
            return a.count == b.count && a.pairs.allSatisfy { pair in b[pair.key].map { $0 == pair.value } ?? false }
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.function(let a), .function(let b)): return a === b
        case (.iterable(let a), .iterable(let b)): return a === b
        default:
            if let x = lhs.integer, let y = rhs.integer { return x == y }
            if let x = lhs.number, let y = rhs.number { return x == y }
            return false
        }
    }
}

extension Value: CustomStringConvertible {
    /// `str(value)`, as the template would print it.
    public var description: String { pythonString }
}

extension Value: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: Value...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, Value)...) {
        var object = Object()
        for (key, value) in elements { object[key] = value }
        self = .object(object)
    }
    /// `nil` is Python's `None`.
    public init(nilLiteral: ()) { self = .none }
}
