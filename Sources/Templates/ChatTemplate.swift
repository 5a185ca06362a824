import Foundation

/// A Hugging Face chat template (`tokenizer.chat_template`), parsed once and rendered
/// per turn the way transformers' `apply_chat_template` renders it: jinja2's
/// ImmutableSandboxedEnvironment with `trim_blocks` and `lstrip_blocks`, the
/// `{% generation %}` and loop-control extensions, transformers' `tojson`, and the
/// globals `raise_exception`, `strftime_now`, `namespace`, `dict` and `range`.
public struct ChatTemplate: Sendable {
    public let source: String
    public let name: String
    private let body: [Stmt]

    /// Parses `source`.
    /// - Throws: `TemplateError` (kind `.syntax`) with the line and column of the fault,
    ///   also for a filter or test jinja2 would reject when compiling.
    public init(source: String, name: String = "template") throws {
        self.source = source
        self.name = name
        var lexer = Lexer(source: source, templateName: name)
        var parser = Parser(tokens: try lexer.tokenize(), templateName: name)
        body = try parser.parseTemplate()
    }

    /// Low level: renders with any context variables.
    /// - Parameters:
    ///   - now: what `strftime_now` formats, as a naive local time in `timeZone`.
    /// - Throws: `TemplateError`; for `raise_exception(msg)` its description is `msg`.
    public func render(context: [String: Value], now: Date = Date(), timeZone: TimeZone = .current) throws -> String {
        let interpreter = Interpreter(templateName: name, now: now, timeZone: timeZone)
        return try interpreter.render(body, context: context)
    }

    /// What the REPL calls: `messages` become objects `{"role", "content"}` (in that key
    /// order), with `add_generation_prompt`, `bos_token` and `eos_token`; `tools` and
    /// `documents` are left undefined.
    public func render(messages: [(role: String, content: String)], addGenerationPrompt: Bool,
                       bosToken: String, eosToken: String, now: Date = Date(), timeZone: TimeZone = .current) throws -> String {
        let list = Value.array(messages.map { .object(["role": .string($0.role), "content": .string($0.content)]) })
        return try render(context: ChatTemplate.context(messages: list, addGenerationPrompt: addGenerationPrompt,
                                                        bosToken: bosToken, eosToken: eosToken),
                          now: now, timeZone: timeZone)
    }

    /// The context `apply_chat_template` builds (without `tools`/`documents`), for
    /// messages given as values (e.g. parsed with `Value(json:)`, extra keys kept).
    public static func context(messages: Value, addGenerationPrompt: Bool, bosToken: String, eosToken: String) -> [String: Value] {
        ["messages": messages, "add_generation_prompt": .bool(addGenerationPrompt),
         "bos_token": .string(bosToken), "eos_token": .string(eosToken)]
    }
}
