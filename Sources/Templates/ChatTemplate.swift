import Foundation

/// A Hugging Face chat template (`tokenizer.chat_template`), parsed once and rendered
/// per turn the way transformers' `apply_chat_template` renders it: jinja2's
/// ImmutableSandboxedEnvironment with `trim_blocks` and `lstrip_blocks`, the
/// `{% generation %}` and loop-control extensions, transformers' `tojson`, and the
/// globals `raise_exception`, `strftime_now`, `namespace`, `dict` and `range`.
public struct ChatTemplate: Sendable {
    public let source: String
    public let name: String
    /// What a render may cost (`TemplateLimits.default` unless given).
    public let limits: TemplateLimits
    private let body: [Stmt]

    /// Parses `source`.
    /// - Throws: `TemplateError` (kind `.syntax`) with the line and column of the fault,
    ///   also for a filter or test jinja2 would reject when compiling; kind `.limit` for
    ///   blocks and expressions nested deeper than `limits.maxNesting`.
    public init(source: String, name: String = "template", limits: TemplateLimits = .default) throws {
        self.source = source
        self.name = name
        self.limits = limits
        body = try WorkerThread.run {
            var lexer = Lexer(source: source, templateName: name)
            var parser = Parser(tokens: try lexer.tokenize(), templateName: name, maxNesting: limits.maxNesting)
            return try parser.parseTemplate()
        }
    }

    /// Low level: renders with any context variables.
    /// - Parameters:
    ///   - now: what `strftime_now` formats, as a naive local time in `timeZone`.
    ///   - limits: the budget of this render (default: the template's `limits`).
    ///   - shouldStop: asked every `limits.stepsBetweenCancellationChecks` steps, on the
    ///     thread that renders (a worker thread: see `WorkerThread`); when it returns true the render stops with a `TemplateError`
    ///     of kind `.cancelled` (e.g. Ctrl-C in the REPL sets a flag it reads).
    /// - Throws: `TemplateError`; for `raise_exception(msg)` its description is `msg`;
    ///   kind `.limit` when the template goes past one of `limits`.
    public func render(context: [String: Value], now: Date = Date(), timeZone: TimeZone = .current,
                       limits: TemplateLimits? = nil, shouldStop: (@Sendable () -> Bool)? = nil) throws -> String {
        try WorkerThread.run {
            let interpreter = Interpreter(templateName: name, now: now, timeZone: timeZone, limits: limits ?? self.limits,
                                          shouldStop: shouldStop)
            return try interpreter.render(body, context: context)
        }
    }

    /// Renders on the calling thread (no worker thread): for tests of the stack guard.
    func renderInline(context: [String: Value], limits: TemplateLimits? = nil) throws -> String {
        let interpreter = Interpreter(templateName: name, now: Date(), timeZone: .current, limits: limits ?? self.limits)
        return try interpreter.render(body, context: context)
    }

    /// Parses on the calling thread (no worker thread): for tests of the stack guard.
    static func parseInline(source: String, limits: TemplateLimits) throws {
        var lexer = Lexer(source: source, templateName: "template")
        var parser = Parser(tokens: try lexer.tokenize(), templateName: "template", maxNesting: limits.maxNesting)
        _ = try parser.parseTemplate()
    }

    /// What the REPL calls: `messages` become objects `{"role", "content"}` (in that key
    /// order), with `add_generation_prompt`, `bos_token` and `eos_token`; `tools` and
    /// `documents` are left undefined.
    public func render(messages: [(role: String, content: String)], addGenerationPrompt: Bool,
                       bosToken: String, eosToken: String, now: Date = Date(), timeZone: TimeZone = .current,
                       limits: TemplateLimits? = nil, shouldStop: (@Sendable () -> Bool)? = nil) throws -> String {
        let list = Value.array(messages.map { .object(["role": .string($0.role), "content": .string($0.content)]) })
        return try render(context: ChatTemplate.context(messages: list, addGenerationPrompt: addGenerationPrompt,
                                                        bosToken: bosToken, eosToken: eosToken),
                          now: now, timeZone: timeZone, limits: limits, shouldStop: shouldStop)
    }

    /// Parses and reports the deepest nesting and the lowest stack address the parser reached.
    static func measureParse(source: String, limits: TemplateLimits) throws -> (nesting: Int, lowestStackAddress: UInt) {
        var lexer = Lexer(source: source, templateName: "template")
        var parser = Parser(tokens: try lexer.tokenize(), templateName: "template", maxNesting: limits.maxNesting)
        _ = try parser.parseTemplate()
        return (parser.deepest, parser.lowestStackAddress)
    }

    /// Renders and reports what the render used, for measurements against the limits.
    func measure(context: [String: Value], now: Date = Date(), timeZone: TimeZone = .current,
                 limits: TemplateLimits? = nil) throws -> (output: String, usage: RenderUsage) {
        let interpreter = Interpreter(templateName: name, now: now, timeZone: timeZone, limits: limits ?? self.limits)
        let output = try interpreter.render(body, context: context)
        return (output, RenderUsage(steps: interpreter.steps, depth: interpreter.deepest, callDepth: interpreter.deepestCalls,
                                    lowestStackAddress: interpreter.lowestStackAddress, nesting: maxNesting(body)))
    }

    /// The context `apply_chat_template` builds (without `tools`/`documents`), for
    /// messages given as values (e.g. parsed with `Value(json:)`, extra keys kept).
    public static func context(messages: Value, addGenerationPrompt: Bool, bosToken: String, eosToken: String) -> [String: Value] {
        ["messages": messages, "add_generation_prompt": .bool(addGenerationPrompt),
         "bos_token": .string(bosToken), "eos_token": .string(eosToken)]
    }
}

/// What one render used (`ChatTemplate.measure`).
struct RenderUsage {
    var steps: Int
    /// Deepest interpreter recursion and deepest macro calls.
    var depth: Int
    var callDepth: Int
    var lowestStackAddress: UInt
    /// Deepest nesting of the parsed template (blocks plus expression depth).
    var nesting: Int
}

/// Blocks inside blocks plus the deepest expression, as the parser limits it.
func maxNesting(_ body: [Stmt]) -> Int {
    func expr(_ e: Expr?) -> Int { e?.depth ?? 0 }
    func stmts(_ body: [Stmt]) -> Int { body.reduce(0) { max($0, stmt($1)) } }
    func stmt(_ s: Stmt) -> Int {
        switch s.kind {
        case .text, .loopBreak, .loopContinue: return 0
        case .output(let e), .assign(_, let e): return expr(e)
        case .ifChain(let branches, let otherwise):
            return 1 + max(branches.reduce(0) { max($0, expr($1.0), stmts($1.1)) }, stmts(otherwise))
        case .forLoop(_, let iterable, let filter, let body, let otherwise, _):
            return 1 + max(expr(iterable), expr(filter), stmts(body), stmts(otherwise))
        case .assignBlock(_, let filter, let body): return 1 + max(expr(filter), stmts(body))
        case .macro(let m): return 1 + max(m.defaults.reduce(0) { max($0, $1.depth) }, stmts(m.body))
        case .callBlock(let caller, let call): return 1 + max(expr(call), stmts(caller.body))
        case .filterBlock(let filter, let body): return 1 + max(expr(filter), stmts(body))
        case .with(let assignments, let body): return 1 + max(assignments.reduce(0) { max($0, $1.1.depth) }, stmts(body))
        case .scoped(let body): return 1 + stmts(body)
        }
    }
    return stmts(body)
}
