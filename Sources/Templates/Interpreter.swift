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

    // The render's budget (see `TemplateLimits`).
    let limits: TemplateLimits
    private let shouldStop: (@Sendable () -> Bool)?
    private(set) var steps = 0
    /// The step count at which `step` next leaves its fast path (limit or poll).
    private var nextCheck = 0
    /// Interpreter recursion in progress (`evaluate` and `execute` of a statement).
    private(set) var depth = 0
    /// Macro and `caller()` calls in progress.
    private(set) var callDepth = 0
    /// The deepest of each this render reached (for measurements).
    private(set) var deepest = 0, deepestCalls = 0
    /// The lowest stack address the interpreter may recurse to (0: unknown).
    private let stackFloor: UInt

    init(templateName: String, now: Date, timeZone: TimeZone, limits: TemplateLimits = .default,
         shouldStop: (@Sendable () -> Bool)? = nil) {
        self.templateName = templateName
        self.now = now
        self.timeZone = timeZone
        self.limits = limits
        self.shouldStop = shouldStop
        self.stackFloor = StackBounds.floor(reserving: 96 << 10)
        self.nextCheck = Swift.min(limits.maxSteps, limits.stepsBetweenCancellationChecks)
    }

    /// Scopes that hold a macro defined in them: macro and scope refer to each other,
    /// so they are emptied when the render ends.
    private var macroScopes: [Scope] = []

    func render(_ body: [Stmt], context: [String: Value]) throws -> String {
        try TemplateLimits.$current.withValue(limits) {
            try renderWithLimits(body, context: context)
        }
    }

    private func renderWithLimits(_ body: [Stmt], context: [String: Value]) throws -> String {
        let globals = Scope(parent: nil)
        globals.variables = Globals.make()
        let root = Scope(parent: globals)
        root.variables = context
        output = ""
        defer {
            for scope in macroScopes { scope.variables = [:] }
            macroScopes = []
            // One at a time, so that a chain of namespaces is not freed recursively.
            for namespace in namespaces { namespace.attributes = Object() }
            namespaces = []
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
        if case .limit(let message) = e { return error(message, expr.location, kind: .limit) }
        return error(e.message ?? "error", expr.location)
    }

    // MARK: Budget

    /// What one loop iteration counts: it makes a scope and binds the target and `loop`,
    /// several times the work of evaluating an expression (~0.5 µs in a release build).
    static let iterationSteps = 4

    /// Counts `n` steps of work; past `maxSteps` the render fails, and every
    /// `stepsBetweenCancellationChecks` steps `shouldStop` is asked.
    @inline(__always)
    func step(_ n: Int = 1, _ location: SourceLocation) throws {
        steps &+= n
        if steps >= nextCheck { try checkBudget(location) }
    }

    private func checkBudget(_ location: SourceLocation) throws {
        if steps > limits.maxSteps {
            throw error("the template ran for more than \(limits.maxSteps) steps (TemplateLimits.maxSteps; it may loop without end)",
                        location, kind: .limit)
        }
        if let shouldStop, shouldStop() { throw error("rendering cancelled", location, kind: .cancelled) }
        let interval = Swift.max(1, limits.stepsBetweenCancellationChecks)
        nextCheck = steps < limits.maxSteps ? Swift.min(limits.maxSteps + 1, steps + interval) : steps + interval
    }

    /// The steps that making or scanning `value` costs: 1 per KiB of a string, 1 per
    /// 64 items of a container (about the time of one interpreted step each).
    func cost(of value: Value) -> Int {
        switch value {
        case .string(let s), .markup(let s): return s.utf8.count >> 10
        case .array(let a), .tuple(let a): return a.count >> 6
        case .object(let o): return o.count >> 6
        case .iterable(let i): return i.size >> 6
        default: return 0
        }
    }

    /// A value an operation made: refused if larger than the limits, charged by size.
    private func made(_ value: Value, _ location: SourceLocation) throws -> Value {
        switch value {
        case .string(let s), .markup(let s):
            if s.utf8.count > limits.maxStringBytes { throw error(Limit.stringTooLong(s.utf8.count).message!, location, kind: .limit) }
        case .array(let a), .tuple(let a):
            if a.count > limits.maxItems { throw error(Limit.tooManyItems(a.count).message!, location, kind: .limit) }
        case .object(let o):
            if o.count > limits.maxItems { throw error(Limit.tooManyItems(o.count).message!, location, kind: .limit) }
        case .iterable(let i):
            if i.size > limits.maxItems { throw error(Limit.tooManyItems(i.size).message!, location, kind: .limit) }
        default:
            return value
        }
        try step(cost(of: value), location)
        return value
    }

    /// One level deeper into the interpreter's recursion.
    /// Also a backstop for the stack itself: whatever the frames cost on this thread,
    /// the recursion stops 96 KiB before the end of the stack.
    @inline(__always)
    private func enter(_ location: SourceLocation) throws {
        depth += 1
        var marker = 0
        let here = withUnsafeMutablePointer(to: &marker) { UInt(bitPattern: $0) }
        if depth > deepest || here < stackFloor { try deeper(location, here) }
    }

    private func deeper(_ location: SourceLocation, _ here: UInt) throws {
        if depth > limits.maxRenderDepth {
            depth -= 1
            throw error("statements and expressions nested deeper than \(limits.maxRenderDepth) while rendering (TemplateLimits.maxRenderDepth; the template may recurse without end)",
                        location, kind: .limit)
        }
        if here < stackFloor {
            depth -= 1
            throw error("the template nests too deeply for the stack of this thread", location, kind: .limit)
        }
        deepest = Swift.max(deepest, depth)
        lowestStackAddress = Swift.min(lowestStackAddress, here)
    }

    /// The lowest stack address a new depth record was reached at (for measurements).
    private(set) var lowestStackAddress = UInt.max

    // MARK: Nesting of values

    /// The namespaces this render made: kept until the render ends, then emptied one by
    /// one. A namespace is the only value a template can change after making it, so
    /// namespaces may form chains (`{% set leaf.next = n %}`) or cycles of any length;
    /// held here, none is freed while another refers to it, and freeing never recurses.
    private var namespaces: [Namespace] = []

    func adopt(_ namespace: Namespace) -> Namespace {
        namespaces.append(namespace)
        return namespace
    }

    /// `value`, refused if it nests containers deeper than `maxValueDepth` (freeing,
    /// comparing or printing a value recurses once per level). Lists, tuples, dicts and
    /// iterables are immutable, so their depth is checked where one is made around
    /// others; namespaces count as leaves (see `namespaces`); functions are looked through
    /// to the values they hold. The walk counts 1 step per 16 containers it visits.
    func checkedNesting(_ value: Value) throws -> Value {
        var visits = 0
        defer { steps &+= visits >> 4 }
        _ = try nestingDepth(value, 1, &visits)
        return value
    }

    private func nestingDepth(_ value: Value, _ level: Int, _ visits: inout Int) throws -> Int {
        if level > limits.maxValueDepth {
            throw PyError.limit("values nested deeper than \(limits.maxValueDepth) (TemplateLimits.maxValueDepth)")
        }
        func deepest(_ items: [Value]) throws -> Int {
            var d = 0
            for item in items {
                switch item {
                case .array, .tuple, .object, .iterable, .function: d = Swift.max(d, try nestingDepth(item, level + 1, &visits))
                default: break
                }
            }
            return d + 1
        }
        visits += 1
        switch value {
        case .array(let a), .tuple(let a): return try deepest(a)
        case .object(let o): return try deepest(o.values)
        case .iterable(let it): return try deepest(it.allItems)
        case .function(let f): return try f.captured.map { try deepest($0()) } ?? 1
        default: return 0
        }
    }

    /// Appends to the output, within `maxOutputBytes`.
    private func emit(_ text: String, _ location: SourceLocation) throws {
        let total = output.utf8.count + text.utf8.count
        if total > limits.maxOutputBytes {
            throw error("the output would be \(total) bytes long, over the limit of \(limits.maxOutputBytes) bytes (TemplateLimits.maxOutputBytes)",
                        location, kind: .limit)
        }
        try step(text.utf8.count >> 10, location)
        output += text
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

    /// One statement. Like `evaluateUnchecked`, a dispatcher without locals.
    private func execute(_ stmt: Stmt, _ scope: Scope) throws -> Flow {
        try step(1, stmt.location)
        try enter(stmt.location)
        defer { depth -= 1 }
        switch stmt.kind {
        case .text, .output, .assign, .macro, .loopBreak, .loopContinue: return try executeSimple(stmt, scope)
        case .ifChain: return try executeIf(stmt, scope)
        case .forLoop(let target, let iterable, let filter, let body, let otherwise, let recursive):
            if recursive { throw error("recursive loops are not supported", stmt.location) }
            return try executeFor(target: target, iterable: iterable, filter: filter, body: body, otherwise: otherwise, scope)
        case .scoped(let body): return try execute(body, Scope(parent: scope))
        case .assignBlock, .callBlock, .filterBlock, .with: return try executeBlock(stmt, scope)
        }
    }

    private func executeSimple(_ stmt: Stmt, _ scope: Scope) throws -> Flow {
        switch stmt.kind {
        case .text(let text):
            try emit(text, stmt.location)
        case .output(let expr):
            try emit(try printed(try evaluate(expr, scope), expr.location), expr.location)
        case .assign(let target, let expr):
            try assign(target, try evaluate(expr, scope), scope, stmt.location)
        case .macro(let macro):
            scope.variables[macro.name] = makeMacro(macro, scope)
            macroScopes.append(scope)
        case .loopBreak:
            return .breakLoop
        case .loopContinue:
            return .continueLoop
        default:
            preconditionFailure("not a simple statement")
        }
        return .normal
    }

    private func executeIf(_ stmt: Stmt, _ scope: Scope) throws -> Flow {
        guard case .ifChain(let branches, let otherwise) = stmt.kind else { preconditionFailure("not an if") }
        for (test, body) in branches where try evaluate(test, scope).isTruthy {
            return try execute(body, scope)
        }
        return try execute(otherwise, scope)
    }

    private func executeBlock(_ stmt: Stmt, _ scope: Scope) throws -> Flow {
        switch stmt.kind {
        case .assignBlock(let target, let filter, let body):
            let (text, flow) = try capture(body, Scope(parent: scope))
            var value = Value.string(text)
            if let filter { value = try evaluate(filter, scope, pipeInput: value) }
            try assign(target, value, scope, stmt.location)
            return flow
        case .callBlock(let caller, let call):
            let value = try evaluate(call, scope, caller: makeMacro(caller, scope))
            try emit(try printed(value, call.location), call.location)
            return .normal
        case .filterBlock(let filter, let body):
            let (text, flow) = try capture(body, Scope(parent: scope))
            try emit(try printed(try evaluate(filter, scope, pipeInput: .string(text)), filter.location), filter.location)
            return flow
        case .with(let assignments, let body):
            let inner = Scope(parent: scope)
            for (target, expr) in assignments { try assign(target, try evaluate(expr, scope), inner, stmt.location) }
            return try execute(body, inner)
        default:
            preconditionFailure("not a block")
        }
    }

    private func executeFor(target: Target, iterable: Expr, filter: Expr?, body: [Stmt], otherwise: [Stmt], _ scope: Scope) throws -> Flow {
        let sequence = try evaluate(iterable, scope)
        var items: [Value]
        do { items = try iterate(sequence) } catch let e as PyError { throw convert(e, iterable, scope) }
        if let filter {
            items = try items.filter { item in
                try step(Interpreter.iterationSteps, filter.location)
                let s = Scope(parent: scope)
                try assign(target, item, s, filter.location)
                return try evaluate(filter, s).isTruthy
            }
        }
        if items.isEmpty { return try execute(otherwise, Scope(parent: scope)) }
        let state = LoopState(items: items)
        for (index, item) in items.enumerated() {
            try step(Interpreter.iterationSteps, iterable.location)
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
            do { items = try iterate(value) } catch let e as PyError {
                if case .limit(let message) = e { throw error(message, location, kind: .limit) }
                throw error(e.message ?? "cannot unpack", location)
            }
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

    /// The call in progress, for errors raised where no expression is at hand.
    private var callLocation = SourceLocation(line: 0, column: 0)

    /// jinja2's `Macro.__call__`: positional arguments, then keywords for the
    /// remaining parameters, then defaults; extra arguments only if the body reads
    /// `varargs` / `kwargs`.
    private func callMacro(_ macro: MacroSyntax, _ closure: Scope, _ arguments: Arguments) throws -> Value {
        if callDepth >= limits.maxCallDepth {
            throw error("macro calls nested deeper than \(limits.maxCallDepth) (TemplateLimits.maxCallDepth; the template may recurse without end)",
                        callLocation, kind: .limit)
        }
        callDepth += 1
        deepestCalls = Swift.max(deepestCalls, callDepth)
        defer { callDepth -= 1 }
        let scope = try bindArguments(macro, closure, arguments)
        let (text, _) = try capture(macro.body, scope)
        return .string(text)
    }

    private func bindArguments(_ macro: MacroSyntax, _ closure: Scope, _ arguments: Arguments) throws -> Scope {
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
            scope.variables["kwargs"] = try checkedNesting(.object(keywords))
        } else if let first = keywords.keys.first {
            if keywords["caller"] != nil {
                throw PyError.type("macro '\(macro.name)' was invoked with two values for the special caller argument. This is most likely a bug.")
            }
            throw PyError.type("macro '\(macro.name)' takes no keyword argument \(first.pythonRepr)")
        }
        if macro.usesVarargs {
            scope.variables["varargs"] = try checkedNesting(.tuple(Array(arguments.positional.dropFirst(parameters.count))))
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
        return scope
    }

    // MARK: Expressions

    /// Evaluates `expr`. `pipeInput` is the operand of the innermost filter in
    /// `{% filter %}` and `{% set x | f %}`; `caller` is added to the call of `{% call %}`.
    func evaluate(_ expr: Expr, _ scope: Scope, pipeInput: Value? = nil, caller: Value? = nil) throws -> Value {
        try step(1, expr.location)
        try enter(expr.location)
        defer { depth -= 1 }
        do {
            // Each kind of expression has its own function and this dispatcher holds no
            // locals of its own: in a debug build a frame has room for every local of
            // every branch, and evaluation recurses through here once per level.
            switch expr.tag {
            case .simple: return try evaluateSimple(expr, scope)
            case .display: return try evaluateDisplay(expr, scope)
            case .item: return try evaluateItem(expr, scope)
            case .slice: throw PyError.type("a slice is only valid inside []")
            case .call: return try evaluateCall(expr, scope, caller: caller)
            case .filter: return try evaluateFilter(expr, scope, pipeInput: pipeInput)
            case .test: return try evaluateTest(expr, scope)
            case .unary: return try evaluateUnary(expr, scope)
            case .binary: return try evaluateBinary(expr, scope)
            case .compare: return try evaluateCompare(expr, scope)
            case .concat: return try evaluateConcat(expr, scope)
            }
        } catch let e as PyError {
            throw convert(e, expr, scope)
        }
    }

    /// `str(value)` for the output, within the string limit.
    private func printed(_ value: Value, _ location: SourceLocation) throws -> String {
        if case .string(let s) = value { return s }
        if case .markup(let s) = value { return s }
        if case .undefined = value { return "" }
        let text = value.pythonString
        _ = try made(.string(text), location)
        return text
    }

    private func defined(_ expr: Expr, _ scope: Scope) throws -> Value {
        let value = try evaluate(expr, scope)
        if value.isUndefined { throw undefinedError(expr, scope) }
        return value
    }

    private func evaluateSimple(_ expr: Expr, _ scope: Scope) throws -> Value {
        switch expr.kind {
        case .literal(let value): return value
        case .name(let name): return scope.lookup(name) ?? .undefined
        case .attribute(let objectExpr, let name): return Access.attribute(try defined(objectExpr, scope), name)
        case .not(let operand): return .bool(!(try evaluate(operand, scope).isTruthy))
        case .and(let lhs, let rhs):
            let a = try evaluate(lhs, scope)
            return a.isTruthy ? try evaluate(rhs, scope) : a
        case .or(let lhs, let rhs):
            let a = try evaluate(lhs, scope)
            return a.isTruthy ? a : try evaluate(rhs, scope)
        case .conditional(let test, let then, let otherwise):
            if try evaluate(test, scope).isTruthy { return try evaluate(then, scope) }
            guard let otherwise else { return .undefined }
            return try evaluate(otherwise, scope)
        default:
            preconditionFailure("not a simple expression")
        }
    }

    /// `[…]`, `(…)`, `{…}`.
    private func evaluateDisplay(_ expr: Expr, _ scope: Scope) throws -> Value {
        switch expr.kind {
        case .list(let items):
            return try made(try checkedNesting(.array(try items.map { try evaluate($0, scope) })), expr.location)
        case .tuple(let items):
            return try made(try checkedNesting(.tuple(try items.map { try evaluate($0, scope) })), expr.location)
        case .dict(let pairs):
            var object = Object()
            for (k, v) in pairs {
                let key = try evaluate(k, scope)
                guard Object.isHashable(key) else { throw PyError.type("unhashable type: '\(key.pythonTypeName)'") }
                object[key] = try evaluate(v, scope)
            }
            return try made(try checkedNesting(.object(object)), expr.location)
        default:
            preconditionFailure("not a display")
        }
    }

    /// `a[key]` and `a[start:stop:step]`.
    private func evaluateItem(_ expr: Expr, _ scope: Scope) throws -> Value {
        guard case .item(let objectExpr, let keyExpr) = expr.kind else { preconditionFailure("not an item") }
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
            let (start, stop, stride) = (try bound(a), try bound(b), try bound(c))
            if object.isUndefined { throw undefinedError(objectExpr, scope) }
            try step(cost(of: object), expr.location)
            return try made(try Access.slice(object, start, stop, stride), expr.location)
        }
        let key = try evaluate(keyExpr, scope)
        if object.isUndefined { throw undefinedError(objectExpr, scope) }
        if object.stringValue != nil { try step(cost(of: object), expr.location) }
        return Access.item(object, key)
    }

    /// As compiled by jinja2: the callee (`obj.attr` fails at once on an undefined obj),
    /// then the arguments, then the call. (The call itself happens here, in a small frame:
    /// macros recurse through it.)
    private func evaluateCall(_ expr: Expr, _ scope: Scope, caller: Value?) throws -> Value {
        let (function, arguments, result) = try prepareCall(expr, scope, caller: caller)
        if let result { return try made(result, expr.location) }
        callLocation = expr.location
        return try made(try call(function, arguments), expr.location)
    }

    /// The function and its arguments, or the result of a method of a str, list or dict.
    private func prepareCall(_ expr: Expr, _ scope: Scope, caller: Value?) throws -> (Value, Arguments, Value?) {
        guard case .call(let callee, let syntax) = expr.kind else { preconditionFailure("not a call") }
        if case .attribute(let objectExpr, let name) = callee.kind {
            let object = try defined(objectExpr, scope)
            var arguments = try evaluateArguments(syntax, scope)
            if let caller { arguments.keywords.append(("caller", caller)) }
            try step(cost(of: object), expr.location)
            if let result = try Methods.call(object, name, arguments, self) { return (.undefined, arguments, result) }
            let function = Access.attribute(object, name)
            if function.isUndefined { throw undefinedError(callee, scope) }
            return (function, arguments, nil)
        }
        let function = try evaluate(callee, scope)
        var arguments = try evaluateArguments(syntax, scope)
        if let caller { arguments.keywords.append(("caller", caller)) }
        if function.isUndefined { throw undefinedError(callee, scope) }
        return (function, arguments, nil)
    }

    private func evaluateFilter(_ expr: Expr, _ scope: Scope, pipeInput: Value?) throws -> Value {
        guard case .filter(let operand, let name, let syntax) = expr.kind else { preconditionFailure("not a filter") }
        let input: Value
        if let operand { input = try evaluate(operand, scope, pipeInput: pipeInput) } else { input = pipeInput ?? .undefined }
        let arguments = try evaluateArguments(syntax, scope)
        try step(cost(of: input), expr.location)
        do {
            return try made(try Filters.apply(name, input, arguments, self), expr.location)
        } catch PyError.undefined(nil) {
            if let operand { throw undefinedError(operand, scope) }
            throw PyError.undefined("undefined value")
        }
    }

    private func evaluateTest(_ expr: Expr, _ scope: Scope) throws -> Value {
        guard case .test(let operand, let name, let syntax) = expr.kind else { preconditionFailure("not a test") }
        let input = try evaluate(operand, scope)
        let arguments = try evaluateArguments(syntax, scope)
        for argument in arguments.positional { try step(cost(of: argument), expr.location) }
        do {
            return .bool(try Tests.apply(name, input, arguments, self))
        } catch PyError.undefined(nil) {
            throw undefinedError(operand, scope)
        }
    }

    /// `-x`, `+x`.
    private func evaluateUnary(_ expr: Expr, _ scope: Scope) throws -> Value {
        switch expr.kind {
        case .negate(let operand):
            switch try defined(operand, scope) {
            case .int(let i): return .int(try i.checkedNegated())
            case .double(let d): return .double(-d)
            case .bool(let b): return .int(b ? -1 : 0)
            case let v: throw PyError.type("bad operand type for unary -: '\(v.pythonTypeName)'")
            }
        case .plus(let operand):
            let v = try defined(operand, scope)
            if case .bool(let b) = v { return .int(b ? 1 : 0) }
            guard v.isNumber else { throw PyError.type("bad operand type for unary +: '\(v.pythonTypeName)'") }
            return v
        default:
            preconditionFailure("not unary")
        }
    }

    private func evaluateBinary(_ expr: Expr, _ scope: Scope) throws -> Value {
        guard case .binary(let op, let lhs, let rhs) = expr.kind else { preconditionFailure("not binary") }
        // Python evaluates both operands before the operator fails on an undefined one;
        // `str % x` accepts anything (str.__mod__ is tried first).
        let a = try evaluate(lhs, scope)
        let b = try evaluate(rhs, scope)
        if a.isUndefined { throw undefinedError(lhs, scope) }
        if b.isUndefined && !(op == .mod && a.stringValue != nil) { throw undefinedError(rhs, scope) }
        return try made(try Operators.binary(op, a, b), expr.location)
    }

    private func evaluateCompare(_ expr: Expr, _ scope: Scope) throws -> Value {
        guard case .compare(let first, let ops) = expr.kind else { preconditionFailure("not a comparison") }
        var left = try evaluate(first, scope)
        var leftExpr = first
        for (op, rightExpr) in ops {
            let right = try evaluate(rightExpr, scope)
            try step(cost(of: right), rightExpr.location)
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
    }

    /// `a ~ b ~ c`, refused before joining when it would pass the string limit.
    private func evaluateConcat(_ expr: Expr, _ scope: Scope) throws -> Value {
        guard case .concat(let parts) = expr.kind else { preconditionFailure("not a concatenation") }
        var texts: [String] = []
        var total = 0
        for part in parts {
            let text = try evaluate(part, scope).pythonString
            total += text.utf8.count
            if total > limits.maxStringBytes { throw Limit.stringTooLong(total) }
            texts.append(text)
        }
        return try made(.string(texts.joined()), expr.location)
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
        let changed = Value.function(Function(name: "changed", captured: { shared.lastChanged ?? [] }) { arguments, _ in
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
            captured: { items + (shared.lastChanged ?? []) },
            call: { _, _ in throw PyError.type("The loop must have the 'recursive' marker to be called recursively.") }))
    }
}
