import Foundation
import Testing
import TestFixtures

/// Scripted chat sessions through piped stdin (script mode): the issue's walk-through,
/// bad input that must not end the session, resume and replay from the command line.
@Suite("Chat in script mode", .serialized)
struct ChatScriptTests {
    /// Runs `nibble chat` in a fresh folder with history and autosave kept inside it.
    func chat(_ lines: [String], arguments: [String] = [], in dir: URL) throws -> RunResult {
        let model = try requireModel()
        return try nibble(["chat", "--model", model, "--threads", "2"] + arguments, input: lines.joined(separator: "\n") + "\n",
                          environment: ["XDG_STATE_HOME": dir.path + "/state", "XDG_DATA_HOME": dir.path + "/data", "NO_COLOR": "1"],
                          currentDirectory: dir, timeout: 300)
    }

    /// Validates `file` against Tools/conversation.schema.json with Python's jsonschema.
    func validate(_ file: URL) throws {
        let schema = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Tools/conversation.schema.json").standardized
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1]))
            jsonschema.Draft202012Validator.check_schema(schema)
            jsonschema.validate(json.load(open(sys.argv[2])), schema, cls=jsonschema.Draft202012Validator)
            """, schema.path, file.path]
        let err = Pipe()
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(file.lastPathComponent) does not validate: \(message.suffix(600))")
    }

    func messages(_ file: URL) throws -> [[String: Any]] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any]
        return try #require(json?["messages"] as? [[String: Any]])
    }

    @Test func theWalkThroughOfTheIssue() throws {
        let dir = try temporaryDirectory()
        let result = try chat([
            "/set temperature 0",
            "/set max_tokens 24",
            "What is the capital of France?",
            "And of Germany?",
            "/precision 8",
            "Name a large animal.",
            "/show",
            "/save first.json",
            "/load first.json",
            "/replay --precision 4",
            "/export first.md",
            "/frobnicate",
            "/load missing.json",
            "Thank you!",
            "/save second.json",
            "/quit",
        ], in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let first = dir.appendingPathComponent("first.json"), second = dir.appendingPathComponent("second.json")
        try validate(first)
        try validate(second)
        let firstTurns = try messages(first)
        #expect(firstTurns.filter { $0["role"] as? String == "user" }.count == 3)
        let assistants = try messages(second).filter { $0["role"] as? String == "assistant" }
        #expect(assistants.count == 4)
        #expect(assistants.map { $0["precision"] as? String } == ["q4", "q4", "q8", "q8"])
        #expect(try messages(second).filter { $0["role"] as? String == "user" }.map { $0["content"] as? String }
                == ["What is the capital of France?", "And of Germany?", "Name a large animal.", "Thank you!"])
        // The replay ran at q4 and the session went back to q8 for the fourth turn.
        #expect(result.stdout.contains("replay at q4: "))
        #expect(result.stdout.contains("back at q8"))
        let markdown = try String(contentsOf: dir.appendingPathComponent("first.md"), encoding: .utf8)
        #expect(markdown.contains("## User\n\nWhat is the capital of France?"))
        // Each failure is one line on stderr and the session went on.
        let errors = result.stderr.split(separator: "\n")
        #expect(errors.contains { $0.contains("unknown command /frobnicate") })
        #expect(errors.contains { $0.contains("missing.json: no such file") })
        #expect(errors.count == 2, "\(result.stderr)")
        // /show gives the precision and how much of the window the conversation takes.
        #expect(result.stdout.contains("precision  q8 (the file stores q4)"))
        #expect(result.stdout.range(of: #"context    \d+ / \d+ tokens \(\d+ %\) in the next prompt"#, options: .regularExpression) != nil,
                "\(result.stdout)")
        // Script mode: no prompt, no colours.
        #expect(!result.stdout.contains(">>> "))
        #expect(!result.stdout.contains("\u{1b}["))
        // Autosave kept the whole session: the loaded conversation went on in a new file,
        // and the file before the /load kept its three exchanges.
        let sessions = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/data/nibble/sessions").sorted()
        #expect(sessions.count == 2, "\(sessions)")
        let counts = try sessions.map { try messages(URL(fileURLWithPath: dir.path + "/data/nibble/sessions/" + $0)).count }
        #expect(counts.sorted() == [6, 8])
        #expect(result.stdout.contains("the previous turns are in \(dir.path)/data/nibble/sessions/nibble-"))
    }

    /// `/adapter` on, shown, off and refused in one session; the file records the adapter
    /// of each reply and validates against the schema.
    @Test func adapterOnAndOffMidChat() throws {
        let dir = try temporaryDirectory()
        var shapes: [(name: String, inputs: Int, outputs: Int)] = []
        for layer in 0..<30 { shapes.append(("model.layers.\(layer).self_attn.q_proj", 576, 576)) }
        try LoRAFixtures.writePEFT(LoRAFixtures.randomModules(shapes, rank: 2, amplitude: 0.1, seed: 5), rank: 2, alpha: 4,
                                   to: dir.appendingPathComponent("style"))
        try LoRAFixtures.writePEFT(LoRAFixtures.randomModules([("model.layers.0.self_attn.v_proj", 576, 576)], rank: 2, amplitude: 0.1, seed: 6),
                                   rank: 2, alpha: 4, to: dir.appendingPathComponent("misfit"))
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("pickled"), withIntermediateDirectories: true)
        try Data([0x80, 0x02]).write(to: dir.appendingPathComponent("pickled/adapter_model.bin"))
        let result = try chat([
            "/set temperature 0", "/set max_tokens 8",
            "Hello!",
            "/adapter style",
            "/adapter",
            "Hello again!",
            "/adapter misfit",
            "/adapter pickled",
            "/show",
            "/adapter off",
            "Goodbye!",
            "/save a.json",
        ], arguments: [], in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let errors = result.stderr.split(separator: "\n").map(String.init)
        #expect(errors.count == 2, "\(result.stderr)")
        #expect(errors.contains { $0.contains("misfit") && $0.contains("v_proj") && $0.contains("192×576") && $0.contains("576×576") })
        #expect(errors.contains { $0.contains("adapter_model.bin") && $0.contains("safetensors") })
        #expect(result.stdout.contains("adapter on: style (peft, 30 weights, rank ≤ 2"), "\(result.stdout)")
        #expect(result.stdout.contains("adapter off (was style)"))
        #expect(result.stdout.contains("adapter    style (peft"))
        let file = dir.appendingPathComponent("a.json")
        try validate(file)
        let assistants = try messages(file).filter { $0["role"] as? String == "assistant" }
        #expect(assistants.map { ($0["adapter"] as? [String: Any])?["path"] as? String } == [nil, "style", nil])
    }

    @Test func badInputNeverEndsTheSession() throws {
        let dir = try temporaryDirectory()
        try Data("{\"format\": \"nibble.conversation\", \"version\": 1, \"messages\": 3}".utf8).write(to: dir.appendingPathComponent("broken.json"))
        try Data("GGUF\u{3}\0\0\0garbage".utf8).write(to: dir.appendingPathComponent("broken.gguf"))
        try Data("""
            {%- for m in messages %}{% if m.content == 'boom' %}{{ raise_exception('boom is not a polite word') }}{% endif %}<|im_start|>{{ m.role }}
            {{ m.content }}<|im_end|>
            {% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
            {% endif %}
            """.utf8).write(to: dir.appendingPathComponent("strict.jinja"))
        let result = try chat([
            "/set temperature 0", "/set max_tokens 8",
            "Hello!",
            "/load broken.json",
            "/model broken.gguf",
            "/model nowhere.gguf",
            "/precision 3",
            "/set temperature hot",
            "boom",
            "/save nested/missing/dir.json",
            "Hello again!",
            "/save after.json",
        ], arguments: ["--template", dir.appendingPathComponent("strict.jinja").path], in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let errors = result.stderr.split(separator: "\n").map(String.init)
        #expect(errors.count == 7, "\(result.stderr)")
        #expect(errors.contains { $0.contains("broken.json") })
        #expect(errors.contains { $0.contains("broken.gguf") })
        #expect(errors.contains { $0.contains("nowhere.gguf") })
        #expect(errors.contains { $0.contains("unknown precision '3'") })
        #expect(errors.contains { $0.contains("temperature must be a number") })
        #expect(errors.contains { $0.contains("boom is not a polite word") })
        #expect(errors.contains { $0.contains("missing") })
        let saved = try messages(dir.appendingPathComponent("after.json"))
        #expect(saved.map { $0["content"] as? String }.enumerated().filter { $0.offset % 2 == 0 }.map(\.element) == ["Hello!", "Hello again!"])
    }

    @Test func resumeAndReplayFromTheCommandLine() throws {
        let dir = try temporaryDirectory()
        _ = try chat(["/set temperature 0", "/set max_tokens 16", "Say hello.", "Count to three.", "/save c.json"], in: dir)
        let resumed = try chat(["Now count to five.", "/save resumed.json"], arguments: ["--load", "c.json"], in: dir)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try messages(dir.appendingPathComponent("resumed.json")).count == 6)

        let model = try requireModel()
        let replay = try nibble(["chat", "--model", model, "--replay", "c.json", "--precision", "q4"],
                                environment: ["NO_COLOR": "1", "XDG_DATA_HOME": dir.path + "/data", "XDG_STATE_HOME": dir.path + "/state"],
                                currentDirectory: dir)
        #expect(replay.status == 0, "\(replay.stderr)")
        #expect(replay.stdout.contains("replay at q4: 0 of 2 replies changed"), "\(replay.stdout)")
        let missing = try nibble(["chat", "--model", model, "--replay", "nope.json"], currentDirectory: dir)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("nope.json: no such file"))
    }
}
