import Foundation

/// Variables visible at one point of a render. jinja2 gives every `for` iteration,
/// macro call, `{% set %}…{% endset %}` body, `{% filter %}`, `{% with %}` and
/// `{% generation %}` block its own frame: assignments there do not leak out (which is
/// why templates use `namespace()`), while `if` bodies share the enclosing frame.
final class Scope {
    var variables: [String: Value] = [:]
    /// Why a variable of this scope is undefined (a macro parameter not given).
    var undefinedHints: [String: String] = [:]
    let parent: Scope?

    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> Value? {
        var scope: Scope? = self
        while let s = scope {
            if let v = s.variables[name] { return v }
            scope = s.parent
        }
        return nil
    }
}

/// Renders a parsed template. One interpreter per render.
final class Interpreter {
    let templateName: String
    let now: Date
    let timeZone: TimeZone
    private var output = ""

    enum Flow { case normal, breakLoop, continueLoop }

    init(templateName: String, now: Date, timeZone: TimeZone) {
        self.templateName = templateName
        self.now = now
        self.timeZone = timeZone
    }

    /// Scopes that hold a macro defined in them: macro and scope refer to each other,
    /// so they are emptied when the render ends.
    private var macroScopes: [Scope] = []

    func render(_ body: [Stmt], context: [String: Value]) throws -> String {
        let globals = Scope(parent: nil)
        globals.variables = Globals.make()
        let root = Scope(parent: globals)
        root.variables = context
        output = ""
        defer {
            for scope in macroScopes { scope.variables = [:] }
            macroScopes = []
        }
        _ = try execute(body, root)
        return output
    }

    // MARK: Errors

    func error(_ message: String, _ location: SourceLocation, kind: TemplateError.Kind = .runtime) -> TemplateError {
        TemplateError(message: message, line: location.line, column: location.column, kind: kind, templateName: templateName)
    }

    /// jinja2's UndefinedError message for the undefined value `expr` produced.
    func undefinedError(_ expr: Expr, _ scope: Scope) -> TemplateError {
        error(undefinedMessage(expr, scope), expr.location)
    }

    private func undefinedMessage(_ expr: Expr, _ scope: Scope) -> String {
        switch expr.kind {
        case .name(let name):
            var s: Scope? = scope
            while let current = s {
                if current.variables[name] != nil { return current.undefinedHints[name] ?? "'\(name)' is undefined" }
                s = current.parent
            }
            return "'\(name)' is undefined"
        case .attribute(let objectExpr, let name):
            guard let object = try? evaluate(objectExpr, scope), !object.isUndefined else {
                return undefinedMessage(objectExpr, scope)
            }
            return "'\(object.objectTypeRepr)' has no attribute '\(name)'"
        case .item(let objectExpr, let keyExpr):
            guard let object = try? evaluate(objectExpr, scope), !object.isUndefined else {
                return undefinedMessage(objectExpr, scope)
            }
            let key = (try? evaluate(keyExpr, scope)) ?? .undefined
            if case .string(let s) = key { return "'\(object.objectTypeRepr)' has no attribute '\(s)'" }
            return "\(object.objectTypeRepr) has no element \(key.pythonRepr)"
        case .conditional(_, _, nil):
            return "the inline if-expression on line \(expr.location.line) evaluated to false and no else section was defined."
        case .filter(_, "first", _): return "No first item, sequence was empty."
        case .filter(_, "last", _): return "No last item, sequence was empty."
        case .filter(_, "min", _), .filter(_, "max", _): return "No aggregated item, sequence was empty."
        default:
            return "undefined value"
        }
    }

    private func convert(_ e: PyError, _ expr: Expr, _ scope: Scope) -> TemplateError {
        if case .undefined(nil) = e { return undefinedError(expr, scope) }
        if case .raised(let message) = e { return error(message, expr.location, kind: .raised) }
        return error(e.message ?? "error", expr.location)
    }

    // MARK: Statements

    func execute(_ body: [Stmt], _ scope: Scope) throws -> Flow {
        for stmt in body {
            let flow = try execute(stmt, scope)
            if flow != .normal { return flow }
        }
        return .normal
    }

    /// Renders `body` into a string of its own.
    private func capture(_ body: [Stmt], _ scope: Scope) throws -> (String, Flow) {
        let saved = output
        output = ""
        defer { output = saved }
        let flow = try execute(body, scope)
        return (output, flow)
    }

    private func execute(_ stmt: Stmt, _ scope: Scope) throws -> Flow {
        switch stmt.kind {
        case .text(let text):
            output += text
        case .output(let expr):
            output += try evaluate(expr, scope).pythonString
        case .ifChain(let branches, let otherwise):
            for (test, body) in branches where try evaluate(test, scope).isTruthy {
                return try execute(body, scope)
            }
            return try execute(otherwise, scope)
        case .forLoop(let target, let iterable, let filter, let body, let otherwise, let recursive):
            if recursive { throw error("recursive loops are not supported", stmt.location) }
            return try executeFor(target: target, iterable: iterable, filter: filter, body: body, otherwise: otherwise, scope)
        case .assign(let target, let expr):
            try assign(target, try evaluate(expr, scope), scope, stmt.location)
        case .assignBlock(let target, let filter, let body):
            let (text, flow) = try capture(body, Scope(parent: scope))
            var value = Value.string(text)
            if let filter { value = try evaluate(filter, scope, pipeInput: value) }
            try assign(target, value, scope, stmt.location)
            return flow
        case .macro(let macro):
            scope.variables[macro.name] = makeMacro(macro, scope)
            macroScopes.append(scope)
        case .callBlock(let caller, let call):
            let value = try evaluate(call, scope, caller: makeMacro(caller, scope))
            output += value.pythonString
        case .filterBlock(let filter, let body):
            let (text, flow) = try capture(body, Scope(parent: scope))
            output += try evaluate(filter, scope, pipeInput: .string(text)).pythonString
            return flow
        case .with(let assignments, let body):
            let inner = Scope(parent: scope)
            for (target, expr) in assignments { try assign(target, try evaluate(expr, scope), inner, stmt.location) }
            return try execute(body, inner)
        case .scoped(let body):
            return try execute(body, Scope(parent: scope))
        case .loopBreak:
            return .breakLoop
        case .loopContinue:
            return .continueLoop
        }
        return .normal
    }

    private func executeFor(target: Target, iterable: Expr, filter: Expr?, body: [Stmt], otherwise: [Stmt], _ scope: Scope) throws -> Flow {
        let sequence = try evaluate(iterable, scope)
        var items: [Value]
        do { items = try iterate(sequence) } catch let e as PyError { throw convert(e, iterable, scope) }
        if let filter {
            items = try items.filter { item in
                let s = Scope(parent: scope)
                try assign(target, item, s, filter.location)
                return try evaluate(filter, s).isTruthy
            }
        }
        if items.isEmpty { return try execute(otherwise, Scope(parent: scope)) }
        let state = LoopState(items: items)
        for (index, item) in items.enumerated() {
            let s = Scope(parent: scope)
            try assign(target, item, s, iterable.location)
            state.index = index
            s.variables["loop"] = state.value
            if try execute(body, s) == .breakLoop { break }
        }
        return .normal
    }

    func assign(_ target: Target, _ value: Value, _ scope: Scope, _ location: SourceLocation) throws {
        switch target {
        case .name(let name):
            scope.variables[name] = value
        case .tuple(let targets):
            let items: [Value]
            do { items = try iterate(value) } catch let e as PyError { throw error(e.message ?? "cannot unpack", location) }
            if items.count < targets.count {
                throw error("not enough values to unpack (expected \(targets.count), got \(items.count))", location)
            }
            if items.count > targets.count { throw error("too many values to unpack (expected \(targets.count))", location) }
            for (t, v) in zip(targets, items) { try assign(t, v, scope, location) }
        case .attribute(let name, let attribute):
            guard case .namespace(let ns) = scope.lookup(name) ?? .undefined else {
                throw error("cannot assign attribute on non-namespace object", location)
            }
            if attribute.hasPrefix("_") {
                throw error("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '\(attribute)'. Please rename the attribute.", location)
            }
            ns.attributes[attribute] = value
        }
    }

    // MARK: Macros

    private func makeMacro(_ macro: MacroSyntax, _ closure: Scope) -> Value {
        .function(Function(name: macro.name, isMacro: true) { arguments, interpreter in
            try interpreter.callMacro(macro, closure, arguments)
        })
    }

    /// jinja2's `Macro.__call__`: positional arguments, then keywords for the
    /// remaining parameters, then defaults; extra arguments only if the body reads
    /// `varargs` / `kwargs`.
    private func callMacro(_ macro: MacroSyntax, _ closure: Scope, _ arguments: Arguments) throws -> Value {
        let scope = Scope(parent: closure)
        let parameters = macro.parameters
        let firstDefault = parameters.count - macro.defaults.count
        var keywords = Object()
        for (key, value) in arguments.keywords { keywords[key] = value }
        var foundCaller = false
        var missing: [Int] = []
        for (index, name) in parameters.enumerated() {
            if index < arguments.positional.count {
                scope.variables[name] = arguments.positional[index]
            } else if let value = keywords[name] {
                keywords[name] = nil
                scope.variables[name] = value
            } else {
                missing.append(index)
            }
            if name == "caller" && index >= arguments.positional.count { foundCaller = true }
        }
        if arguments.positional.count >= parameters.count { foundCaller = parameters.contains("caller") }
        if macro.usesCaller && !foundCaller {
            if let caller = keywords["caller"] {
                keywords["caller"] = nil
                scope.variables["caller"] = caller
            } else {
                scope.variables["caller"] = .undefined
                scope.undefinedHints["caller"] = "No caller defined"
            }
        }
        if macro.usesKwargs {
            scope.variables["kwargs"] = .object(keywords)
        } else if let first = keywords.keys.first {
            if keywords["caller"] != nil {
                throw PyError.type("macro '\(macro.name)' was invoked with two values for the special caller argument. This is most likely a bug.")
            }
            throw PyError.type("macro '\(macro.name)' takes no keyword argument \(first.pythonRepr)")
        }
        if macro.usesVarargs {
            scope.variables["varargs"] = .tuple(Array(arguments.positional.dropFirst(parameters.count)))
        } else if arguments.positional.count > parameters.count {
            throw PyError.type("macro '\(macro.name)' takes not more than \(parameters.count) argument(s)")
        }
        // Defaults are evaluated in the macro's scope, after the given arguments.
        for index in missing {
            let name = parameters[index]
            if index >= firstDefault {
                scope.variables[name] = try evaluate(macro.defaults[index - firstDefault], scope)
            } else {
                scope.variables[name] = .undefined
                scope.undefinedHints[name] = "parameter '\(name)' was not provided"
            }
        }
        let (text, _) = try capture(macro.body, scope)
        return .string(text)
    }

    // MARK: Expressions

    /// Evaluates `expr`. `pipeInput` is the operand of the innermost filter in
    /// `{% filter %}` and `{% set x | f %}`; `caller` is added to the call of `{% call %}`.
    func evaluate(_ expr: Expr, _ scope: Scope, pipeInput: Value? = nil, caller: Value? = nil) throws -> Value {
        do {
            return try evaluateUnchecked(expr, scope, pipeInput: pipeInput, caller: caller)
        } catch let e as PyError {
            throw convert(e, expr, scope)
        }
    }

    private func defined(_ expr: Expr, _ scope: Scope) throws -> Value {
        let value = try evaluate(expr, scope)
        if value.isUndefined { throw undefinedError(expr, scope) }
        return value
    }

    private func evaluateUnchecked(_ expr: Expr, _ scope: Scope, pipeInput: Value?, caller: Value?) throws -> Value {
        switch expr.kind {
        case .literal(let value):
            return value
        case .name(let name):
            return scope.lookup(name) ?? .undefined
        case .list(let items):
            return .array(try items.map { try evaluate($0, scope) })
        case .tuple(let items):
            return .tuple(try items.map { try evaluate($0, scope) })
        case .dict(let pairs):
            var object = Object()
            for (k, v) in pairs {
                let key = try evaluate(k, scope)
                guard Object.isHashable(key) else { throw PyError.type("unhashable type: '\(key.pythonTypeName)'") }
                object[key] = try evaluate(v, scope)
            }
            return .object(object)
        case .attribute(let objectExpr, let name):
            return Access.attribute(try defined(objectExpr, scope), name)
        case .item(let objectExpr, let keyExpr):
            // The object, then the key, then the lookup (which fails on an undefined object).
            let object = try evaluate(objectExpr, scope)
            if case .slice(let a, let b, let c) = keyExpr.kind {
                func bound(_ e: Expr?) throws -> Int? {
                    guard let e else { return nil }
                    let v = try evaluate(e, scope)
                    if case .none = v { return nil }
                    guard let i = v.integer else {
                        throw PyError.type("slice indices must be integers or None or have an __index__ method")
                    }
                    return i
                }
                let (start, stop, step) = (try bound(a), try bound(b), try bound(c))
                if object.isUndefined { throw undefinedError(objectExpr, scope) }
                return try Access.slice(object, start, stop, step)
            }
            let key = try evaluate(keyExpr, scope)
            if object.isUndefined { throw undefinedError(objectExpr, scope) }
            return Access.item(object, key)
        case .slice:
            throw PyError.type("a slice is only valid inside []")
        case .call(let callee, let syntax):
            // As compiled by jinja2: the callee (`obj.attr` fails at once on an undefined
            // obj), then the arguments, then the call.
            if case .attribute(let objectExpr, let name) = callee.kind {
                let object = try defined(objectExpr, scope)
                var arguments = try evaluateArguments(syntax, scope)
                if let caller { arguments.keywords.append(("caller", caller)) }
                if let result = try Methods.call(object, name, arguments, self) { return result }
                let function = Access.attribute(object, name)
                if function.isUndefined { throw undefinedError(callee, scope) }
                return try call(function, arguments)
            }
            let function = try evaluate(callee, scope)
            var arguments = try evaluateArguments(syntax, scope)
            if let caller { arguments.keywords.append(("caller", caller)) }
            if function.isUndefined { throw undefinedError(callee, scope) }
            return try call(function, arguments)
        case .filter(let operand, let name, let syntax):
            let input: Value
            if let operand { input = try evaluate(operand, scope, pipeInput: pipeInput) } else { input = pipeInput ?? .undefined }
            let arguments = try evaluateArguments(syntax, scope)
            do {
                return try Filters.apply(name, input, arguments, self)
            } catch PyError.undefined(nil) {
                if let operand { throw undefinedError(operand, scope) }
                throw PyError.undefined("undefined value")
            }
        case .test(let operand, let name, let syntax):
            let input = try evaluate(operand, scope)
            let arguments = try evaluateArguments(syntax, scope)
            do {
                return .bool(try Tests.apply(name, input, arguments, self))
            } catch PyError.undefined(nil) {
                throw undefinedError(operand, scope)
            }
        case .negate(let operand):
            switch try defined(operand, scope) {
            case .int(let i):
                guard i != Int.min else { throw PyError.overflow("integer overflow") }
                return .int(-i)
            case .double(let d): return .double(-d)
            case .bool(let b): return .int(b ? -1 : 0)
            case let v: throw PyError.type("bad operand type for unary -: '\(v.pythonTypeName)'")
            }
        case .plus(let operand):
            let v = try defined(operand, scope)
            if case .bool(let b) = v { return .int(b ? 1 : 0) }
            guard v.isNumber else { throw PyError.type("bad operand type for unary +: '\(v.pythonTypeName)'") }
            return v
        case .not(let operand):
            return .bool(!(try evaluate(operand, scope).isTruthy))
        case .binary(let op, let lhs, let rhs):
            // Python evaluates both operands before the operator fails on an undefined one;
            // `str % x` accepts anything (str.__mod__ is tried first).
            let a = try evaluate(lhs, scope)
            let b = try evaluate(rhs, scope)
            if a.isUndefined { throw undefinedError(lhs, scope) }
            if b.isUndefined && !(op == .mod && a.stringValue != nil) { throw undefinedError(rhs, scope) }
            return try Operators.binary(op, a, b)
        case .and(let lhs, let rhs):
            let a = try evaluate(lhs, scope)
            return a.isTruthy ? try evaluate(rhs, scope) : a
        case .or(let lhs, let rhs):
            let a = try evaluate(lhs, scope)
            return a.isTruthy ? a : try evaluate(rhs, scope)
        case .compare(let first, let ops):
            var left = try evaluate(first, scope)
            var leftExpr = first
            for (op, rightExpr) in ops {
                let right = try evaluate(rightExpr, scope)
                let result: Bool
                do {
                    result = try Operators.compare(op, left, right)
                } catch PyError.undefined(nil) {
                    throw undefinedError(left.isUndefined ? leftExpr : rightExpr, scope)
                }
                if !result { return .bool(false) }
                left = right
                leftExpr = rightExpr
            }
            return .bool(true)
        case .concat(let parts):
            return .string(try parts.map { try evaluate($0, scope).pythonString }.joined())
        case .conditional(let test, let then, let otherwise):
            if try evaluate(test, scope).isTruthy { return try evaluate(then, scope) }
            guard let otherwise else { return .undefined }
            return try evaluate(otherwise, scope)
        }
    }

    private func call(_ function: Value, _ arguments: Arguments) throws -> Value {
        guard case .function(let f) = function else {
            throw PyError.type("'\(function.pythonTypeName)' object is not callable")
        }
        return try f.call(arguments, self)
    }

    private func evaluateArguments(_ syntax: CallSyntax, _ scope: Scope) throws -> Arguments {
        var arguments = Arguments()
        arguments.positional = try syntax.positional.map { try evaluate($0, scope) }
        arguments.keywords = try syntax.keywords.map { ($0.0, try evaluate($0.1, scope)) }
        if let star = syntax.star {
            arguments.positional += try iterate(try evaluate(star, scope))
        }
        if let starStar = syntax.starStar {
            guard case .object(let object) = try evaluate(starStar, scope) else {
                throw PyError.type("argument after ** must be a mapping")
            }
            for (key, value) in object.pairs {
                guard case .string(let k) = key else { throw PyError.type("keywords must be strings") }
                arguments.keywords.append((k, value))
            }
        }
        return arguments
    }

    // MARK: Helpers shared by filters and tests

    /// Python's `iter(value)` as a list: characters of a string, keys of a dict.
    func iterate(_ value: Value) throws -> [Value] {
        try Access.iterate(value)
    }
}

/// The `loop` variable of one `for` loop: one object per loop whose attributes follow
/// the current iteration, like jinja2's LoopContext (`{% set l = loop %}` sees later
/// iterations too). `cycle` and `changed` share the small state object, not the
/// LoopState, so nothing forms a reference cycle.
private final class LoopState {
    private final class Shared {
        var index = 0
        var lastChanged: [Value]?
    }

    private let shared = Shared()
    let value: Value

    var index: Int {
        get { shared.index }
        set { shared.index = newValue }
    }

    init(items: [Value]) {
        let shared = self.shared
        let n = items.count
        let cycle = Value.function(Function(name: "cycle") { arguments, _ in
            guard !arguments.positional.isEmpty else { throw PyError.type("no items for cycling given") }
            return arguments.positional[shared.index % arguments.positional.count]
        })
        let changed = Value.function(Function(name: "changed") { arguments, _ in
            let values = arguments.positional
            if let last = shared.lastChanged, last == values { return .bool(false) }
            shared.lastChanged = values
            return .bool(true)
        })
        value = .function(Function(
            name: "loop", typeName: "LoopContext",
            attributes: { name in
                let i = shared.index
                switch name {
                case "index": return .int(i + 1)
                case "index0": return .int(i)
                case "revindex": return .int(n - i)
                case "revindex0": return .int(n - i - 1)
                case "first": return .bool(i == 0)
                case "last": return .bool(i == n - 1)
                case "length": return .int(n)
                case "depth": return .int(1)
                case "depth0": return .int(0)
                case "previtem": return i > 0 ? items[i - 1] : .undefined
                case "nextitem": return i < n - 1 ? items[i + 1] : .undefined
                case "cycle": return cycle
                case "changed": return changed
                default: return nil
                }
            },
            repr: { "<LoopContext \(shared.index + 1)/\(n)>" },
            call: { _, _ in throw PyError.type("The loop must have the 'recursive' marker to be called recursively.") }))
    }
}
