import Foundation
import Testing
import TestFixtures

/// Scripted chat sessions through piped stdin (script mode): the issue's walk-through,
/// bad input that must not end the session, resume and replay from the command line.
@Suite("Chat in script mode", .serialized)
struct ChatScriptTests {
    /// Runs `nibble chat` in a fresh folder with history and autosave kept inside it.
    func chat(_ lines: [String], arguments: [String] = [], model: String? = nil, in dir: URL) throws -> RunResult {
        let model = try model ?? requireModel()
        return try nibble(["chat", "--model", model, "--threads", "2"] + arguments, input: lines.joined(separator: "\n") + "\n",
                          environment: ["XDG_STATE_HOME": dir.path + "/state", "XDG_DATA_HOME": dir.path + "/data", "NO_COLOR": "1"],
                          currentDirectory: dir, timeout: 300)
    }

    /// Validates `file` against Tools/conversation.schema.json with Python's jsonschema.
    func validate(_ file: URL) throws {
        let complaint = try conversationSchemaComplaint(file)
        #expect(complaint == nil, "\(file.lastPathComponent) does not validate: \((complaint ?? "").suffix(600))")
    }

    func messages(_ file: URL) throws -> [[String: Any]] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any]
        return try #require(json?["messages"] as? [[String: Any]])
    }

    @Test func theWalkThroughOfTheIssue() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
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
        defer { try? FileManager.default.removeItem(at: dir) }
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

    /// `/adapter PATH`, a turn, `/adapter off`, the same turn: the replies are those of
    /// fresh processes with the adapter, and without it on the same history; the saved
    /// file replays both exactly (each with the adapter it recorded).
    @Test func adapterOffGivesWhatAFreshProcessGives() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var shapes: [(name: String, inputs: Int, outputs: Int)] = []
        for layer in 0..<30 { shapes.append(("model.layers.\(layer).self_attn.v_proj", 576, 192)) }
        try LoRAFixtures.writePEFT(LoRAFixtures.randomModules(shapes, rank: 4, amplitude: 0.1, seed: 9), rank: 4, alpha: 8,
                                   to: dir.appendingPathComponent("style"))
        let settings = ["/set temperature 0", "/set max_tokens 12"]
        let turn = "Name a colour."
        let both = try chat(settings + ["/adapter style", turn, "/adapter off", turn, "/save both.json"], in: dir)
        #expect(both.status == 0, "\(both.stderr)")
        let replies = try messages(dir.appendingPathComponent("both.json")).filter { $0["role"] as? String == "assistant" }
        try #require(replies.count == 2)
        #expect((replies[0]["adapter"] as? [String: Any])?["path"] as? String == "style")
        #expect(replies[1]["adapter"] == nil || replies[1]["adapter"] is NSNull)

        let with = try chat(settings + [turn, "/save with.json"], arguments: ["--adapter", "style"], in: dir)
        #expect(with.status == 0, "\(with.stderr)")
        let first = try messages(dir.appendingPathComponent("with.json")).filter { $0["role"] as? String == "assistant" }
        #expect(first.first?["content"] as? String == replies[0]["content"] as? String)
        let without = try chat(settings + [turn, "/save without.json"], arguments: ["--load", "with.json"], in: dir)
        #expect(without.status == 0, "\(without.stderr)")
        let second = try messages(dir.appendingPathComponent("without.json")).filter { $0["role"] as? String == "assistant" }
        #expect(second.count == 2 && second.last?["content"] as? String == replies[1]["content"] as? String)
        #expect(replies[0]["content"] as? String != replies[1]["content"] as? String, "the adapter changed nothing, so this test would not see a wrong one")

        let replay = try nibble(["chat", "--model", try requireModel(), "--replay", "both.json"],
                                environment: ["NO_COLOR": "1", "XDG_DATA_HOME": dir.path + "/data", "XDG_STATE_HOME": dir.path + "/state"],
                                currentDirectory: dir)
        #expect(replay.status == 0, "\(replay.stderr)")
        #expect(replay.stdout.contains(": 0 of 2 replies changed"), "\(replay.stdout)")
    }

    /// The bf16 SmolLM2 folder (`make smollm2-hf`, NIBBLE_SMOLLM2_HF) switched 16 → 8 →
    /// 4 → nf4 → 16 in one chat with a turn at each: the history is kept, and the RSS
    /// after each switch is within 64 MiB of a fresh process's at that precision.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["NIBBLE_SMOLLM2_HF"] != nil, "NIBBLE_SMOLLM2_HF not set (make test sets it)"))
    func bf16FolderSwitchesKeepHistoryAndMemory() throws {
        let folder = try #require(ProcessInfo.processInfo.environment["NIBBLE_SMOLLM2_HF"])
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func rss(_ output: String) -> [Double] {
            output.matches(of: try! Regex(#"RSS ([0-9.]+) MiB"#)).compactMap { Double(output[$0.range].dropFirst(4).dropLast(4)) }
        }
        let precisions = ["bf16", "q8", "q4", "nf4", "bf16"]
        var lines = ["/set temperature 0", "/set max_tokens 6"]
        for (i, p) in precisions.enumerated() {
            lines += ["/precision \(p)", "/show", "Say \(i + 1) words."]
        }
        let run = try chat(lines + ["/save switched.json"], model: folder, in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let switched = rss(run.stdout)
        try #require(switched.count == precisions.count, "\(run.stdout)")
        let saved = try messages(dir.appendingPathComponent("switched.json")).filter { $0["role"] as? String == "assistant" }
        #expect(saved.map { $0["precision"] as? String } == precisions)
        for (i, p) in precisions.enumerated() {
            let fresh = try chat(["/show"], arguments: ["--precision", p], model: folder, in: dir)
            let alone = try #require(rss(fresh.stdout).first, "\(fresh.stdout)")
            #expect(switched[i] <= alone + 64, "\(p): \(switched[i]) MiB after switching, \(alone) MiB fresh")
        }
    }

    /// Broken Hugging Face folders and adapters given to `/model` and `/adapter`: one
    /// line each naming the file and what is wrong, and the chat goes on with its model
    /// and history.
    @Test func brokenFoldersAndAdaptersNeverEndTheSession() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = #"{"model_type":"llama","hidden_size":2,"num_hidden_layers":1,"num_attention_heads":1,"intermediate_size":4,"vocab_size":4}"#
        let tokenizer = #"{"model":{"type":"BPE","vocab":{"a":0,"b":1,"c":2,"d":3},"merges":[]},"pre_tokenizer":{"type":"ByteLevel","use_regex":true},"added_tokens":[]}"#
        let embedding = #"{"model.embed_tokens.weight":{"dtype":"F32","shape":[4,2],"data_offsets":[0,32]}}"#
        func safetensors(_ header: String, dataBytes: Int = 32, headerLength: UInt64? = nil) -> Data {
            var out = Data()
            withUnsafeBytes(of: (headerLength ?? UInt64(header.utf8.count)).littleEndian) { out.append(contentsOf: $0) }
            out.append(Data(header.utf8))
            out.append(Data(count: dataBytes))
            return out
        }
        func folder(_ name: String, config: String = config, tokenizer: String = tokenizer, weights: Data) throws {
            let url = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            try Data(config.utf8).write(to: url.appendingPathComponent("config.json"))
            try Data(tokenizer.utf8).write(to: url.appendingPathComponent("tokenizer.json"))
            try weights.write(to: url.appendingPathComponent("model.safetensors"))
        }
        try folder("long-header", weights: safetensors(embedding, headerLength: 1 << 40))
        try folder("past-end", weights: safetensors(#"{"model.embed_tokens.weight":{"dtype":"F32","shape":[4,2],"data_offsets":[8,40]}}"#))
        try folder("overlap", weights: safetensors(#"{"model.embed_tokens.weight":{"dtype":"F32","shape":[4,2],"data_offsets":[0,32]},"model.norm.weight":{"dtype":"F32","shape":[2],"data_offsets":[24,32]}}"#))
        try folder("size", weights: safetensors(#"{"model.embed_tokens.weight":{"dtype":"F16","shape":[4,2],"data_offsets":[0,32]}}"#))
        try folder("no-width", config: #"{"model_type":"llama","num_hidden_layers":1,"num_attention_heads":1,"intermediate_size":4,"vocab_size":4}"#,
                   weights: safetensors(embedding))
        try folder("mamba", config: #"{"model_type":"mamba","hidden_size":2}"#, weights: safetensors(embedding))
        try folder("whitespace", tokenizer: tokenizer.replacingOccurrences(of: #"{"type":"ByteLevel","use_regex":true}"#, with: #"{"type":"Whitespace"}"#),
                   weights: safetensors(embedding))
        try LoRAFixtures.writePEFT(LoRAFixtures.randomModules([("model.layers.0.self_attn.q_proj", 576, 576)], rank: 2, amplitude: 0.1, seed: 7)
            .map { var m = $0; m.rankOfA = 3; m.a += [Float](repeating: 0.1, count: 576); return m }, rank: 2, alpha: 4,
            to: dir.appendingPathComponent("rank-adapter"))
        try LoRAFixtures.writePEFT(LoRAFixtures.randomModules([("model.layers.0.mlp.down_proj", 576, 576)], rank: 2, amplitude: 0.1, seed: 8),
                                   rank: 2, alpha: 4, to: dir.appendingPathComponent("shape-adapter"))
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("pickle-adapter"), withIntermediateDirectories: true)
        try Data([0x80, 0x02]).write(to: dir.appendingPathComponent("pickle-adapter/adapter_model.bin"))

        let bad = ["long-header", "past-end", "overlap", "size", "no-width", "mamba", "whitespace"]
        let result = try chat(["/set temperature 0", "/set max_tokens 6", "Hello!"] + bad.map { "/model \($0)" }
                              + ["/adapter rank-adapter", "/adapter shape-adapter", "/adapter pickle-adapter", "Hello again!", "/model", "/save after.json"],
                              in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let errors = result.stderr.split(separator: "\n").map(String.init)
        #expect(errors.count == bad.count + 3, "\(result.stderr)")
        let expected: [(String, [String])] = [
            ("long-header/model.safetensors", ["header length"]),
            ("past-end/model.safetensors", ["model.embed_tokens.weight", "past the end"]),
            ("overlap/model.safetensors", ["model.embed_tokens.weight", "model.norm.weight", "overlaps"]),
            ("size/model.safetensors", ["model.embed_tokens.weight", "F16"]),
            ("no-width/config.json", ["hidden_size"]),
            ("mamba/config.json", ["model_type", "mamba"]),
            ("whitespace/tokenizer.json", ["pre_tokenizer", "Whitespace"]),
            ("rank-adapter/adapter_model.safetensors", ["q_proj", "ranks differ"]),
            ("shape-adapter", ["down_proj", "576×1536", "576×576"]),
            ("pickle-adapter/adapter_model.bin", ["pickle", "safetensors"]),
        ]
        for (file, fragments) in expected {
            #expect(errors.contains { line in line.contains(file) && fragments.allSatisfy { line.contains($0) } }, "no line for \(file) with \(fragments): \(result.stderr)")
        }
        #expect(result.stdout.contains("SmolLM2"))
        let saved = try messages(dir.appendingPathComponent("after.json"))
        #expect(saved.filter { $0["role"] as? String == "user" }.map { $0["content"] as? String } == ["Hello!", "Hello again!"])
        #expect(saved.filter { $0["role"] as? String == "assistant" }.count == 2)
    }

    @Test func badInputNeverEndsTheSession() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
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
        defer { try? FileManager.default.removeItem(at: dir) }
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
