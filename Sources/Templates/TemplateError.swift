/// A template that cannot be parsed or rendered.
///
/// `description` is `name:line:column: message` (e.g. `template:12:5: unexpected '%}'`),
/// except for `raise_exception('…')`, whose description is exactly the template's
/// message: that text is meant for the user.
public struct TemplateError: Error, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        /// The template text is not valid Jinja (or uses an unknown filter or test).
        case syntax
        /// Rendering failed: an undefined value used, a type error, …
        case runtime
        /// The template called `raise_exception(message)`.
        case raised
        /// The template went past one of its `TemplateLimits` (nesting, calls, steps,
        /// string, list or output size); the message names the limit.
        case limit
        /// The render's `shouldStop` asked it to stop.
        case cancelled
    }

    /// The message alone, as jinja2 gives it (`str(exception)`).
    public var message: String
    /// 1-based line and column in the template source (0 when unknown).
    public var line: Int
    public var column: Int
    public var kind: Kind
    /// The template's name (`ChatTemplate.name`).
    public var templateName: String

    public init(message: String, line: Int, column: Int, kind: Kind = .runtime, templateName: String = "template") {
        self.message = message
        self.line = line
        self.column = column
        self.kind = kind
        self.templateName = templateName
    }

    public var description: String {
        kind == .raised ? message : "\(templateName):\(line):\(column): \(message)"
    }
}

/// A position in the template source, 1-based.
struct SourceLocation: Sendable {
    var line: Int
    var column: Int
}
