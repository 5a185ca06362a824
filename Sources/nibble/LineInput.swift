import Chat
import Foundation

/// What one `LineInput.read` produced.
enum InputEvent: Equatable {
    /// One complete entry (possibly empty). Entries typed over several lines (`\` at the
    /// end of a line, or a `"""` block) are joined with "\n", without the markers.
    case line(String)
    /// Ctrl-C at the prompt: the entry being typed was dropped. `emptyLine`: there was
    /// nothing to drop (the REPL then hints at how to leave, on the second in a row).
    case interrupted(emptyLine: Bool)
    /// Ctrl-D on an empty line, or the end of standard input.
    case endOfInput
}

/// The REPL's source of entries: libedit on a terminal, plain lines in script mode.
protocol LineInput: AnyObject {
    /// Reads one entry. `initialText` is pre-filled into the edit line (used by /undo to
    /// put the user's text back); script mode ignores it.
    func read(prompt: String, initialText: String?) -> InputEvent
    /// Records an entry in history (ignored when it starts with a space, when history is
    /// off, or when it equals the previous entry); multi-line entries stay one entry.
    func remember(_ entry: String)
    /// Writes the history file (bounded size), mode 0600. Called on exit; also safe to
    /// call after each entry.
    func saveHistory()
}

extension LineInput {
    func read(prompt: String) -> InputEvent { read(prompt: prompt, initialText: nil) }
}

/// libedit when standard input is a terminal, plain lines otherwise (script mode).
/// - Parameters:
///   - historyFile: where history persists (`LineInputHistory.defaultPath`), nil = never
///     written to disk.
///   - completer: candidates replacing the last word of the text before the cursor
///     (e.g. "/prec" → ["/precision"]); see `EditLineInput.pathCandidates`.
func makeLineInput(historyFile: String?, completer: @escaping (_ lineBeforeCursor: String) -> [String]) -> LineInput {
    if isatty(STDIN_FILENO) != 0 {
        return EditLineInput(historyFile: historyFile, completer: completer)
    }
    return PlainInput()
}

// MARK: - Multi-line entries

/// Joins physical lines into entries, the same way on a terminal and in script mode:
/// - a line ending in `\` continues on the next one (the backslash becomes a newline);
/// - a line starting with `"""` opens a block that lasts until a line ending with `"""`
///   (`"""one line"""` is a block of one line); the quotes are not part of the entry.
/// A physical line may itself hold newlines (an entry recalled from history); it is
/// taken as it is.
struct EntryAssembler {
    private var lines: [String] = []
    private var inBlock = false

    /// True while an entry is open: the next line continues it (prompt "... ").
    var isContinuing: Bool { inBlock || !lines.isEmpty }

    /// Takes one line (without its newline); returns the entry when it is complete.
    mutating func feed(_ line: String) -> String? {
        if inBlock {
            if let body = Self.strippingClosingQuotes(line) {
                if !body.isEmpty { lines.append(body) }
                return take()
            }
            lines.append(line)
            return nil
        }
        if lines.isEmpty, line.hasPrefix("\"\"\"") {
            let rest = String(line.dropFirst(3))
            if let body = Self.strippingClosingQuotes(rest) {
                return body
            }
            inBlock = true
            if !rest.isEmpty { lines.append(rest) }
            return nil
        }
        if line.hasSuffix("\\") {
            lines.append(String(line.dropLast()))
            return nil
        }
        lines.append(line)
        return take()
    }

    /// At the end of input: the open entry as it stands, if there is one.
    mutating func finish() -> String? {
        guard isContinuing else { return nil }
        return take()
    }

    private mutating func take() -> String {
        let entry = lines.joined(separator: "\n")
        lines = []
        inBlock = false
        return entry
    }

    /// `text` without a closing `"""` (and trailing blanks after it), or nil if it has none.
    private static func strippingClosingQuotes(_ text: String) -> String? {
        var trimmed = Substring(text)
        while let last = trimmed.last, last == " " || last == "\t" || last == "\r" { trimmed.removeLast() }
        guard trimmed.hasSuffix("\"\"\"") else { return nil }
        return String(trimmed.dropLast(3))
    }
}

// MARK: - Script mode

/// Standard input is not a terminal: no prompt, no echo, no history; lines are joined
/// into entries by `EntryAssembler` as on a terminal.
final class PlainInput: LineInput {
    private var assembler = EntryAssembler()

    func read(prompt: String, initialText: String?) -> InputEvent {
        while let line = readLine(strippingNewline: true) {
            if let entry = assembler.feed(line) { return .line(entry) }
        }
        if let entry = assembler.finish() { return .line(entry) }
        return .endOfInput
    }

    func remember(_ entry: String) {}
    func saveHistory() {}
}

// MARK: - History file

/// The typed-entries file: one entry per line, `\` written as `\\` and a newline inside
/// an entry as `\n`, oldest first, at most `limit` entries, mode 0600.
///
/// Not libedit's own H_SAVE format (strvis-encoded, `_HiStOrY_V2_` header): saving merges
/// with what other sessions appended since, which H_SAVE cannot, and the file stays
/// readable with `tail`.
enum LineInputHistory {
    static let limit = 1000

    /// `${XDG_STATE_HOME:-~/.local/state}/nibble/history`, or nil when history is off
    /// (`--no-history`, or `NIBBLE_NO_HISTORY` set to anything but "" or "0").
    static func defaultPath(disabled: Bool = false) -> String? {
        let env = ProcessInfo.processInfo.environment
        if disabled { return nil }
        if let off = env["NIBBLE_NO_HISTORY"], !off.isEmpty, off != "0" { return nil }
        // The XDG spec: a relative path is invalid and is ignored.
        return UserPaths.stateFolder + "/history"
    }

    static func encode(_ entry: String) -> String {
        entry.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func decode(_ line: Substring) -> String {
        var out = ""
        var escaped = false
        for c in line {
            if escaped {
                switch c {
                case "n": out.append("\n")
                case "\\": out.append("\\")
                default: out.append("\\"); out.append(c)
                }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        if escaped { out.append("\\") }
        return out
    }

    /// The entries in `path`, oldest first; none if it does not exist or is unreadable.
    static func load(_ path: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return String(decoding: data, as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: true).map(decode)
    }

    /// Appends `entries` to what the file holds now, keeps the newest `limit`, and
    /// replaces the file atomically (AtomicFile: mode 0600). Creates the parent folders
    /// (mode 0700). Failures are silent: history is a convenience.
    static func append(_ entries: [String], to path: String) {
        var all = load(path)
        for entry in entries where all.last != entry { all.append(entry) }
        if all.count > limit { all.removeFirst(all.count - limit) }
        try? UserPaths.makePrivateFolder((path as NSString).deletingLastPathComponent)
        try? AtomicFile.write(Data(all.map { encode($0) + "\n" }.joined().utf8), to: path)
    }
}
