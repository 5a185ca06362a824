// Port of jinja2's parser (jinja2/parser.py, 3.1): the same grammar and operator
// precedence, with the tags chat templates use plus HF's `{% generation %}` and the
// loopcontrols extension's `{% break %}` / `{% continue %}`.
//
// Precedence, loosest first: `x if c else y`, `or`, `and`, `not`, comparisons and
// `in`/`not in`, `+ -`, `~`, `* / // %`, `**`, unary `- +`, then postfix `.a`, `[i]`,
// calls, `| filter` and `is test` (so `-x | abs` is `(-x) | abs`).

struct Parser {
    private var tokens: [Token]
    private var i = 0
    private let templateName: String
    /// Inside an `if` or an inline if: jinja2 reports an unknown filter or test there
    /// only when it is reached at run time, elsewhere when the template is compiled.
    private var soft = false
    private var filterUses: [(name: String, isFilter: Bool, location: SourceLocation, soft: Bool)] = []
    private var loopDepth = 0
    private var tagStack: [String] = []
    private var endTokenStack: [[String]] = []
    /// `TemplateLimits.maxNesting`, and how deep the parser has recursed.
    private let maxNesting: Int
    private var nesting = 0

    init(tokens: [Token], templateName: String, maxNesting: Int = TemplateLimits.default.maxNesting) {
        self.tokens = tokens
        self.templateName = templateName
        self.maxNesting = maxNesting
    }

    mutating func parseTemplate() throws -> [Stmt] {
        let body = try subparse(endTokens: nil)
        for use in filterUses where !use.soft {
            let known = use.isFilter ? Filters.names.contains(use.name) : Tests.names.contains(use.name)
            if !known {
                throw error("No \(use.isFilter ? "filter" : "test") named '\(use.name)'.", use.location)
            }
        }
        return body
    }

    // MARK: Token stream

    private var current: Token { tokens[i] }
    private func look() -> Token { tokens[min(i + 1, tokens.count - 1)] }

    @discardableResult
    private mutating func advance() -> Token {
        let t = tokens[i]
        if i < tokens.count - 1 { i += 1 }
        return t
    }

    private func error(_ message: String, _ location: SourceLocation? = nil) -> TemplateError {
        let loc = location ?? current.location
        return TemplateError(message: message, line: loc.line, column: loc.column, kind: .syntax, templateName: templateName)
    }

    // MARK: Nesting limit

    private func nestingError(_ location: SourceLocation) -> TemplateError {
        TemplateError(message: "blocks and expressions nested deeper than \(maxNesting) (TemplateLimits.maxNesting)",
                      line: location.line, column: location.column, kind: .limit, templateName: templateName)
    }

    /// One level deeper into a recursion of the parser; `leave()` on the way out.
    private mutating func enter() throws {
        nesting += 1
        if nesting > maxNesting { throw nestingError(current.location) }
        var marker = 0
        let here = withUnsafeMutablePointer(to: &marker) { UInt(bitPattern: $0) }
        if here < stackFloor {
            throw TemplateError(message: "the template nests too deeply for the stack of this thread", line: current.location.line,
                                column: current.location.column, kind: .limit, templateName: templateName)
        }
        if nesting > deepest {
            deepest = nesting
            lowestStackAddress = here
        }
    }

    /// The parser stops 96 KiB before the end of the stack, whatever its frames cost.
    private let stackFloor = StackBounds.floor(reserving: 96 << 10)

    /// The deepest nesting reached, and the stack address there (for measurements).
    private(set) var deepest = 0
    private(set) var lowestStackAddress = UInt.max

    private mutating func leave() { nesting -= 1 }

    /// A syntax tree node, refused when it makes an expression deeper than the limit
    /// (chains such as `a.b.c…`, `x|f|f…` or `1+1+…` grow the tree without recursing here).
    private func make(_ kind: Expr.Kind, _ location: SourceLocation) throws -> Expr {
        let e = Expr(kind, location)
        if e.depth > maxNesting { throw nestingError(location) }
        return e
    }

    private func describe(_ t: Token) -> String {
        switch t.kind {
        case .blockEnd: return "%}"
        case .variableEnd: return "}}"
        case .blockBegin: return "{%"
        case .variableBegin: return "{{"
        default: return t.described
        }
    }

    private func unexpected(_ t: Token) -> TemplateError {
        if t.kind == .eof { return error("unexpected end of template", t.location) }
        return error("unexpected '\(describe(t))'", t.location)
    }

    private mutating func expect(_ kind: Token.Kind, _ what: String) throws {
        guard current.kind == kind else {
            if current.kind == .eof { throw error("unexpected end of template, expected '\(what)'") }
            throw error("expected token '\(what)', got '\(describe(current))'")
        }
        advance()
    }

    private mutating func expectOp(_ op: String) throws {
        guard current.isOp(op) else {
            if current.kind == .eof { throw error("unexpected end of template, expected '\(op)'") }
            throw error("expected token '\(op)', got '\(describe(current))'")
        }
        advance()
    }

    private mutating func expectName(_ name: String? = nil) throws -> Token {
        guard current.kind == .name, name == nil || current.text == name! else {
            let what = name ?? "name"
            if current.kind == .eof { throw error("unexpected end of template, expected '\(what)'") }
            throw error("expected token '\(what)', got '\(describe(current))'")
        }
        return advance()
    }

    private mutating func skipOp(_ op: String) -> Bool {
        if current.isOp(op) { advance(); return true }
        return false
    }

    private mutating func skipName(_ name: String) -> Bool {
        if current.isName(name) { advance(); return true }
        return false
    }

    // MARK: Statements

    private mutating func subparse(endTokens: [String]?) throws -> [Stmt] {
        var body: [Stmt] = []
        if let endTokens { endTokenStack.append(endTokens) }
        defer { if endTokens != nil { endTokenStack.removeLast() } }
        while true {
            let t = current
            switch t.kind {
            case .data:
                body.append(Stmt(.text(t.text), t.location))
                advance()
            case .variableBegin:
                advance()
                let e = try parseTuple()
                try expect(.variableEnd, "}}")
                body.append(Stmt(.output(e), t.location))
            case .blockBegin:
                advance()
                if let endTokens, current.kind == .name, endTokens.contains(current.text) { return body }
                body += try parseStatement()
                try expect(.blockEnd, "%}")
            case .eof:
                if endTokens != nil { throw unclosed(tag: nil) }
                return body
            default:
                throw unexpected(t)
            }
        }
    }

    /// jinja2's messages for an unknown tag or an unclosed block.
    private func unclosed(tag: String?) -> TemplateError {
        var parts = [tag.map { "Encountered unknown tag '\($0)'." } ?? "Unexpected end of template."]
        if let looking = endTokenStack.last {
            let list = looking.map { "'\($0)'" }.joined(separator: " or ")
            if let tag, endTokenStack.joined().contains(tag) {
                parts.append("You probably made a nesting mistake. Jinja is expecting this tag, but currently looking for \(list).")
            } else {
                parts.append("Jinja was looking for the following tags: \(list).")
            }
        }
        if let innermost = tagStack.last { parts.append("The innermost block that needs to be closed is '\(innermost)'.") }
        return error(parts.joined(separator: " "))
    }

    private mutating func parseStatement() throws -> [Stmt] {
        let t = current
        guard t.kind == .name else { throw error("tag name expected") }
        try enter()
        defer { leave() }
        tagStack.append(t.text)
        defer { tagStack.removeLast() }
        switch t.text {
        case "for": return [try parseFor()]
        case "if": return [try parseIf()]
        case "set": return [try parseSet()]
        case "macro": return [try parseMacro()]
        case "call": return [try parseCallBlock()]
        case "filter": return [try parseFilterBlock()]
        case "with": return [try parseWith()]
        case "print":
            advance()
            var out: [Stmt] = []
            while current.kind != .blockEnd {
                if !out.isEmpty { try expectOp(",") }
                let e = try parseExpression()
                out.append(Stmt(.output(e), e.location))
            }
            return out
        case "generation", "autoescape":
            advance()
            if t.text == "autoescape" { _ = try parseExpression() }
            let body = try innerStatements(["end" + t.text])
            return [Stmt(.scoped(body), t.location)]
        case "break", "continue":
            advance()
            guard loopDepth > 0 else { throw error("'\(t.text)' outside loop", t.location) }
            return [Stmt(t.text == "break" ? .loopBreak : .loopContinue, t.location)]
        case "block", "extends", "include", "import", "from":
            throw error("the '\(t.text)' tag is not supported in chat templates", t.location)
        default:
            tagStack.removeLast()
            let failure = unclosed(tag: t.text)
            tagStack.append(t.text)
            throw failure
        }
    }

    /// `%}` then statements up to one of `endTokens`; the end token stays current.
    private mutating func parseStatements(_ endTokens: [String], dropNeedle: Bool = false) throws -> [Stmt] {
        _ = skipOp(":")
        try expect(.blockEnd, "%}")
        let body = try subparse(endTokens: endTokens)
        if dropNeedle { advance() }
        return body
    }

    /// The body of a statement that gets its own frame in jinja2 (for, macro, set block…).
    private mutating func innerStatements(_ endTokens: [String], dropNeedle: Bool = true, inLoop: Bool = false) throws -> [Stmt] {
        let (savedSoft, savedDepth) = (soft, loopDepth)
        soft = false
        loopDepth = inLoop ? loopDepth + 1 : (endTokens.first == "endmacro" || endTokens.first == "endcall" ? 0 : loopDepth)
        defer { (soft, loopDepth) = (savedSoft, savedDepth) }
        return try parseStatements(endTokens, dropNeedle: dropNeedle)
    }

    private mutating func parseFor() throws -> Stmt {
        let location = advance().location
        let target = try parseAssignTarget(extraEndRules: ["in"])
        _ = try expectName("in")
        let iterable = try parseTuple(withCondexpr: false, extraEndRules: ["recursive"])
        let savedSoft = soft
        soft = false
        var filter: Expr?
        if skipName("if") { filter = try parseExpression() }
        soft = savedSoft
        let recursive = skipName("recursive")
        let body = try innerStatements(["endfor", "else"], dropNeedle: false, inLoop: true)
        var otherwise: [Stmt] = []
        if advance().text == "else" { otherwise = try innerStatements(["endfor"]) }
        return Stmt(.forLoop(target: target, iterable: iterable, filter: filter, body: body, otherwise: otherwise, recursive: recursive), location)
    }

    private mutating func parseIf() throws -> Stmt {
        let location = advance().location
        let savedSoft = soft
        soft = true
        defer { soft = savedSoft }
        var branches: [(Expr, [Stmt])] = []
        var otherwise: [Stmt] = []
        while true {
            let test = try parseTuple(withCondexpr: false)
            let body = try parseStatements(["elif", "else", "endif"])
            branches.append((test, body))
            let t = advance()
            if t.text == "elif" { continue }
            if t.text == "else" { otherwise = try parseStatements(["endif"], dropNeedle: true) }
            break
        }
        return Stmt(.ifChain(branches, otherwise: otherwise), location)
    }

    private mutating func parseSet() throws -> Stmt {
        let location = advance().location
        let target = try parseAssignTarget(withNamespace: true)
        if skipOp("=") {
            return Stmt(.assign(target, try parseTuple()), location)
        }
        let filter = try parseFilter(nil)
        let body = try innerStatements(["endset"])
        return Stmt(.assignBlock(target, filter: filter, body: body), location)
    }

    private mutating func parseSignature() throws -> ([String], [Expr]) {
        var parameters: [String] = [], defaults: [Expr] = []
        try expectOp("(")
        while !current.isOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            parameters.append(try expectName().text)
            if skipOp("=") {
                defaults.append(try parseExpression())
            } else if !defaults.isEmpty {
                throw error("non-default argument follows default argument")
            }
        }
        try expectOp(")")
        return (parameters, defaults)
    }

    private mutating func parseMacro() throws -> Stmt {
        let location = advance().location
        let name = try expectName().text
        let (parameters, defaults) = try parseSignature()
        let body = try innerStatements(["endmacro"])
        return Stmt(.macro(MacroSyntax(name: name, parameters: parameters, defaults: defaults, body: body)), location)
    }

    private mutating func parseCallBlock() throws -> Stmt {
        let location = advance().location
        var (parameters, defaults): ([String], [Expr]) = ([], [])
        if current.isOp("(") { (parameters, defaults) = try parseSignature() }
        let call = try parseExpression()
        guard case .call = call.kind else { throw error("expected call", location) }
        let body = try innerStatements(["endcall"])
        return Stmt(.callBlock(caller: MacroSyntax(name: "caller", parameters: parameters, defaults: defaults, body: body), call: call), location)
    }

    private mutating func parseFilterBlock() throws -> Stmt {
        let location = advance().location
        guard let filter = try parseFilter(nil, startInline: true) else { throw error("expected a filter") }
        let body = try innerStatements(["endfilter"])
        return Stmt(.filterBlock(filter: filter, body: body), location)
    }

    private mutating func parseWith() throws -> Stmt {
        let location = advance().location
        var assignments: [(Target, Expr)] = []
        while current.kind != .blockEnd {
            if !assignments.isEmpty { try expectOp(",") }
            let target = try parseAssignTarget()
            try expectOp("=")
            assignments.append((target, try parseExpression()))
        }
        let body = try innerStatements(["endwith"])
        return Stmt(.with(assignments, body: body), location)
    }

    // MARK: Assignment targets

    private func isTupleEnd(_ extraEndRules: [String]?) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd: return true
        case .op where current.text == ")": return true
        case .name: return extraEndRules?.contains(current.text) ?? false
        default: return false
        }
    }

    private mutating func parseAssignTarget(extraEndRules: [String]? = nil, withNamespace: Bool = false) throws -> Target {
        var items: [Target] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEndRules) { break }
            items.append(try parseTargetPrimary(withNamespace: withNamespace))
            if current.isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            guard let first = items.first else { throw error("Expected an expression, got '\(describe(current))'") }
            return first
        }
        return .tuple(items)
    }

    private mutating func parseTargetPrimary(withNamespace: Bool) throws -> Target {
        let t = current
        if t.kind == .name, !["true", "false", "True", "False", "none", "None"].contains(t.text) {
            advance()
            if withNamespace && current.isOp(".") {
                advance()
                return .attribute(t.text, try expectName().text)
            }
            return .name(t.text)
        }
        if t.isOp("(") {
            advance()
            try enter()
            defer { leave() }
            let target = try parseAssignTarget(withNamespace: withNamespace)
            try expectOp(")")
            return target
        }
        if t.kind == .eof { throw unexpected(t) }
        throw error("can't assign to '\(describe(t))'")
    }

    // MARK: Expressions

    private mutating func parseExpression(withCondexpr: Bool = true) throws -> Expr {
        try enter()
        defer { leave() }
        return withCondexpr ? try parseCondexpr() : try parseOr()
    }

    private mutating func parseCondexpr() throws -> Expr {
        let mark = filterUses.count
        var expr = try parseOr()
        while current.isName("if") {
            let location = advance().location
            let test = try parseOr()
            let otherwise = skipName("else") ? try parseExpression() : nil
            expr = try make(.conditional(test: test, then: expr, otherwise: otherwise), location)
            for k in mark..<filterUses.count { filterUses[k].soft = true }
        }
        return expr
    }

    private mutating func parseOr() throws -> Expr {
        var left = try parseAnd()
        while current.isName("or") {
            let location = advance().location
            left = try make(.or(left, try parseAnd()), location)
        }
        return left
    }

    private mutating func parseAnd() throws -> Expr {
        var left = try parseNot()
        while current.isName("and") {
            let location = advance().location
            left = try make(.and(left, try parseNot()), location)
        }
        return left
    }

    private mutating func parseNot() throws -> Expr {
        if current.isName("not") {
            let location = advance().location
            try enter()
            defer { leave() }
            return try make(.not(try parseNot()), location)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws -> Expr {
        let location = current.location
        let expr = try parseMath1()
        var ops: [(Expr.CompareOp, Expr)] = []
        while true {
            if current.kind == .op, let op = Expr.CompareOp(rawValue: current.text), op != .in, op != .notIn {
                advance()
                ops.append((op, try parseMath1()))
            } else if skipName("in") {
                ops.append((.in, try parseMath1()))
            } else if current.isName("not") && look().isName("in") {
                advance(); advance()
                ops.append((.notIn, try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? expr : try make(.compare(expr, ops), location)
    }

    private mutating func parseMath1() throws -> Expr {
        var left = try parseConcat()
        while current.isOp("+") || current.isOp("-") {
            let t = advance()
            left = try make(.binary(t.text == "+" ? .add : .sub, left, try parseConcat()), t.location)
        }
        return left
    }

    private mutating func parseConcat() throws -> Expr {
        let location = current.location
        var args = [try parseMath2()]
        while skipOp("~") { args.append(try parseMath2()) }
        return args.count == 1 ? args[0] : try make(.concat(args), location)
    }

    private mutating func parseMath2() throws -> Expr {
        var left = try parsePow()
        while current.kind == .op, let op = Expr.BinaryOp(rawValue: current.text), [.mul, .div, .floorDiv, .mod].contains(op) {
            let location = advance().location
            left = try make(.binary(op, left, try parsePow()), location)
        }
        return left
    }

    private mutating func parsePow() throws -> Expr {
        var left = try parseUnary()
        while current.isOp("**") {
            let location = advance().location
            left = try make(.binary(.pow, left, try parseUnary()), location)
        }
        return left
    }

    private mutating func parseUnary(withFilter: Bool = true) throws -> Expr {
        var node: Expr
        if current.isOp("-") || current.isOp("+") {
            let t = advance()
            try enter()
            defer { leave() }
            let operand = try parseUnary(withFilter: false)
            node = try make(t.text == "-" ? .negate(operand) : .plus(operand), t.location)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    private mutating func parsePrimary() throws -> Expr {
        let t = current
        switch t.kind {
        case .name:
            advance()
            switch t.text {
            case "true", "True": return try make(.literal(.bool(true)), t.location)
            case "false", "False": return try make(.literal(.bool(false)), t.location)
            case "none", "None": return try make(.literal(.none), t.location)
            default: return try make(.name(t.text), t.location)
            }
        case .string:
            var text = t.text
            advance()
            while current.kind == .string { text += advance().text }
            return try make(.literal(.string(text)), t.location)
        case .integer:
            advance()
            return try make(.literal(.int(t.int)), t.location)
        case .float:
            advance()
            return try make(.literal(.double(t.double)), t.location)
        case .op where t.text == "(":
            advance()
            let e = try parseTuple(explicitParentheses: true)
            try expectOp(")")
            return e
        case .op where t.text == "[":
            advance()
            var items: [Expr] = []
            while !current.isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if current.isOp("]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return try make(.list(items), t.location)
        case .op where t.text == "{":
            advance()
            var items: [(Expr, Expr)] = []
            while !current.isOp("}") {
                if !items.isEmpty { try expectOp(",") }
                if current.isOp("}") { break }
                let key = try parseExpression()
                try expectOp(":")
                items.append((key, try parseExpression()))
            }
            try expectOp("}")
            return try make(.dict(items), t.location)
        default:
            throw unexpected(t)
        }
    }

    private mutating func parseTuple(withCondexpr: Bool = true, extraEndRules: [String]? = nil,
                                     explicitParentheses: Bool = false) throws -> Expr {
        let location = current.location
        var args: [Expr] = []
        var isTuple = false
        while true {
            if !args.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEndRules) { break }
            args.append(try parseExpression(withCondexpr: withCondexpr))
            if current.isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            if let first = args.first { return first }
            if !explicitParentheses {
                if current.kind == .eof { throw unexpected(current) }
                throw error("Expected an expression, got '\(describe(current))'")
            }
        }
        return try make(.tuple(args), location)
    }

    private mutating func parsePostfix(_ start: Expr) throws -> Expr {
        var node = start
        while true {
            if current.isOp(".") || current.isOp("[") {
                node = try parseSubscript(node)
            } else if current.isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseFilterExpr(_ start: Expr) throws -> Expr {
        var node = start
        while true {
            if current.isOp("|") {
                node = try parseFilter(node)!
            } else if current.isName("is") {
                node = try parseTest(node)
            } else if current.isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseSubscript(_ node: Expr) throws -> Expr {
        let t = advance()
        if t.text == "." {
            let attr = advance()
            if attr.kind == .name { return try make(.attribute(node, attr.text), t.location) }
            guard attr.kind == .integer else { throw error("expected name or number", attr.location) }
            return try make(.item(node, try make(.literal(.int(attr.int)), attr.location)), t.location)
        }
        var args: [Expr] = []
        while !current.isOp("]") {
            if !args.isEmpty { try expectOp(",") }
            args.append(try parseSubscribed())
        }
        try expectOp("]")
        let key = args.count == 1 ? args[0] : try make(.tuple(args), t.location)
        return try make(.item(node, key), t.location)
    }

    private mutating func parseSubscribed() throws -> Expr {
        let location = current.location
        var parts: [Expr?] = []
        if current.isOp(":") {
            advance()
            parts = [nil]
        } else {
            let node = try parseExpression()
            if !current.isOp(":") { return node }
            advance()
            parts = [node]
        }
        if current.isOp(":") {
            parts.append(nil)
        } else if !current.isOp("]") && !current.isOp(",") {
            parts.append(try parseExpression())
        } else {
            parts.append(nil)
        }
        if current.isOp(":") {
            advance()
            parts.append(!current.isOp("]") && !current.isOp(",") ? try parseExpression() : nil)
        } else {
            parts.append(nil)
        }
        return try make(.slice(parts[0], parts[1], parts[2]), location)
    }

    private mutating func parseCallArgs() throws -> CallSyntax {
        let open = current.location
        try expectOp("(")
        var args = CallSyntax()
        var requireComma = false
        func ensure(_ ok: Bool) throws {
            if !ok { throw error("invalid syntax for function call expression", open) }
        }
        while !current.isOp(")") {
            if requireComma {
                try expectOp(",")
                if current.isOp(")") { break }
            }
            if current.isOp("*") {
                try ensure(args.star == nil && args.starStar == nil)
                advance()
                args.star = try parseExpression()
            } else if current.isOp("**") {
                try ensure(args.starStar == nil)
                advance()
                args.starStar = try parseExpression()
            } else if current.kind == .name && look().isOp("=") {
                try ensure(args.starStar == nil)
                let key = advance().text
                advance()
                args.keywords.append((key, try parseExpression()))
            } else {
                try ensure(args.star == nil && args.starStar == nil && args.keywords.isEmpty)
                args.positional.append(try parseExpression())
            }
            requireComma = true
        }
        try expectOp(")")
        return args
    }

    private mutating func parseCall(_ node: Expr) throws -> Expr {
        let location = current.location
        return try make(.call(node, try parseCallArgs()), location)
    }

    private mutating func dottedName() throws -> (String, SourceLocation) {
        let t = try expectName()
        var name = t.text
        while current.isOp(".") {
            advance()
            name += "." + (try expectName().text)
        }
        return (name, t.location)
    }

    private mutating func parseFilter(_ start: Expr?, startInline: Bool = false) throws -> Expr? {
        var node = start
        var inline = startInline
        while current.isOp("|") || inline {
            if !inline { advance() }
            let (name, location) = try dottedName()
            let args = current.isOp("(") ? try parseCallArgs() : CallSyntax()
            filterUses.append((name, true, location, soft))
            node = try make(.filter(node, name, args), location)
            inline = false
        }
        return node
    }

    private mutating func parseTest(_ node: Expr) throws -> Expr {
        let location = advance().location
        let negated = skipName("not")
        let (name, nameLocation) = try dottedName()
        var args = CallSyntax()
        if current.isOp("(") {
            args = try parseCallArgs()
        } else if [.name, .string, .integer, .float].contains(current.kind) || current.isOp("[") || current.isOp("{"),
                  !(current.isName("else") || current.isName("or") || current.isName("and")) {
            if current.isName("is") { throw error("You cannot chain multiple tests with is") }
            args.positional = [try parsePostfix(try parsePrimary())]
        }
        filterUses.append((name, false, nameLocation, soft))
        let test = try make(.test(node, name, args), location)
        return negated ? try make(.not(test), location) : test
    }
}
