import Foundation
import Testing
@testable import nibble

/// Script mode (stdin not a terminal) and the pieces of line input that need no
/// terminal: joining lines into entries, the history file, prompt escapes, completion.
@Suite struct PlainInputTests {
    /// Piped input: a `\` continuation is one entry (one user turn, as the autosaved
    /// conversation shows), /quit ends the session (the line after it is never read),
    /// and the output has no prompt and no escape sequences.
    @Test func scriptModeJoinsLinesAndQuits() throws {
        let model = try requireModel()
        let state = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: state) }
        let data = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: data) }
        let run = try nibble(["chat", "--model", model, "--max-tokens", "3", "--threads", "1"],
                             input: "hello \\\nworld\n/quit\nafter\n",
                             environment: ["XDG_STATE_HOME": state.path, "XDG_DATA_HOME": data.path])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(!run.stdout.contains(">>>") && !run.stdout.contains("... "), "\(run.stdout)")
        #expect(!run.stdout.contains("\u{1B}") && !run.stderr.contains("\u{1B}"))
        let sessions = data.appendingPathComponent("nibble/sessions")
        let saved = try FileManager.default.contentsOfDirectory(atPath: sessions.path)
        #expect(saved.count == 1)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: sessions.appendingPathComponent(saved[0]))) as? [String: Any]
        let messages = json?["messages"] as? [[String: Any]] ?? []
        #expect(messages.map { $0["role"] as? String } == ["user", "assistant"])
        #expect(messages.first?["content"] as? String == "hello \nworld")
        // Script mode keeps no history.
        #expect(!FileManager.default.fileExists(atPath: state.appendingPathComponent("nibble/history").path))
    }

    @Test func entriesFromLines() {
        func entries(_ lines: [String]) -> [String] {
            var assembler = EntryAssembler()
            var out = lines.compactMap { assembler.feed($0) }
            if let rest = assembler.finish() { out.append(rest) }
            return out
        }
        #expect(entries(["one", "two"]) == ["one", "two"])
        #expect(entries(["hello \\", "world"]) == ["hello \nworld"])
        #expect(entries(["a\\", "b\\", "c"]) == ["a\nb\nc"])
        #expect(entries(["\"\"\"", "line one", "", "line two", "\"\"\""]) == ["line one\n\nline two"])
        #expect(entries(["\"\"\"first", "second\"\"\"", "next"]) == ["first\nsecond", "next"])
        #expect(entries(["\"\"\"one line\"\"\""]) == ["one line"])
        #expect(entries(["\"\"\"", "ends with \\", "\"\"\"  "]) == ["ends with \\"])
        #expect(entries(["recalled\nfrom history"]) == ["recalled\nfrom history"])
        #expect(entries(["\"\"\"", "unterminated"]) == ["unterminated"])
        #expect(entries([""]) == [""])
    }

    @Test func historyFileRoundTrip() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state/nibble/history").path
        let entries = ["plain", "two\nlines", "back\\slash", "literal \\n", "ünïcödé"]
        LineInputHistory.append(entries, to: path)
        #expect(LineInputHistory.load(path) == entries)
        // A second session appends; the file stays bounded and private.
        LineInputHistory.append((0..<1100).map { "entry \($0)" }, to: path)
        let all = LineInputHistory.load(path)
        #expect(all.count == LineInputHistory.limit)
        #expect(all.last == "entry 1099")
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(LineInputHistory.defaultPath(disabled: true) == nil)
    }

    @Test func promptEscapesAreMarked() {
        #expect(EditLineInput.markingEscapes(">>> ") == ">>> ")
        #expect(EditLineInput.markingEscapes("\u{1B}[1m>>> \u{1B}[0m") == "\u{1}\u{1B}[1m\u{1}>>>\u{1}\u{1B}[0m\u{1} ")
        #expect(EditLineInput.markingEscapes("\u{1B}[2m...\u{1B}[0m x") == "\u{1}\u{1B}[2m\u{1}...\u{1}\u{1B}[0m\u{1} x")
    }

    @Test func completions() throws {
        #expect(ChatREPL.completions("/prec") == ["/precision"])
        #expect(Set(ChatREPL.completions("/p")) == ["/precision", "/prompt"])
        #expect(ChatREPL.completions("/precision n") == ["nf4", "native"])
        #expect(ChatREPL.completions("/precision ").count == 9)
        #expect(ChatREPL.completions("hello") == [])

        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("models"), withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: dir.appendingPathComponent("model.gguf").path, contents: Data()))
        #expect(FileManager.default.createFile(atPath: dir.appendingPathComponent(".hidden").path, contents: Data()))
        let base = dir.path + "/"
        #expect(EditLineInput.pathCandidates(base + "mo") == [base + "model.gguf", base + "models/"])
        #expect(EditLineInput.pathCandidates(base) == [base + "model.gguf", base + "models/"])
        #expect(EditLineInput.pathCandidates(base + ".h") == [base + ".hidden"])
        #expect(ChatREPL.completions("/load " + base + "models") == [base + "models/"])
        #expect(ChatREPL.completions("/adapter " + base + "models") == [base + "models/"])
        #expect(ChatREPL.completions("/adapter of") == ["off"])
        #expect(ChatREPL.completions("/replay --adapter o") == ["off"])
        #expect(ChatREPL.completions("/replay --ad") == ["--adapter"])
        #expect(EditLineInput.pathCandidates("~") == ["~/"])
        #expect(EditLineInput.pathCandidates("~/").allSatisfy { $0.hasPrefix("~/") })
    }
}
