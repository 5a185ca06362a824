import Foundation
import TestFixtures
import Testing

/// `nibble chat` on a pseudo-terminal: streaming, Ctrl-C during a reply and at the
/// prompt, history (Up, the file and its privacy), Tab completion, multi-line entries,
/// colours. Each test runs the real binary on the default model, one thread.
@Suite(.serialized) struct PTYTests {
    /// A chat session with its own state folder (history goes to `history`).
    struct Chat {
        let session: PTYSession
        let state: URL
        var history: URL { state.appendingPathComponent("nibble/history") }
    }

    func startChat(_ arguments: [String] = [], colour: Bool = false, state: URL? = nil) throws -> Chat {
        let model = try requireModel()
        let state = try state ?? temporaryDirectory()
        var environment = ["XDG_STATE_HOME": state.path, "XDG_DATA_HOME": state.path, "EDITRC": "/dev/null"]
        if !colour { environment["NO_COLOR"] = "1" }
        let session = try PTYSession([nibbleBinary, "chat", "--model", model, "--threads", "1"] + arguments,
                                     environment: environment)
        try session.expect(colour ? ">>>" : ">>> ", timeout: 60)
        try waitForEditMode(session)
        return Chat(session: session, state: state)
    }

    /// Types `line` and Enter, then waits for the next prompt (after the reply).
    func submit(_ line: String, in chat: Chat) throws {
        chat.session.send(line + "\r")
        try chat.session.expect("\r\n")
        try chat.session.expect(">>> ", timeout: 30)
        // libedit prints the prompt before it takes the terminal: keys sent before that
        // would meet the cooked terminal (a ^C would be an ignored signal).
        try waitForEditMode(chat.session)
    }

    func historyEntries(_ chat: Chat) throws -> [String] {
        try String(contentsOf: chat.history, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    /// The reply streams (text arrives over several reads while the prompt has not come
    /// back), Ctrl-C stops it, the partial text stays, the prompt returns, /quit exits 0.
    @Test func ctrlCStopsAStreamingReply() throws {
        let chat = try startChat(["--max-tokens", "100000", "--temperature", "0"])
        let session = chat.session
        session.send("Once upon a time\r")
        try session.expect("Once upon a time\r\n")  // the line as submitted
        let early = try session.waitFor("some streamed text") { text, _ in text.count >= 40 }
        #expect(!early.contains(">>> "), "the reply ended before it could be interrupted: \(early)")
        let later = try session.waitFor("more streamed text") { text, _ in text.count >= early.count + 20 }
        #expect(!later.contains(">>> "), "the reply ended before it could be interrupted: \(later)")
        session.sendControl("c")
        let reply = try session.expect(">>> ", timeout: 10)
        #expect(reply.hasPrefix(later), "the partial reply was not kept: \(reply)")
        session.send("/quit\r")
        #expect(try session.waitForExit() == 0)
    }

    /// Up recalls the previous entry, within a session and from the history file in the
    /// next one.
    @Test func upArrowRecallsThePreviousLine() throws {
        let first = try startChat(["--max-tokens", "1"])
        try submit("first entry", in: first)
        first.session.send("\u{1B}[A")
        try first.session.waitFor("the recalled line") { _, screen in screen.cursorLine == ">>> first entry" }
        try submit("", in: first)
        first.session.sendControl("d")
        #expect(try first.session.waitForExit() == 0)

        let second = try startChat(["--max-tokens", "1"], state: first.state)
        second.session.send("\u{1B}[A")
        try second.session.waitFor("the line from the history file") { _, screen in screen.cursorLine == ">>> first entry" }
        second.session.sendControl("c")  // Ctrl-D on a line that is not empty does not end the input
        try second.session.expect("^C\r\n")
        try second.session.expect(">>> ")
        second.session.sendControl("d")
        #expect(try second.session.waitForExit() == 0)
    }

    /// Tab completes a unique command with a space after it, then a precision name; two
    /// Tabs on an ambiguous word list the candidates and redraw the line.
    @Test func tabCompletes() throws {
        let session = try startChat().session
        session.send("/prec")
        try session.expect("/prec")
        session.send("\t")
        try session.waitFor("/precision completed") { _, screen in
            screen.cursorLine == ">>> /precision" && screen.column == 15
        }
        session.send("na\t")
        try session.waitFor("native completed") { _, screen in screen.cursorLine == ">>> /precision native" }
        session.sendControl("c")
        try session.expect("^C\r\n")
        try session.expect(">>> ")
        session.send("/p\t")
        try session.waitFor("/pr completed") { _, screen in screen.cursorLine == ">>> /pr" }
        session.send("\t")
        try session.waitFor("the candidates listed") { _, screen in
            screen.line(screen.row - 1) == "/precision  /prompt" && screen.cursorLine == ">>> /pr"
        }
        session.sendControl("c")
        try session.expect("^C\r\n")
        try session.expect(">>> ")
        session.sendControl("d")
        #expect(try session.waitForExit() == 0)
    }

    /// /undo drops the last exchange and puts its message back on the edit line, ready to
    /// be changed and sent again.
    @Test func undoPutsTheMessageBackOnTheEditLine() throws {
        let chat = try startChat(["--max-tokens", "1"])
        let session = chat.session
        try submit("a message to take back", in: chat)
        try submit("/undo", in: chat)
        try session.waitFor("the message on the edit line") { _, screen in
            screen.cursorLine == ">>> a message to take back" && screen.column == 26
        }
        // libedit shows the line before it turns ISIG off: a ^C sent at once can still be a
        // signal, which the prompt ignores (it failed so on a loaded machine).
        try waitForEditMode(session)
        session.sendControl("c")
        try session.expect("^C\r\n")
        try session.expect(">>> ")
        session.sendControl("d")
        #expect(try session.waitForExit() == 0)
    }

    /// Ctrl-C at the prompt drops the half-typed line and shows a fresh prompt; nothing
    /// is sent to the model and the program carries on.
    @Test func ctrlCAtThePromptClearsTheLine() throws {
        let chat = try startChat(["--max-tokens", "1"])
        let session = chat.session
        session.send("half typed")
        try session.expect("half typed")
        session.sendControl("c")
        try session.expect("^C\r\n")
        try session.expect(">>> ")
        try session.waitFor("an empty prompt line") { _, screen in screen.cursorLine == ">>>" && screen.column == 4 }
        try submit("after", in: chat)
        session.sendControl("d")
        #expect(try session.waitForExit() == 0)
        #expect(try historyEntries(chat) == ["after"])
    }

    /// Waits until libedit has the terminal in its edit mode (ISIG off). It prints the
    /// prompt first, so a ^C sent at once to an empty prompt could still be a signal.
    func waitForEditMode(_ session: PTYSession) throws {
        let deadline = Date().addingTimeInterval(10)
        while session.localModes() & tcflag_t(ISIG) != 0 {
            guard Date() < deadline else { throw PTYError(description: "the prompt never turned ISIG off") }
            usleep(5_000)
        }
    }

    /// Ctrl-C at an empty prompt only shows a fresh prompt; a second one in a row says
    /// how to leave. Ctrl-C that drops typed text does not count.
    @Test func secondCtrlCAtAnEmptyPromptHintsAtCtrlD() throws {
        let session = try startChat(["--max-tokens", "1"]).session
        try waitForEditMode(session)
        session.sendControl("c")
        try session.expect("^C\r\n")
        #expect(!(try session.expect(">>> ")).contains("Ctrl-D"))
        try waitForEditMode(session)
        session.sendControl("c")
        // On the line after "^C" (bracketed paste is turned off in between).
        try session.expect(regex: try Regex(#"\^C\r\n(\x1B\[\?2004l)?\(press Ctrl-D or type /quit to leave\)\r\n"#))
        try session.expect(">>> ")
        session.send("typed")
        try session.expect("typed")
        session.sendControl("c")
        try session.expect("^C\r\n")
        try session.expect(">>> ")
        try waitForEditMode(session)
        session.sendControl("c")
        try session.expect("^C\r\n")
        try session.expect(">>> ")
        #expect(!session.output.hasSuffix("leave)\r\n\u{1B}[?2004h>>> "), "the count starts again after a dropped line")
        try waitForEditMode(session)
        session.sendControl("d")
        #expect(try session.waitForExit() == 0)
    }

    /// Ctrl-D exits 0; the history file is private (0600, folder 0700), has the entries,
    /// and not the one typed with a leading space.
    @Test func ctrlDExitsAndHistoryIsPrivate() throws {
        let chat = try startChat(["--max-tokens", "1"])
        let session = chat.session
        try submit("first line", in: chat)
        try submit(" secret line", in: chat)
        try submit("last line", in: chat)
        session.sendControl("d")
        #expect(try session.waitForExit() == 0)

        let attributes = try FileManager.default.attributesOfItem(atPath: chat.history.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let folder = try FileManager.default.attributesOfItem(atPath: chat.history.deletingLastPathComponent().path)
        #expect((folder[.posixPermissions] as? Int) == 0o700)
        #expect(try historyEntries(chat) == ["first line", "last line"])
    }

    /// A `"""` block and a `\` continuation are each one entry (one history line), with
    /// the "... " prompt on their continuation lines.
    @Test func multiLineEntriesAreOneEntry() throws {
        let chat = try startChat(["--max-tokens", "1"])
        let session = chat.session
        session.send("\"\"\"\r")
        try session.expect("... ")
        session.send("line one\r")
        try session.expect("... ")
        session.send("line two\r")
        try session.expect("... ")
        try submit("\"\"\"", in: chat)
        session.send("first \\\r")
        try session.expect("... ")
        try submit("second", in: chat)
        session.send("\u{1B}[A\u{1B}[A")
        try session.waitFor("the block recalled") { _, screen in
            screen.line(screen.row - 1) == ">>> line one" && screen.cursorLine == "line two"
        }
        session.sendControl("c")
        try session.expect("^C\r\n")
        try session.expect(">>> ")
        session.sendControl("d")
        #expect(try session.waitForExit() == 0)
        #expect(try historyEntries(chat) == ["line one\\nline two", "first \\nsecond"])
    }

    /// Without NO_COLOR the prompt is coloured, and the cursor is still placed right
    /// (libedit is told the escape sequences take no columns).
    @Test func coloursOnATerminal() throws {
        let session = try startChat(colour: true).session
        #expect(session.output.contains("\u{1B}["))
        session.send("abc")
        try session.expect("abc")
        session.sendControl("a")
        session.send("X")
        try session.waitFor("X at the start of the line") { _, screen in screen.cursorLine == ">>> Xabc" && screen.column == 5 }
        session.sendControl("c")
        try session.expect("^C\r\n")
        try session.expect(">>>")
        session.sendControl("d")
        #expect(try session.waitForExit() == 0)
    }

    /// SIGTERM mid-reply (or SIGHUP: the window closed) stops the reply like Ctrl-C: the
    /// partial reply is autosaved, marked interrupted, the terminal gets its modes back,
    /// and the chat exits with 128 + the signal.
    @Test(arguments: [SIGTERM, SIGHUP])
    func terminationMidReplyKeepsThePartialReply(signal: Int32) throws {
        let chat = try startChat(["--max-tokens", "100000", "--temperature", "0"])
        let session = chat.session
        session.send("Once upon a time\r")
        try session.expect("Once upon a time\r\n")
        let early = try session.waitFor("some streamed text") { text, _ in text.count >= 40 }
        #expect(!early.contains(">>> "), "the reply ended before the signal: \(early)")
        // While the reply streams, the terminal is in the mode the program started with.
        let cooked = session.localModes()
        #expect(cooked & tcflag_t(ICANON | ECHO) == tcflag_t(ICANON | ECHO))
        kill(session.pid, signal)
        #expect(try session.waitForExit(timeout: 20) == 128 + signal)
        #expect(session.localModes() == cooked, "terminal modes not restored")
        let folder = chat.state.appendingPathComponent("nibble/sessions")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        #expect(files.count == 1)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent(files[0]))) as? [String: Any]
        let messages = try #require(json?["messages"] as? [[String: Any]])
        #expect(messages.count == 2)
        let reply = try #require(messages.last)
        #expect((reply["content"] as? String)?.count ?? 0 >= 20)
        #expect((reply["stats"] as? [String: Any])?["interrupted"] as? Bool == true)
    }

    /// At the prompt the chat ends at once: the typed history is saved and the terminal
    /// is back in the mode it had (libedit had it in its edit mode).
    @Test func hangupAtThePromptRestoresTheTerminal() throws {
        let chat = try startChat(["--max-tokens", "1"])
        try submit("remember me", in: chat)
        let cooked = tcflag_t(ICANON | ECHO)
        #expect(chat.session.localModes() & cooked == 0, "libedit's edit mode is on at the prompt")
        kill(chat.session.pid, SIGHUP)
        #expect(try chat.session.waitForExit(timeout: 20) == 128 + SIGHUP)
        #expect(chat.session.localModes() & cooked == cooked, "echo and line editing are back")
        #expect(try historyEntries(chat) == ["remember me"])
    }

    /// Ctrl-C while the prompt is still being read (before the first token) keeps no empty
    /// turn: the message goes back to the edit line, and /stats shows "–" for what was
    /// not measured.
    @Test func ctrlCBeforeTheFirstTokenPutsTheMessageBack() throws {
        let chat = try startChat(["--max-tokens", "8", "--temperature", "0"])
        let session = chat.session
        // Long enough that prefill takes seconds on one thread.
        let message = "Summarise: " + String(repeating: "the quick brown fox jumps over the lazy dog ", count: 250)
        session.send(message + "\r")
        try session.expect("\r\n", timeout: 30)
        // Past the moment libedit hands the terminal back (a ^C typed while it still has
        // ISIG off would be a character, not a signal); the prefill takes seconds.
        session.drain(for: 0.5)
        session.sendControl("c")
        try session.expect("[stopped before the reply began: the message is back on the edit line]", timeout: 30)
        try session.expect(">>> ", timeout: 10)
        // The edit line holds the message again (libedit shows the end of a long line).
        try session.expect("jumps over the lazy dog", timeout: 10)
        session.sendControl("u")  // clear the edit line
        session.send("/stats\r")
        // The stopped attempt's figures that do not exist show "–", not 0.000 s / 0.0 tok/s.
        try session.expect("first token       –\r\nprefill           –\r\ndecode            –", timeout: 10)
        session.send("/quit\r")
        #expect(try session.waitForExit() == 0)
        let folder = chat.state.appendingPathComponent("nibble/sessions")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: folder.path))?.isEmpty ?? true, "nothing was autosaved")
    }

    /// A bracketed paste (ESC[200~ … ESC[201~, what terminals send when bracketed paste
    /// is on) is one entry with its newlines, shown as ⏎ on the edit line until Enter.
    @Test func aPasteIsOneEntry() throws {
        let chat = try startChat(["--max-tokens", "2", "--temperature", "0"])
        let session = chat.session
        #expect(session.output.contains("\u{1B}[?2004h"), "bracketed paste is turned on at the prompt")
        let pasted = "Fix this code:\ndef add(a, b):\n    return a - b"
        session.send("\u{1B}[200~" + pasted.replacingOccurrences(of: "\n", with: "\r") + "\u{1B}[201~")
        try session.expect("Fix this code:⏎def add(a, b):⏎    return a - b")
        session.send("\r")
        try session.expect(">>> ", timeout: 30)
        session.send("/quit\r")
        #expect(try session.waitForExit() == 0)
        let folder = chat.state.appendingPathComponent("nibble/sessions")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent(try #require(files.first)))) as? [String: Any]
        let messages = try #require(json?["messages"] as? [[String: Any]])
        #expect(messages.count == 2, "one entry, one reply: \(messages)")
        #expect(messages.first?["content"] as? String == pasted)
    }

    /// Waits over ~0.3 s show one line on stderr (a terminal), erased when the work ends:
    /// an nf4 switch packs for seconds, and the next reply re-reads the whole history (about
    /// 1,200 tokens: 1.1 s at nf4 on one Zen 5 thread; 170 tokens no longer took 0.3 s once
    /// nf4 prefill was interleaved).
    @Test func longWaitsShowAProgressLine() throws {
        let chat = try startChat(["--max-tokens", "2", "--temperature", "0"])
        let session = chat.session
        try submit("Hello there, how are you today? " + String(repeating: "Tell me more. ", count: 300), in: chat)
        session.send("/precision nf4\r")
        try session.expect("packing weights for nf4 …", timeout: 30)
        try session.expect("precision: q4 → nf4", timeout: 60)
        try session.expect(">>> ", timeout: 30)
        session.send("And now?\r")
        try session.expect(regex: try Regex(#"reading \d+ tokens of history at nf4 …"#), timeout: 30)
        try session.expect(">>> ", timeout: 60)
        session.send("/quit\r")
        #expect(try session.waitForExit() == 0)
    }

    /// Ctrl-C during a switch stops it; the previous precision stays and keeps serving.
    @Test func ctrlCStopsAPrecisionSwitch() throws {
        let chat = try startChat(["--max-tokens", "2", "--temperature", "0"])
        let session = chat.session
        session.send("/precision nf4\r")
        try session.expect("packing weights for nf4 …", timeout: 30)
        session.sendControl("c")
        try session.expect("precision switch stopped: still at q4", timeout: 30)
        try session.expect(">>> ", timeout: 10)
        session.send("/show\r")
        try session.expect("precision  q4", timeout: 10)
        session.send("/quit\r")
        #expect(try session.waitForExit() == 0)
    }
}
