// The syntax tree: jinja2's nodes (jinja2/nodes.py) that chat templates use.

/// Arguments written at a call site: `f(a, b, k=v, *rest, **more)`.
struct CallSyntax {
    var positional: [Expr] = []
    var keywords: [(String, Expr)] = []
    var star: Expr? = nil
    var starStar: Expr? = nil
}

final class Expr: @unchecked Sendable {
    enum BinaryOp: String {
        case add = "+", sub = "-", mul = "*", div = "/", floorDiv = "//", mod = "%", pow = "**"
    }

    enum CompareOp: String {
        case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">=", `in` = "in", notIn = "not in"
    }

    enum Kind {
        case literal(Value)
        case name(String)
        case list([Expr])
        case tuple([Expr])
        case dict([(Expr, Expr)])
        /// `a.b`
        case attribute(Expr, String)
        /// `a[b]`; the key may be a `.slice`.
        case item(Expr, Expr)
        case slice(Expr?, Expr?, Expr?)
        case call(Expr, CallSyntax)
        /// `x | name(args)`; no operand in `{% filter %}` blocks and `{% set x | f %}`.
        case filter(Expr?, String, CallSyntax)
        /// `x is name(args)`
        case test(Expr, String, CallSyntax)
        case negate(Expr)
        case plus(Expr)
        case not(Expr)
        case binary(BinaryOp, Expr, Expr)
        case and(Expr, Expr)
        case or(Expr, Expr)
        case compare(Expr, [(CompareOp, Expr)])
        /// `a ~ b ~ c`
        case concat([Expr])
        /// `a if test else b`; without `else`, undefined when the test is false.
        case conditional(test: Expr, then: Expr, otherwise: Expr?)
    }

    /// The case of `kind` without its payload: what the interpreter dispatches on (a
    /// switch over `kind` itself copies the payloads, which costs stack in debug builds).
    enum Tag: UInt8 {
        case simple, display, item, slice, call, filter, test, unary, binary, compare, concat
    }

    let kind: Kind
    let tag: Tag
    let location: SourceLocation
    /// 1 for a leaf, else 1 + the deepest operand: how deep evaluating it recurses (and
    /// freeing it, and every walk over it). The parser bounds it by `maxNesting`.
    let depth: Int

    init(_ kind: Kind, _ location: SourceLocation) {
        self.kind = kind
        self.location = location
        self.depth = 1 + Expr.deepest(kind)
        switch kind {
        case .literal, .name, .attribute, .not, .and, .or, .conditional: tag = .simple
        case .list, .tuple, .dict: tag = .display
        case .item: tag = .item
        case .slice: tag = .slice
        case .call: tag = .call
        case .filter: tag = .filter
        case .test: tag = .test
        case .negate, .plus: tag = .unary
        case .binary: tag = .binary
        case .compare: tag = .compare
        case .concat: tag = .concat
        }
    }

    private static func deepest(_ kind: Kind) -> Int {
        func d(_ e: Expr?) -> Int { e?.depth ?? 0 }
        func d(_ items: [Expr]) -> Int { items.reduce(0) { max($0, $1.depth) } }
        func d(_ args: CallSyntax) -> Int {
            max(d(args.positional), args.keywords.reduce(0) { max($0, $1.1.depth) }, d(args.star), d(args.starStar))
        }
        switch kind {
        case .literal, .name: return 0
        case .list(let items), .tuple(let items), .concat(let items): return d(items)
        case .dict(let pairs): return pairs.reduce(0) { max($0, $1.0.depth, $1.1.depth) }
        case .attribute(let o, _): return o.depth
        case .item(let o, let k): return max(o.depth, k.depth)
        case .slice(let a, let b, let c): return max(d(a), d(b), d(c))
        case .call(let callee, let args): return max(callee.depth, d(args))
        case .filter(let o, _, let args): return max(d(o), d(args))
        case .test(let o, _, let args): return max(o.depth, d(args))
        case .negate(let o), .plus(let o), .not(let o): return o.depth
        case .binary(_, let a, let b), .and(let a, let b), .or(let a, let b): return max(a.depth, b.depth)
        case .compare(let first, let ops): return ops.reduce(first.depth) { max($0, $1.1.depth) }
        case .conditional(let t, let a, let b): return max(t.depth, a.depth, d(b))
        }
    }
}

/// Where `{% set %}` and `{% for %}` store values.
indirect enum Target {
    case name(String)
    case tuple([Target])
    /// `ns.attr` (namespace attribute)
    case attribute(String, String)
}

struct MacroSyntax {
    var name: String
    var parameters: [String]
    /// Defaults of the last `defaults.count` parameters.
    var defaults: [Expr]
    var body: [Stmt]
    /// Whether the body mentions `varargs`, `kwargs`, `caller` (jinja2's catch_varargs…).
    var usesVarargs = false, usesKwargs = false, usesCaller = false

    init(name: String, parameters: [String], defaults: [Expr], body: [Stmt]) {
        self.name = name
        self.parameters = parameters
        self.defaults = defaults
        self.body = body
        let names = referencedNames(body)
        usesVarargs = names.contains("varargs")
        usesKwargs = names.contains("kwargs")
        usesCaller = names.contains("caller")
    }
}

final class Stmt: @unchecked Sendable {
    enum Kind {
        case text(String)
        case output(Expr)
        case ifChain([(Expr, [Stmt])], otherwise: [Stmt])
        case forLoop(target: Target, iterable: Expr, filter: Expr?, body: [Stmt], otherwise: [Stmt], recursive: Bool)
        case assign(Target, Expr)
        /// `{% set x | filters %}body{% endset %}`
        case assignBlock(Target, filter: Expr?, body: [Stmt])
        case macro(MacroSyntax)
        /// `{% call(params) macro(args) %}body{% endcall %}`: `caller` is the body.
        case callBlock(caller: MacroSyntax, call: Expr)
        /// `{% filter f %}body{% endfilter %}`: `filter` has no operand.
        case filterBlock(filter: Expr, body: [Stmt])
        case with([(Target, Expr)], body: [Stmt])
        /// A body rendered in its own scope: `{% generation %}` (transformers' AssistantTracker), `{% autoescape %}`.
        case scoped([Stmt])
        case loopBreak
        case loopContinue
    }

    let kind: Kind
    let location: SourceLocation

    init(_ kind: Kind, _ location: SourceLocation) {
        self.kind = kind
        self.location = location
    }
}

// MARK: - Names a body refers to

/// Every variable name read anywhere in `body` (nested macros included), as jinja2's
/// `find_undeclared` sees them: a macro takes extra positional arguments only if its
/// body mentions `varargs`, extra keywords only with `kwargs`, a caller only with `caller`.
func referencedNames(_ body: [Stmt]) -> Set<String> {
    var names = Set<String>()
    func visit(_ e: Expr?) {
        guard let e else { return }
        switch e.kind {
        case .literal: break
        case .name(let n): names.insert(n)
        case .list(let items), .tuple(let items), .concat(let items): items.forEach(visit)
        case .dict(let pairs): pairs.forEach { visit($0.0); visit($0.1) }
        case .attribute(let o, _): visit(o)
        case .item(let o, let k): visit(o); visit(k)
        case .slice(let a, let b, let c): visit(a); visit(b); visit(c)
        case .call(let callee, let args): visit(callee); visit(args)
        case .filter(let o, _, let args): visit(o); visit(args)
        case .test(let o, _, let args): visit(o); visit(args)
        case .negate(let o), .plus(let o), .not(let o): visit(o)
        case .binary(_, let a, let b), .and(let a, let b), .or(let a, let b): visit(a); visit(b)
        case .compare(let first, let ops): visit(first); ops.forEach { visit($0.1) }
        case .conditional(let t, let a, let b): visit(t); visit(a); visit(b)
        }
    }
    func visit(_ args: CallSyntax) {
        args.positional.forEach(visit)
        args.keywords.forEach { visit($0.1) }
        visit(args.star)
        visit(args.starStar)
    }
    func visit(_ stmts: [Stmt]) {
        for s in stmts {
            switch s.kind {
            case .text, .loopBreak, .loopContinue: break
            case .output(let e): visit(e)
            case .ifChain(let branches, let otherwise):
                branches.forEach { visit($0.0); visit($0.1) }
                visit(otherwise)
            case .forLoop(_, let iterable, let filter, let body, let otherwise, _):
                visit(iterable); visit(filter); visit(body); visit(otherwise)
            case .assign(_, let e): visit(e)
            case .assignBlock(_, let filter, let body): visit(filter); visit(body)
            case .macro(let m): m.defaults.forEach(visit); visit(m.body)
            case .callBlock(let caller, let call): caller.defaults.forEach(visit); visit(caller.body); visit(call)
            case .filterBlock(let filter, let body): visit(filter); visit(body)
            case .with(let assignments, let body): assignments.forEach { visit($0.1) }; visit(body)
            case .scoped(let body): visit(body)
            }
        }
    }
    visit(body)
    return names
}
