import Foundation
import TestFixtures
import Testing

/// Text from a model file, a conversation file or the model reaches the terminal with its
/// control characters shown (`^[`), never obeyed (issue 9, item 13).
@Suite(.serialized) struct EscapeTests {
    static let hostile = "\u{1B}]0;PWNED\u{7}\u{1B}[2J\u{9B}31m"
    static let shown = "^[]0;PWNED^G^[[2J<U+009B>31m"

    func noRawControls(_ text: String, _ label: String) {
        let raw = text.unicodeScalars.filter { ($0.value < 0x20 && $0 != "\n" && $0 != "\t") || (0x7F...0x9F).contains($0.value) }
        #expect(raw.isEmpty, "\(label) prints raw control characters: \(text.debugDescription)")
    }

    @Test func theREPLShowsControlCharacters() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try modelCopy("evil-name.gguf", in: dir, changing: ["general.name": .string("Evil" + Self.hostile)])
        let conversation = """
            {"format": "nibble.conversation", "version": 1, "created": "2026-11-25T16:00:00Z",
             "model": {"path": "x.gguf", "name": "Recorded\(Self.hostile.unicodeScalars.map { String(format: "\\u%04x", $0.value) }.joined())"},
             "messages": [{"role": "user", "content": "Hi\\u001b[2J", "created": "2026-11-25T16:00:00Z"},
                          {"role": "assistant", "content": "Hello\\u001b]0;X\\u0007", "created": "2026-11-25T16:00:00Z"}]}
            """
        try Data(conversation.utf8).write(to: dir.appendingPathComponent("c.json"))
        let run = try nibble(["chat", "--model", model.path, "--threads", "2", "--temperature", "0", "--max-tokens", "4",
                              "--system", "Be\u{1B}[31m red"],
                             input: "/system\n/load c.json\n/show\n/template\n/replay\n/load \u{1B}[2Jnope.json\n",
                             environment: ["XDG_DATA_HOME": dir.path + "/data", "XDG_STATE_HOME": dir.path + "/state", "NO_COLOR": "1"],
                             currentDirectory: dir)
        #expect(run.status == 0, "\(run.stderr)")
        noRawControls(run.stdout, "stdout")
        noRawControls(run.stderr, "stderr")
        #expect(run.stdout.contains("recorded with Recorded" + Self.shown))  // /load
        #expect(run.stdout.contains("system prompt: Be^[[31m red"))          // /system
        #expect(run.stdout.contains("general.name: Evil" + Self.shown))      // /show
        #expect(run.stdout.contains("Hi^[[2J"))                               // /template, /replay
        #expect(run.stderr.contains("^[[2Jnope.json: no such file"))          // an error quoting input
    }

    @Test func infoShowsControlCharacters() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try modelCopy("evil-name.gguf", in: dir, changing: ["general.name": .string("Evil" + Self.hostile)])
        let run = try nibble(["info", "--model", model.path])
        #expect(run.status == 0, "\(run.stderr)")
        noRawControls(run.stdout, "info")
        #expect(run.stdout.contains("Evil" + Self.shown))
    }

    /// A command's result is exact in a pipe (scripts get the bytes) and shown visibly on
    /// a terminal.
    @Test func resultsAreExactInAPipeAndVisibleOnATerminal() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let messages = dir.appendingPathComponent("m.json")
        try Data(#"[{"role": "user", "content": "Hi\u001b[2J there"}]"#.utf8).write(to: messages)
        let arguments = ["template", "--template", "chatml", "--messages", messages.path]
        let piped = try nibble(arguments)
        #expect(piped.status == 0, "\(piped.stderr)")
        #expect(piped.stdout.contains("Hi\u{1B}[2J there"))
        let session = try PTYSession([nibbleBinary] + arguments)
        #expect(try session.waitForExit(timeout: 30) == 0)
        #expect(session.output.contains("Hi^[[2J there"), "\(session.output.debugDescription)")
        #expect(!session.output.contains("\u{1B}"))
    }
}
