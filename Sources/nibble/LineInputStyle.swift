import Foundation

/// ANSI colours for the REPL, on only when stdout is a terminal and `NO_COLOR` is unset
/// or empty (https://no-color.org). Every helper returns the plain text when colours
/// are off, so callers never test `enabled` themselves.
enum Style {
    nonisolated(unsafe) static var enabled: Bool = {
        let noColor = ProcessInfo.processInfo.environment["NO_COLOR"] ?? ""
        return isatty(STDOUT_FILENO) != 0 && noColor.isEmpty
    }()

    static func bold(_ text: String) -> String { apply("1", text) }
    static func dim(_ text: String) -> String { apply("2", text) }
    static func italic(_ text: String) -> String { apply("3", text) }
    static func red(_ text: String) -> String { apply("31", text) }
    static func green(_ text: String) -> String { apply("32", text) }
    static func yellow(_ text: String) -> String { apply("33", text) }
    static func blue(_ text: String) -> String { apply("34", text) }
    static func magenta(_ text: String) -> String { apply("35", text) }
    static func cyan(_ text: String) -> String { apply("36", text) }

    /// `text` between SGR `codes` (e.g. "1;36") and a reset.
    static func apply(_ codes: String, _ text: String) -> String {
        guard enabled, !text.isEmpty else { return text }
        return "\u{1B}[\(codes)m\(text)\u{1B}[0m"
    }

    /// The REPL's prompt, ">>> " (bold when colours are on).
    static var prompt: String { bold(">>> ") }
    /// The prompt for the second and later lines of an entry, "... " (dim).
    static var continuationPrompt: String { dim("... ") }
}
