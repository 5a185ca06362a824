import CEditLine
import Chat
import Foundation

/// Line editing on a terminal with libedit's native API: emacs keys (or whatever
/// ~/.editrc asks for), history with Up/Down and Ctrl-R, Tab completion, multi-line
/// entries, Ctrl-C to drop the line being typed.
///
/// Between two `read` calls the terminal is in the mode the program started with
/// (libedit switches to its edit mode only inside `el_gets`), so Ctrl-C while the
/// model writes is a real SIGINT that sets `Interrupt.shared`.
///
/// Ctrl-C at the prompt: libedit edits with ISIG on, and SIGINT is ignored (see
/// `Interrupt`), so ^C would do nothing. The edit mode turns ISIG off (`setty -d -isig`)
/// and ^C is bound to `nibble-interrupt`, which marks the read as interrupted, shows
/// "^C" at the end of the line and ends it; `read` then returns `.interrupted`. ^Z is
/// bound to `nibble-suspend` (restore the terminal, stop, redraw on `fg`), since with
/// ISIG off the line discipline no longer does it.
final class EditLineInput: LineInput {
    private let editLine: OpaquePointer
    private let history: OpaquePointer
    private let output: UnsafeMutablePointer<FILE>
    private let historyFile: String?
    private let completer: (String) -> [String]
    /// The C string the prompt callback hands to libedit (owned, strdup'd).
    private var promptBuffer: UnsafeMutablePointer<CChar>
    /// Text for `nibble-prefill` to insert once the line is ready.
    private var prefill: String?
    private var interruptRequested = false
    /// The ^C came with nothing typed (no text on the line, no entry open).
    private var interruptedEmptyLine = false
    /// The line and cursor after the last Tab, to tell a second Tab (list) from a first.
    private var lastCompletion: (line: String, cursor: Int)?
    private var lastEntry: String?
    /// Entries remembered since the last `saveHistory`.
    private var unsaved: [String] = []

    /// Pushed into libedit's input before `el_gets` when there is initial text: it runs
    /// `nibble-prefill` once the fresh line is set up (text inserted before `el_gets`
    /// would be cleared by it).
    private static let prefillKeys = "\u{18}\u{10}"  // ^X^P

    init(historyFile: String?, completer: @escaping (String) -> [String]) {
        Self.useUTF8Locale()
        TerminalGuard.install()
        self.historyFile = historyFile
        self.completer = completer
        output = isatty(STDOUT_FILENO) != 0 ? stdout : stderr
        editLine = el_init("nibble", stdin, output, stderr)
        history = history_init()
        promptBuffer = strdup("")
        lastEntry = nil

        nb_history_setsize(history, Int32(LineInputHistory.limit))
        nb_el_set_history(editLine, history)
        nb_el_set_prompt(editLine, { el in EditLineInput.from(el)?.promptBuffer }, 1)
        nb_el_set_clientdata(editLine, Unmanaged.passUnretained(self).toOpaque())
        nb_el_set_signal(editLine, 0)
        nb_el_set_editor(editLine, "emacs")
        el_source(editLine, nil)  // ~/.editrc or $EDITRC, as other editline programs do

        // Ours come after ~/.editrc, so they hold in vi mode too.
        nb_el_setty(editLine, "-d", "-isig")
        nb_el_addfn(editLine, "nibble-interrupt", "Drop the line being typed", { el, _ in
            EditLineInput.from(el)?.interruptKey() ?? UInt8(CC_ERROR)
        })
        nb_el_addfn(editLine, "nibble-complete", "Complete the word before the cursor", { el, _ in
            EditLineInput.from(el)?.completeKey() ?? UInt8(CC_ERROR)
        })
        nb_el_addfn(editLine, "nibble-suspend", "Suspend nibble", { el, _ in
            EditLineInput.from(el)?.suspendKey() ?? UInt8(CC_ERROR)
        })
        nb_el_addfn(editLine, "nibble-prefill", "Insert the text to edit", { el, _ in
            EditLineInput.from(el)?.prefillKey() ?? UInt8(CC_ERROR)
        })
        nb_el_addfn(editLine, "nibble-paste", "Insert pasted text as one entry", { el, _ in
            EditLineInput.from(el)?.pasteKey() ?? UInt8(CC_ERROR)
        })
        nb_el_bind(editLine, "^C", "nibble-interrupt")
        nb_el_bind(editLine, "^I", "nibble-complete")
        nb_el_bind(editLine, "^Z", "nibble-suspend")
        nb_el_bind(editLine, "^X^P", "nibble-prefill")
        // Bracketed paste (turned on around each read): the terminal wraps pasted text in
        // ESC[200~ … ESC[201~, so a pasted block is one entry, newlines and all.
        nb_el_bind(editLine, "\\e[200~", "nibble-paste")
        nb_el_bind(editLine, "^R", "em-inc-search-prev")

        if let historyFile {
            for entry in LineInputHistory.load(historyFile).suffix(LineInputHistory.limit) {
                nb_history_enter(history, entry)
                lastEntry = entry
            }
        }
    }

    deinit {
        saveHistory()
        el_end(editLine)
        history_end(history)
        free(promptBuffer)
    }

    private static func from(_ el: OpaquePointer?) -> EditLineInput? {
        guard let el, let data = nb_el_clientdata(el) else { return nil }
        return Unmanaged<EditLineInput>.fromOpaque(data).takeUnretainedValue()
    }

    // MARK: LineInput

    func read(prompt: String, initialText: String?) -> InputEvent {
        if output == stdout && !Terminal.atLineStart { Terminal.write("\n") }
        var assembler = EntryAssembler()
        pasted = false
        prefill = initialText.flatMap { $0.isEmpty ? nil : $0 }
        while true {
            setPrompt(assembler.isContinuing ? Style.continuationPrompt : prompt)
            if prefill != nil { el_push(editLine, Self.prefillKeys) }
            interruptRequested = false
            lastCompletion = nil
            var count: Int32 = 0
            let cooked = TerminalGuard.beginEditing()
            if output == stdout { writeRaw(Self.bracketedPasteOn) }
            let line = el_gets(editLine, &count)
            let readError = errno
            if output == stdout { writeRaw(Self.bracketedPasteOff) }
            TerminalGuard.endEditing(restoring: cooked)
            prefill = nil
            if interruptRequested {
                Terminal.noteLineStart()
                return .interrupted(emptyLine: interruptedEmptyLine && !assembler.isContinuing)
            }
            guard let line, count > 0 else {
                if count < 0 && readError == EINTR {
                    writeOutput("\n")
                    return .interrupted(emptyLine: false)
                }
                // Ctrl-D on an empty line (or the terminal went away): the cursor is
                // still after the prompt.
                writeOutput("\n")
                if let entry = assembler.finish() { return .line(entry) }
                return .endOfInput
            }
            Terminal.noteLineStart()
            var text = String(cString: line)
            if text.hasSuffix("\n") { text.removeLast() }
            if pasted {
                // A pasted block is one entry: its newlines come back, `\` and `"""` are text.
                pasted = false
                return .line(text.replacingOccurrences(of: Self.newlineMark, with: "\n"))
            }
            if let entry = assembler.feed(text) { return .line(entry) }
        }
    }

    func remember(_ entry: String) {
        guard !entry.hasPrefix(" "), !entry.allSatisfy(\.isWhitespace), entry != lastEntry else { return }
        nb_history_enter(history, entry)
        lastEntry = entry
        if historyFile != nil { unsaved.append(entry) }
    }

    func saveHistory() {
        guard let historyFile, !unsaved.isEmpty else { return }
        LineInputHistory.append(unsaved, to: historyFile)
        unsaved = []
    }

    // MARK: Key functions (libedit calls them from inside el_gets)

    /// ^C: the line ends with "^C" shown after it; `read` returns `.interrupted`.
    private func interruptKey() -> UInt8 {
        interruptRequested = true
        interruptedEmptyLine = el_wline(editLine).map { $0.pointee.lastchar == $0.pointee.buffer } ?? false
        if let info = el_wline(editLine)?.pointee {
            el_cursor(editLine, Int32(info.lastchar - info.cursor))
        }
        el_insertstr(editLine, "^C")
        el_push(editLine, "\n")  // ed-newline: moves below the line and ends el_gets
        return UInt8(CC_REFRESH)
    }

    static let bracketedPasteOn = "\u{1B}[?2004h", bracketedPasteOff = "\u{1B}[?2004l"
    /// Stands for a pasted newline on the edit line (which is one line).
    static let newlineMark = "⏎"
    /// The line being edited holds pasted text.
    private var pasted = false

    /// ESC[200~ arrived: reads up to ESC[201~ and inserts it, newlines shown as ⏎.
    private func pasteKey() -> UInt8 {
        let end = Array("\u{1B}[201~".unicodeScalars)
        var scalars: [Unicode.Scalar] = []
        var c: wchar_t = 0
        while el_wgetc(editLine, &c) == 1 {
            scalars.append(Unicode.Scalar(UInt32(bitPattern: c)) ?? "\u{FFFD}")
            if scalars.count >= end.count, Array(scalars.suffix(end.count)) == end {
                scalars.removeLast(end.count)
                break
            }
        }
        var text = String(String.UnicodeScalarView(scalars))
            .replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        while text.hasSuffix("\n") { text.removeLast() }
        if text.contains("\n") { pasted = true }
        el_insertstr(editLine, text.replacingOccurrences(of: "\n", with: Self.newlineMark))
        return UInt8(CC_REFRESH)
    }

    private func writeRaw(_ text: String) {
        fputs(text, output)
        fflush(output)
    }

    private func prefillKey() -> UInt8 {
        guard let text = prefill else { return UInt8(CC_NORM) }
        prefill = nil
        el_insertstr(editLine, text)
        return UInt8(CC_REFRESH)
    }

    /// ^Z: what the line discipline would do with ISIG on, plus a redraw on `fg`.
    private func suspendKey() -> UInt8 {
        var editing = termios()
        tcgetattr(STDIN_FILENO, &editing)
        writeOutput("\n")
        TerminalGuard.restore()
        kill(0, SIGTSTP)
        tcsetattr(STDIN_FILENO, TCSADRAIN, &editing)
        return UInt8(CC_REDISPLAY)
    }

    /// Tab: the unique candidate (plus a space unless it is a folder), else the longest
    /// common prefix; a second Tab that cannot extend the word lists the candidates.
    private func completeKey() -> UInt8 {
        guard let info = el_line(editLine)?.pointee else { return UInt8(CC_ERROR) }
        let before = Self.string(from: info.buffer, to: info.cursor)
        let whole = Self.string(from: info.buffer, to: info.lastchar)
        let word = String(before.reversed().prefix { !$0.isWhitespace }.reversed())
        let candidates = Array(Set(completer(before))).sorted()
        guard !candidates.isEmpty else { return UInt8(CC_REFRESH_BEEP) }

        let state = (line: whole, cursor: before.utf8.count)
        let secondTab = lastCompletion.map { $0.line == state.line && $0.cursor == state.cursor } ?? false
        let replacement: String
        if candidates.count == 1 {
            replacement = candidates[0] + (candidates[0].hasSuffix("/") ? "" : " ")
        } else {
            replacement = Self.commonPrefix(candidates)
            if replacement.count <= word.count {
                if secondTab {
                    listCandidates(candidates)
                    return UInt8(CC_REDISPLAY)
                }
                lastCompletion = state
                return UInt8(CC_REFRESH_BEEP)
            }
        }
        if !word.isEmpty { el_deletestr(editLine, Int32(word.unicodeScalars.count)) }
        if !replacement.isEmpty { el_insertstr(editLine, replacement) }
        if let info = el_line(editLine)?.pointee {
            lastCompletion = (Self.string(from: info.buffer, to: info.lastchar), Int(info.cursor - info.buffer))
        }
        return UInt8(CC_REFRESH)
    }

    /// The candidates in columns below the line (paths by their last component, as
    /// shells do); libedit redraws the prompt and line after them.
    private func listCandidates(_ candidates: [String]) {
        let shown = candidates.prefix(200).map { candidate -> String in
            guard candidate.dropFirst().dropLast().contains("/") else { return candidate }
            let isFolder = candidate.hasSuffix("/")
            let name = (isFolder ? String(candidate.dropLast()) : candidate).split(separator: "/").last.map(String.init) ?? candidate
            return name + (isFolder ? "/" : "")
        }
        let columns = Int(nb_el_columns(editLine))
        let width = (shown.map(\.count).max() ?? 0) + 2
        let perRow = max(1, columns / max(width, 1))
        let rows = (shown.count + perRow - 1) / perRow
        var text = "\n"
        for row in 0..<rows {
            var line = ""
            for column in 0..<perRow {
                let index = column * rows + row
                guard index < shown.count else { break }
                let item = shown[index]
                line += column == perRow - 1 || index + rows >= shown.count
                    ? item : item.padding(toLength: width, withPad: " ", startingAt: 0)
            }
            text += line + "\n"
        }
        if candidates.count > shown.count { text += "… and \(candidates.count - shown.count) more\n" }
        writeOutput(text)
    }

    // MARK: Helpers

    /// Paths completing `partial` (a file argument as typed): folders end with "/", a
    /// leading `~` or `~/` is the home folder (and stays `~` in the candidates), hidden
    /// entries only when `partial`'s last component starts with ".".
    static func pathCandidates(_ partial: String) -> [String] {
        if partial == "~" { return ["~/"] }
        let slash = partial.lastIndex(of: "/")
        let folder = slash.map { String(partial[...$0]) } ?? ""
        let prefix = slash.map { String(partial[partial.index(after: $0)...]) } ?? partial
        var listed = folder.isEmpty ? "." : folder
        if listed == "~/" || listed.hasPrefix("~/") { listed = UserPaths.home + listed.dropFirst() }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: listed) else { return [] }
        return names.filter { $0.hasPrefix(prefix) && (prefix.hasPrefix(".") || !$0.hasPrefix(".")) }
            .map { name in
                var isFolder: ObjCBool = false
                let full = (listed as NSString).appendingPathComponent(name)
                _ = FileManager.default.fileExists(atPath: full, isDirectory: &isFolder)
                return folder + name + (isFolder.boolValue ? "/" : "")
            }
            .sorted()
    }

    /// libedit's ANSI-aware prompt: escape sequences go between two \u{1} so they take
    /// no columns (EL_PROMPT_ESC), or the cursor would be placed wrongly.
    private func setPrompt(_ prompt: String) {
        free(promptBuffer)
        promptBuffer = strdup(Self.markingEscapes(prompt))
    }

    /// `prompt` with each ANSI escape sequence between two \u{1}. libedit drops a marked
    /// sequence that ends the prompt (prompt.c, "XXX: We lose"), so trailing sequences
    /// (the colour reset) move before the last visible character: ">>>", reset, " ".
    static func markingEscapes(_ prompt: String) -> String {
        var segments: [(text: String, escape: Bool)] = []
        var current = ""
        var inEscape = false
        for scalar in prompt.unicodeScalars {
            if inEscape {
                current.unicodeScalars.append(scalar)
                if scalar.value >= 0x40 && scalar.value <= 0x7E && scalar != "[" {
                    segments.append((current, true))
                    current = ""
                    inEscape = false
                }
            } else if scalar == "\u{1B}" {
                if !current.isEmpty { segments.append((current, false)) }
                current = "\u{1B}"
                inEscape = true
            } else {
                current.unicodeScalars.append(scalar)
            }
        }
        if !current.isEmpty { segments.append((current, inEscape)) }
        var trailing = ""
        while let last = segments.last, last.escape {
            trailing = last.text + trailing
            segments.removeLast()
        }
        var visibleTail = ""
        if !trailing.isEmpty, let last = segments.indices.last {
            visibleTail = String(segments[last].text.removeLast())
            if segments[last].text.isEmpty { segments.removeLast() }
        }
        var marked = segments.map { $0.escape ? "\u{1}" + $0.text + "\u{1}" : $0.text }.joined()
        if !visibleTail.isEmpty { marked += "\u{1}" + trailing + "\u{1}" + visibleTail }
        return marked
    }

    private func writeOutput(_ text: String) {
        fputs(text, output)
        fflush(output)
        Terminal.noteLineStart()
    }

    private static func string(from start: UnsafePointer<CChar>, to end: UnsafePointer<CChar>) -> String {
        String(decoding: UnsafeRawBufferPointer(start: start, count: end - start), as: UTF8.self)
    }

    private static func commonPrefix(_ strings: [String]) -> String {
        guard var prefix = strings.first else { return "" }
        for string in strings.dropFirst() {
            prefix = String(zip(prefix, string).prefix { $0 == $1 }.map(\.0))
        }
        return prefix
    }

    /// libedit converts between the buffer's wide characters and `char` with the C
    /// library's locale, which is "C" (ASCII) until someone sets it.
    private static func useUTF8Locale() {
        setlocale(LC_CTYPE, "")
        if let codeset = nl_langinfo(nl_item(CODESET)), String(cString: codeset) == "UTF-8" { return }
        setlocale(LC_CTYPE, "C.UTF-8")
    }
}

/// Puts the terminal back the way the program found it if the process ends while
/// libedit has it in edit mode: on exit, on SIGTERM/SIGHUP, and on a crash.
enum TerminalGuard {
    nonisolated(unsafe) static var editing = false
    nonisolated(unsafe) private static var original: UnsafeMutablePointer<termios>?
    nonisolated(unsafe) private static var previous: UnsafeMutablePointer<sigaction>?
    private static let fatalSignals: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGABRT, SIGFPE]

    static func install() {
        guard original == nil else { return }
        let saved = UnsafeMutablePointer<termios>.allocate(capacity: 1)
        saved.initialize(to: termios())
        guard tcgetattr(STDIN_FILENO, saved) == 0 else { saved.deallocate(); return }
        original = saved
        previous = .allocate(capacity: 65)
        previous!.initialize(repeating: sigaction(), count: 65)
        atexit { TerminalGuard.restoreIfEditing() }
        // SIGTERM and SIGHUP go through `Interrupt` (the chat saves and exits cleanly).
        for signal in fatalSignals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signal in TerminalGuard.handle(signal) }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_ONSTACK
            sigaction(signal, &action, previous! + Int(signal))
        }
    }

    /// Called before `el_gets`: echo and line buffering off (signals still on) at once,
    /// so that keys typed between libedit printing the prompt and switching the
    /// terminal to its edit mode are not echoed (nor cooked) by the terminal. Returns
    /// the mode to put back afterwards.
    static func beginEditing() -> termios? {
        var cooked = termios()
        guard tcgetattr(STDIN_FILENO, &cooked) == 0 else { return nil }
        editing = true
        if cooked.c_lflag & tcflag_t(ICANON) != 0 {
            var quiet = cooked
            quiet.c_lflag &= ~tcflag_t(ECHO | ICANON)
            withUnsafeMutableBytes(of: &quiet.c_cc) { cc in
                cc[Int(VMIN)] = 1
                cc[Int(VTIME)] = 0
            }
            tcsetattr(STDIN_FILENO, TCSANOW, &quiet)
        }
        return cooked
    }

    /// Called after `el_gets` (which restores the mode itself, except when editing is
    /// disabled from ~/.editrc).
    static func endEditing(restoring cooked: termios?) {
        if var cooked { tcsetattr(STDIN_FILENO, TCSANOW, &cooked) }
        editing = false
    }

    static func restore() {
        if let original { tcsetattr(STDIN_FILENO, TCSADRAIN, original) }
    }

    private static func restoreIfEditing() {
        if editing { restore() }
    }

    /// Async-signal-safe: tcsetattr, sigaction and raise only. The signal is raised
    /// again under the previous disposition (the runtime's backtracer, or the default
    /// action); it stays blocked until this handler returns, and a real fault would
    /// happen again anyway.
    private static func handle(_ signal: Int32) {
        restoreIfEditing()
        editing = false
        guard let previous else { return }
        sigaction(signal, previous + Int(signal), nil)
        raise(signal)
    }
}
