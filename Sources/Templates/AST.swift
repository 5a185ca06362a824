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

    let kind: Kind
    let location: SourceLocation

    init(_ kind: Kind, _ location: SourceLocation) {
        self.kind = kind
        self.location = location
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
