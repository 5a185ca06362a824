import Foundation
import Testing

/// Autosave never loses a turn; saves never write through links, never destroy a file
/// that is not theirs, are private, and leave no temporaries behind; `$HOME` is honoured;
/// conversation files' settings are checked (issue 9, items 2, 3, 4, 6, 10).
@Suite("Chat files", .serialized)
struct ChatFileSafetyTests {
    /// `nibble chat` in script mode in `dir`, with its data and state inside `dir`.
    func chat(_ lines: [String], arguments: [String] = [], in dir: URL, environment: [String: String]? = nil) throws -> RunResult {
        let model = try requireModel()
        let env = environment ?? ["XDG_STATE_HOME": dir.path + "/state", "XDG_DATA_HOME": dir.path + "/data"]
        return try nibble(["chat", "--model", model, "--threads", "2", "--temperature", "0", "--max-tokens", "4"] + arguments,
                          input: lines.joined(separator: "\n") + "\n", environment: env.merging(["NO_COLOR": "1"]) { $1 },
                          currentDirectory: dir, timeout: 300)
    }

    func sessions(_ dir: URL) throws -> [URL] {
        let folder = dir.appendingPathComponent("data/nibble/sessions")
        return try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted().map { folder.appendingPathComponent($0) }
    }

    func userTurns(_ file: URL) throws -> [String] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any]
        let messages = try #require(json?["messages"] as? [[String: Any]])
        return messages.filter { $0["role"] as? String == "user" }.compactMap { $0["content"] as? String }
    }

    func mode(_ path: String) throws -> Int {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }

    /// The issue's reproducer: resuming a saved conversation wrote over the first
    /// session's autosave with a shorter conversation.
    @Test func resumingNeverOverwritesAnAutosave() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try chat(["A1", "/save a.json", "A2", "A3", "/quit"], in: dir)
        #expect(first.status == 0, "\(first.stderr)")
        let second = try chat(["B", "/quit"], arguments: ["--load", "a.json"], in: dir)
        #expect(second.status == 0, "\(second.stderr)")
        let files = try sessions(dir)
        #expect(files.count == 2, "\(files)")
        let turns = try files.map(userTurns).sorted { $0.count > $1.count }
        #expect(turns == [["A1", "A2", "A3"], ["A1", "B"]])
        // Private files in a private folder.
        #expect(try mode(dir.path + "/data/nibble/sessions") == 0o700)
        for file in files { #expect(try mode(file.path) == 0o600, "\(file.lastPathComponent)") }
        #expect(try mode(dir.path + "/a.json") == 0o600)
        // The model is named as people know it, not by its general.name.
        let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("a.json"))) as? [String: Any]
        #expect((saved?["model"] as? [String: Any])?["name"] as? String == "SmolLM2-135M-Instruct")
    }

    @Test func loadAndClearContinueInNewFilesAndSayWhereThePreviousTurnsAre() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try chat(["X1", "/save x.json"], in: dir)
        let before = Set(try sessions(dir))
        let run = try chat(["C1", "/clear", "C2", "/load x.json", "C3"], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let files = try sessions(dir).filter { !before.contains($0) }
        #expect(files.count == 3, "\(files)")
        #expect(Set(try files.map(userTurns)) == [["C1"], ["C2"], ["X1", "C3"]])
        // Each of /clear and /load names the file with the turns before it.
        for turns in [["C1"], ["C2"]] {
            let file = try #require(files.first { try userTurns($0) == turns })
            #expect(run.stdout.contains("the previous turns are in \(file.path)"), "\(run.stdout)")
        }
    }

    @Test func savesDoNotDestroyOtherFiles() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let notes = dir.appendingPathComponent("notes.txt")
        try Data("my notes\n".utf8).write(to: notes)
        let other = dir.appendingPathComponent("other.json")
        _ = try chat(["O1", "/save other.json"], in: dir)
        let otherBytes = try Data(contentsOf: other)
        let run = try chat([
            "Hi", "/save notes.txt", "/export notes.txt", "/save other.json",  // refused: not ours
            "/save mine.json", "Again", "/save mine.json",                     // ours: replaced
            "/export mine.md", "/export mine.md",
            "/save! notes.txt",
        ], in: dir)
        #expect(run.status == 0)
        let errors = run.stderr.split(separator: "\n").map(String.init)
        #expect(errors.count == 3, "\(run.stderr)")
        #expect(errors.first?.contains("notes.txt already exists and is not an earlier save of this conversation; /save! notes.txt replaces it") == true,
                "\(run.stderr)")
        #expect(errors.dropFirst().first?.contains("/export! notes.txt replaces it") == true, "\(run.stderr)")
        #expect(try Data(contentsOf: other) == otherBytes)
        #expect(try userTurns(dir.appendingPathComponent("mine.json")) == ["Hi", "Again"])
        #expect(try userTurns(notes) == ["Hi", "Again"], "/save! replaced it")
        #expect(try mode(dir.appendingPathComponent("mine.md").path) == 0o600)
    }

    @Test func saveReplacesALinkInsteadOfWritingThroughIt() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let victim = dir.appendingPathComponent("victim.txt")
        try Data("precious\n".utf8).write(to: victim)
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("link.json").path, withDestinationPath: victim.path)
        let run = try chat(["Hi", "/save! link.json"], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try String(contentsOf: victim, encoding: .utf8) == "precious\n")
        let kind = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("link.json").path)[.type] as? FileAttributeType
        #expect(kind == .typeRegular)
    }

    @Test func temporariesOfKilledWritersAreRemoved() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A PID that is certainly gone: a child that has exited and been reaped.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let stale = dir.appendingPathComponent(".c.json.\(child.processIdentifier).abcd1234.tmp")
        let live = dir.appendingPathComponent(".c.json.1.abcd1234.tmp")  // init is alive
        try Data(count: 1000).write(to: stale)
        try Data(count: 1000).write(to: live)
        let run = try chat(["Hi", "/save c.json"], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: stale.path))
        #expect(FileManager.default.fileExists(atPath: live.path))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tmp") }
        #expect(leftovers == [live.lastPathComponent])
    }

    /// With only HOME set, the sessions, the history and `~` in typed paths are under it.
    @Test func homeComesFromTheEnvironment() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let home = dir.appendingPathComponent("home")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        var env = ProcessInfo.processInfo.environment
        for key in ["XDG_DATA_HOME", "XDG_STATE_HOME"] { env.removeValue(forKey: key) }
        env["HOME"] = home.path
        let run = try chat(["Hi", "/save ~/saved.json", "/export ~/saved.md"], in: dir, environment: env)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(FileManager.default.fileExists(atPath: home.path + "/saved.json"))
        #expect(FileManager.default.fileExists(atPath: home.path + "/saved.md"))
        let autosaves = try FileManager.default.contentsOfDirectory(atPath: home.path + "/.local/share/nibble/sessions")
        #expect(autosaves.count == 1)
        #expect(try mode(home.path + "/.local/share/nibble") == 0o700)
        // The default model is looked for where `make model` puts it: under $HOME.
        env.removeValue(forKey: "XDG_CACHE_HOME")
        let noModel = try nibble(["info"], environment: env.merging(["XDG_CACHE_HOME": ""]) { $1 })
        #expect(noModel.status == 1)
        #expect(noModel.stderr.contains("not installed at \(home.path)/.cache/nibble/models/"), "\(noModel.stderr)")
    }

    /// The command line takes the same ranges as /set and conversation files.
    @Test func commandLineRangesMatchSet() throws {
        let model = try requireModel()
        for (arguments, message) in [(["--top-p", "7"], "--top-p must be a number in 0...1, not 7.0"),
                                     (["--repeat-penalty", "0"], "--repeat-penalty must be > 0 (1 = off), not 0.0"),
                                     (["--max-tokens", "0"], "--max-tokens must be a whole number in 1...1048576, not 0"),
                                     (["--threads", "100000"], "--threads must be in 1...")] {
            let run = try nibble(["chat", "--model", model] + arguments, input: "")
            #expect(run.status == 1, "\(arguments)")
            #expect(run.stderr.contains(message), "\(arguments): \(run.stderr)")
        }
    }

    /// Settings in a conversation file get the same ranges as /set, with one line naming
    /// the file and the field; the session goes on.
    @Test func conversationSettingsAreChecked() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cases: [(String, String, String)] = [
            ("max_tokens", "-5", "settings.max_tokens must be a whole number in 1...1048576, not -5"),
            ("repeat_penalty", "0", "settings.repeat_penalty must be > 0 (1 = off), not 0"),
            ("context", "0", "settings.context must be a whole number in 16...1048576, not 0"),
            ("top_p", "7", "settings.top_p must be a number in 0...1, not 7"),
            ("temperature", "-1", "settings.temperature must be a number in 0...100, not -1"),
        ]
        for (field, value, _) in cases {
            let text = """
                {"format": "nibble.conversation", "version": 1, "created": "2026-11-25T16:00:00Z",
                 "settings": {"\(field)": \(value)}, "messages": [{"role": "user", "content": "Hi", "created": "2026-11-25T16:00:00Z"}]}
                """
            try Data(text.utf8).write(to: dir.appendingPathComponent("\(field).json"))
        }
        let run = try chat(cases.map { "/load \($0.0).json" } + ["Still here?"], in: dir)
        #expect(run.status == 0)
        let errors = run.stderr.split(separator: "\n").map(String.init)
        #expect(errors.count == cases.count, "\(run.stderr)")
        for (line, (field, _, message)) in zip(errors, cases) {
            #expect(line.hasSuffix("\(field).json: \(message)"), "\(line)")
        }
        // The session went on with its own (empty) conversation.
        #expect(try sessions(dir).map(userTurns) == [["Still here?"]])
        let resumed = try chat([], arguments: ["--load", "max_tokens.json"], in: dir)
        #expect(resumed.status == 1)
        #expect(resumed.stderr.contains("max_tokens.json: settings.max_tokens must be a whole number"), "\(resumed.stderr)")
    }

    /// A 100,000-message file loads and `/show` finds the context cut at once (it took
    /// 25 s to load and did not finish `/show` before; the bound is generous for CI).
    @Test func hugeConversationsLoadAndShowQuickly() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var messages = [#"{"role": "system", "content": "Be brief.", "created": "2026-11-25T16:00:00Z"}"#]
        for i in 0..<50_000 {
            messages.append(#"{"role": "user", "content": "Question \#(i)?", "created": "2026-11-25T16:00:00.125Z"}"#)
            messages.append(#"{"role": "assistant", "content": "Answer \#(i).", "created": "2026-11-25T16:00:01Z"}"#)
        }
        let text = #"{"format": "nibble.conversation", "version": 1, "created": "2026-11-25T16:00:00Z", "messages": ["#
            + messages.joined(separator: ",\n") + "]}"
        try Data(text.utf8).write(to: dir.appendingPathComponent("big.json"))
        let started = Date()
        let run = try chat(["/load big.json", "/show"], in: dir)
        let elapsed = Date().timeIntervalSince(started)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("loaded big.json: 50000 user turns"))
        #expect(run.stdout.range(of: #"the \d+ oldest exchanges are left out"#, options: .regularExpression) != nil, "\(run.stdout)")
        #expect(elapsed < 30, "\(elapsed) s")
    }

    /// Defaults that serve small models: repeat_penalty 1.1, the model's own generation
    /// settings where the file has them, flags over both; a reply cut by max_tokens says so.
    @Test func defaultsComeFromTheModelAndTheFlags() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plain = try chat(["/set"], arguments: [], in: dir)
        #expect(plain.stdout.contains("repeat_penalty  1.1"), "\(plain.stdout)")
        let model = try modelCopy("tuned.gguf", in: dir, changing: [
            "general.sampling.temp": .float32(0.3), "general.sampling.top_k": .int32(20), "general.sampling.penalty_repeat": .float32(1.2)])
        let tuned = try nibble(["chat", "--model", model.path, "--top-k", "7"], input: "/set\n",
                               environment: ["XDG_DATA_HOME": dir.path + "/data", "NO_COLOR": "1"], currentDirectory: dir)
        #expect(tuned.status == 0, "\(tuned.stderr)")
        #expect(tuned.stdout.contains("temperature     0.3"), "\(tuned.stdout)")
        #expect(tuned.stdout.contains("top_k           7"), "the flag wins: \(tuned.stdout)")
        #expect(tuned.stdout.contains("repeat_penalty  1.2"), "\(tuned.stdout)")
        let cut = try chat(["Tell me a long story."], in: dir)  // --max-tokens 4
        #expect(cut.stdout.contains("[stopped at 4 tokens: /set max_tokens N allows longer replies]"), "\(cut.stdout)")
    }
}
