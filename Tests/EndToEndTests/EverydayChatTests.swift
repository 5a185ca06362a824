import Foundation
import Testing

/// Issue 10's smaller items, in script mode: bare commands that show instead of failing,
/// tokens as `id 'piece'`, one unit (MiB), `-m`.
@Suite(.serialized) struct EverydayChatTests {
    @Test func bareCommandsShowWhatTheyWouldChange() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try requireModel()
        let run = try nibble(["chat", "-m", model, "--temperature", "0", "--max-tokens", "4"],
                             input: "/model\n/tokens Hello world\n/tokens\nHi\n/export\n/prompt\n/show\n/compare q8 q4 Hi\n",
                             environment: ["XDG_DATA_HOME": dir.path + "/data", "XDG_STATE_HOME": dir.path + "/state", "NO_COLOR": "1"],
                             currentDirectory: dir)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.isEmpty, "\(run.stderr)")
        #expect(run.stdout.contains("model: SmolLM2-135M-Instruct at q4 — \(model)"))
        // SmolLM2: "Hello" 19556, " world" 905 (Ġ shown as the space it stands for).
        #expect(run.stdout.contains("2 tokens: 19556 'Hello' 905 ' world'"), "\(run.stdout)")
        #expect(run.stdout.contains("the next prompt takes "))
        #expect(run.stdout.range(of: #"exported the transcript to .*/data/nibble/sessions/nibble-\d{8}-\d{6}\.md"#, options: .regularExpression) != nil,
                "\(run.stdout)")
        #expect(run.stdout.contains("  concise "), "\(run.stdout)")
        #expect(run.stdout.contains(" MiB, KV cache ") && !run.stdout.contains(" MB"), "\(run.stdout)")
        #expect(run.stdout.contains("the replies are identical") || run.stdout.range(of: #"the replies differ from token \d+ on"#, options: .regularExpression) != nil)
    }

    @Test func tokenizeShowsPieces() throws {
        let run = try nibble(["tokenize", "-m", try requireModel(), "--text", "Hello world", "--pieces"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "19556 'Hello' 905 ' world'\n")
    }

    /// A sampled reply records its seed, so replaying at the same precision reproduces
    /// it; a file without seeds says its differences may be sampling alone; --greedy.
    @Test func replaysAreHonest() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try requireModel()
        let env = ["XDG_DATA_HOME": dir.path + "/data", "XDG_STATE_HOME": dir.path + "/state", "NO_COLOR": "1"]
        let run = try nibble(["chat", "-m", model, "--temperature", "0.8", "--max-tokens", "12"],
                             input: "Write a line about the sea.\nAnd one about the sky.\n/save s.json\n/replay\n",
                             environment: env, currentDirectory: dir)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("replay at q4: 0 of 2 replies changed"), "\(run.stdout)")
        // The file records each reply's seed (and validates: see ChatScriptTests).
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("s.json"))) as? [String: Any]
        let messages = try #require(json?["messages"] as? [[String: Any]])
        #expect(messages.filter { $0["role"] as? String == "assistant" }.allSatisfy { $0["seed"] is Int })
        #expect(messages.filter { $0["role"] as? String == "user" }.allSatisfy { $0["seed"] == nil })

        // The same file without its seeds: the replay cannot draw the same tokens.
        var unseeded = json!
        unseeded["messages"] = messages.map { m in var m = m; m.removeValue(forKey: "seed"); return m }
        try JSONSerialization.data(withJSONObject: unseeded).write(to: dir.appendingPathComponent("u.json"))
        let replay = try nibble(["chat", "-m", model], input: "/replay u.json\n/replay u.json --greedy\n", environment: env, currentDirectory: dir)
        #expect(replay.status == 0, "\(replay.stderr)")
        if replay.stdout.range(of: #"replay at q4: [12] of 2 replies changed"#, options: .regularExpression) != nil {
            #expect(replay.stdout.contains("were sampled without a recorded seed: their differences may be sampling alone"), "\(replay.stdout)")
        }
        #expect(replay.stdout.contains("replay at q4, greedy: "), "\(replay.stdout)")
    }

    /// `nibble MODEL` opens the chat on it; `/set context default` and a context past the
    /// trained length; `template --messages` takes a conversation file.
    @Test func modelArgumentContextAndTemplateFiles() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try requireModel()
        let env = ["XDG_DATA_HOME": dir.path + "/data", "XDG_STATE_HOME": dir.path + "/state", "NO_COLOR": "1"]
        let run = try nibble([model, "--max-tokens", "2"], input: "/set context 512\n/set context 9000\n/set context default\nHi\n/save c.json\n",
                             environment: env, currentDirectory: dir)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("context = 512 (512 tokens)"), "\(run.stdout)")
        #expect(run.stdout.contains("the model was trained on 8192 tokens"), "\(run.stdout)")
        #expect(run.stdout.contains("context = model default (4096 tokens)"), "\(run.stdout)")
        let rendered = try nibble(["template", "--template", "chatml", "--messages", dir.appendingPathComponent("c.json").path])
        #expect(rendered.status == 0, "\(rendered.stderr)")
        #expect(rendered.stdout.hasPrefix("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), "\(rendered.stdout)")
    }

    /// Each sub-command's help lists the options it reads and none it would ignore; an
    /// option it does not take is an error that names it.
    @Test func helpListsOnlyTheOptionsACommandReads() throws {
        let reads: [String: Set<String>] = [
            "info": ["--model", "--context", "--memory-limit", "--json"],
            "tokenize": ["--model", "--text", "--file", "--special", "--bos", "--pieces"],
            "bench": ["--model", "--precision", "--threads", "--context", "--prompt-tokens", "--gen-tokens", "--repeats",
                      "--quality", "--quality-tokens", "--svg", "--json", "--kv-cache"],
            "eval": ["--model", "--precision", "--threads", "--memory-limit", "--file", "--context", "--kv-cache", "--reference-kv-cache",
                     "--adapter", "--json"],
            "quantize": ["--model", "--precision", "--threads", "--output"],
            "generate": ["--model", "--precision", "--threads", "--context", "--memory-limit", "--prompt", "--max-tokens", "--adapter",
                         "--kv-cache"],
        ]
        let ignores: [String: Set<String>] = [
            "info": ["--precision", "--threads", "--kv-cache"],
            "tokenize": ["--precision", "--threads", "--context", "--memory-limit", "--kv-cache"],
            "bench": ["--precisions", "--memory-limit", "--adapter"],
            "eval": ["--ctx"],
            "quantize": ["--context", "--memory-limit", "--adapter", "--kv-cache"],
        ]
        for (command, options) in reads {
            let help = try nibble([command, "--help"])
            #expect(help.status == 0)
            let listed = Set(help.stdout.matches(of: try Regex("--[a-z][a-z-]*")).map { String(help.stdout[$0.range]) })
            #expect(options.isSubset(of: listed), "\(command) --help lacks \(options.subtracting(listed).sorted())")
            let wrong = listed.intersection(ignores[command] ?? [])
            #expect(wrong.isEmpty, "\(command) --help lists \(wrong.sorted()), which it does not read")
        }
        let refused = try nibble(["tokenize", "--threads", "2", "--text", "hi"])
        #expect(refused.status == 1)
        #expect(refused.stderr.hasPrefix("Error: Unknown option '--threads'"), "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count <= 3)
    }
}
