import Chat
import JSON
import Foundation
import Remote
import Testing
import TestFixtures

/// `nibble chat --server` against real llama-server instances (SmolLM2 Q4_1 and a q8 copy,
/// started once per test process, Tests/TestFixtures/ServerHarness.swift) and the fake server
/// of Tools/remote_test_server.py: the walk-through of issue 14 and its faults, in script mode
/// (stdin a pipe) and Ctrl-C on a pseudo-terminal. Nothing but 127.0.0.1 is contacted.
@Suite("Served models in the chat", .serialized, .enabled(if: llamaServerBinaryPath != nil, Comment(rawValue: llamaServerSkipReason)))
struct ServedChatTests {
    func servers() throws -> (q4: LlamaServerProcess, q8: LlamaServerProcess) {
        try SharedLlamaServers.shared.servers(model: try requireModel(), nibble: nibbleBinary)
    }

    static func environment(_ dir: URL) -> [String: String] {
        ["XDG_STATE_HOME": dir.path + "/state", "XDG_DATA_HOME": dir.path + "/data", "NO_COLOR": "1"]
    }

    func chat(_ lines: [String], arguments: [String], in dir: URL, environment: [String: String] = [:]) throws -> RunResult {
        try nibble(["chat", "--model", try requireModel(), "--threads", "2"] + arguments, input: lines.joined(separator: "\n") + "\n",
                   environment: Self.environment(dir).merging(environment) { $1 }, currentDirectory: dir, timeout: 300)
    }

    func json(_ file: URL) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
    }

    func messages(_ file: URL) throws -> [[String: Any]] { try #require(try json(file)["messages"] as? [[String: Any]]) }

    /// The autosave files the session wrote.
    func autosaves(_ dir: URL) throws -> [URL] {
        let folder = dir.appendingPathComponent("data/nibble/sessions")
        return (try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? []
    }

    /// The issue's walk-through: three streamed turns on the q4 server, `/model` to the q8
    /// server, a turn, `/compare` local q4 vs served q8, `/save`, `/load`, `/replay --model`
    /// the local file at q4. Each reply records who wrote it; at temperature 0 a streamed reply
    /// equals the same request made without streaming.
    @Test func theWalkThroughAgainstTwoServers() throws {
        let (q4, q8) = try servers()
        let model = try requireModel()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // The same server cache state before the streamed and the whole request: llama-server
        // reuses the longest cached prefix and evaluates the rest in one batch, and its kernels
        // may round differently by batch size (RemoteTests' LlamaServerTests does the same).
        let other = Data(#"{"model": "smollm2-q4", "messages": [{"role": "user", "content": "Hi."}], "temperature": 0, "max_tokens": 1}"#.utf8)
        _ = try httpRequest(q4.url + "/v1/chat/completions", body: other)
        let result = try chat([
            "/set temperature 0",
            "/set max_tokens 24",
            "What is the capital of France?",
            "And of Germany?",
            "Name a large animal.",
            "/model",
            "/model big",
            "Thank you!",
            "/compare q4 big Name a colour.",
            "/save walk.json",
            "/load walk.json",
            "/replay --model \(model) --precision q4",
            "/quit",
        ], arguments: ["--server", "small=\(q4.url)", "--server", "big=\(q8.url)"], in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.isEmpty, "no command may fail: \(result.stderr)")
        let file = dir.appendingPathComponent("walk.json")
        try validateConversation(file)
        let all = try messages(file)
        #expect(all.filter { $0["role"] as? String == "user" }.map { $0["content"] as? String }
                == ["What is the capital of France?", "And of Germany?", "Name a large animal.", "Thank you!"])
        let replies = all.filter { $0["role"] as? String == "assistant" }
        #expect(replies.map { $0["server"] as? String } == [q4.url, q4.url, q4.url, q8.url])
        #expect(replies.map { $0["model"] as? String } == ["smollm2-q4", "smollm2-q4", "smollm2-q4", "smollm2-q8"])
        #expect(replies.allSatisfy { $0["precision"] == nil && !(($0["content"] as? String) ?? "").isEmpty })
        #expect(replies.allSatisfy { (($0["stats"] as? [String: Any])?["generated_tokens"] as? Int ?? 0) > 0 })
        let top = try json(file)
        #expect((top["model"] as? [String: String]) == ["server": q8.url, "name": "smollm2-q8"])
        // /model listed both servers and the local file, then switched.
        #expect(result.stdout.contains("small — smollm2-q4 on \(q4.url)") && result.stdout.contains("big — smollm2-q8 on \(q8.url)"))
        #expect(result.stdout.contains("local file \(model)"))
        #expect(result.stdout.contains("now on smollm2-q8 on \(q8.url)"))
        // /compare ran the local file at q4 and the served q8 on the same message.
        #expect(result.stdout.contains("── q4\n") && result.stdout.contains("── smollm2-q8 on \(q8.url)\n"))
        #expect(result.stdout.contains("smollm2-q8 on \(q8.url): "))
        // /replay ran every turn on the local file at q4 and said what it found.
        #expect(result.stdout.contains("recorded (smollm2-q4 on \(q4.url)): "))
        #expect(result.stdout.contains("replay at q4: ") && result.stdout.contains(" of 4 replies changed"))
        // The autosave holds the same conversation.
        let saved = try #require(try autosaves(dir).first)
        #expect(try messages(saved).count == all.count)

        // Temperature 0: the first streamed reply equals the same request made without streaming.
        let conversation = try Conversation.load(from: file.path)
        let request = MessageRequest(messages: [MessageRequest.Turn(role: .user, content: "What is the capital of France?")],
                                     settings: conversation.settings)
        let body = RemoteGenerator.remoteRequest(request, model: "smollm2-q4").body(stream: false).serialized
        _ = try httpRequest(q4.url + "/v1/chat/completions", body: other)
        let whole = try JSONSerialization.jsonObject(with: try httpRequest(q4.url + "/v1/chat/completions", body: Data(body.utf8))) as? [String: Any]
        let text = ((whole?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
        #expect(text != nil && text == replies[0]["content"] as? String)
    }

    /// A server that refuses connections at start is one line naming it and the chat starts
    /// on the next; `/model` to it is one line too, and the conversation goes on.
    @Test func connectionRefusedAtStartAndOnModel() throws {
        let (q4, _) = try servers()
        let dead = "http://127.0.0.1:\(try unusedLoopbackPort())"
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try chat([
            "/set max_tokens 8",
            "Hello!",
            "/model dead",
            "Still there?",
            "/save s.json",
        ], arguments: ["--server", "dead=\(dead)", "--server", "small=\(q4.url)"], in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let errors = result.stderr.split(separator: "\n").map(String.init)
        #expect(errors == ["error: server \(dead): cannot connect (connection refused)",
                           "error: server \(dead): cannot connect (connection refused)"], "\(result.stderr)")
        let replies = try messages(dir.appendingPathComponent("s.json")).filter { $0["role"] as? String == "assistant" }
        #expect(replies.count == 2 && replies.allSatisfy { $0["server"] as? String == q4.url })

        // Only a dead server and a local file: the chat starts on the file.
        let alone = try chat(["/set max_tokens 4", "Hi", "/save a.json"], arguments: ["--server", dead], in: dir)
        #expect(alone.status == 0, "\(alone.stderr)")
        #expect(alone.stderr.hasPrefix("error: server \(dead): cannot connect (connection refused)\nno server answered: starting on the local model"))
        let local = try messages(dir.appendingPathComponent("a.json")).filter { $0["role"] as? String == "assistant" }
        #expect(local.count == 1 && local[0]["precision"] as? String == "q4" && local[0]["server"] == nil)
    }

    /// HTTP errors with the server's own message, a malformed and a truncated event stream:
    /// one line each naming the server; a reply broken after some text is kept, marked
    /// interrupted; nothing else changes in the conversation.
    @Test func httpErrorsAndBrokenStreams() throws {
        let fake = try FakeOpenAIServer()
        defer { fake.stop() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try chat([
            "/model fake/ok",  // the fake answers by the model's name
            "Hello",
            "/model fake/error500",
            "One",
            "/model fake/error503",
            "Two",
            "/model fake/garbage",
            "Three",
            "/model fake/truncated",
            "Four",
            "/model fake/ok",
            "Five",
            "/save f.json",
        ], arguments: ["--server", "fake=\(fake.url)"], in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let errors = result.stderr.split(separator: "\n").map(String.init)
        let server = "server \(fake.url)"
        #expect(errors.count == 4, "\(result.stderr)")
        #expect(errors.contains("error: \(server): HTTP 500: the fake server broke"))
        #expect(errors.contains("error: \(server): HTTP 503: overloaded, try later"))
        #expect(errors.contains { $0.hasPrefix("error: \(server): malformed event stream: ") && $0.hasSuffix("(the partial reply is kept)") })
        #expect(errors.contains { $0.hasPrefix("error: \(server): the reply stopped before its end") && $0.hasSuffix("(the partial reply is kept)") })
        let all = try messages(dir.appendingPathComponent("f.json"))
        // The failed requests left nothing; the broken streams kept their text, interrupted.
        #expect(all.map { $0["content"] as? String } == ["Hello", "Hello world", "Three", "Hel", "Four", "Hello", "Five", "Hello world"])
        let interrupted = all.filter { $0["role"] as? String == "assistant" }.map { ($0["stats"] as? [String: Any])?["interrupted"] as? Bool }
        #expect(interrupted == [false, true, true, false])
        try validateConversation(dir.appendingPathComponent("f.json"))
        // The autosave kept the same turns.
        let saved = try #require(try autosaves(dir).first)
        #expect(try messages(saved).map { $0["content"] as? String } == all.map { $0["content"] as? String })
    }

    /// A llama-server killed mid-reply: the partial reply is kept, marked interrupted, with
    /// one line naming the server; the next turn (the server gone) is one line and changes
    /// nothing; `/model` to the other server goes on with the whole history.
    @Test func aServerKilledMidReplyAndGoneBetweenTurns() throws {
        let (q4, _) = try servers()
        let binary = try #require(llamaServerBinaryPath)
        let doomed = try LlamaServerProcess(model: try requireModel(), alias: "doomed", binary: binary)
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chat = try ScriptedChat(["chat", "--model", try requireModel(), "--threads", "1",
                                     "--server", "doomed=\(doomed.url)", "--server", "small=\(q4.url)",
                                     "--temperature", "0", "--max-tokens", "2000"],
                                    environment: Self.environment(dir), in: dir)
        chat.send("Write a very long story about a dragon who learns to cook.")
        try chat.waitForStdout(timeout: 60) { $0.count >= 40 }
        doomed.kill()
        chat.send("Are you still there?")
        chat.send("/set max_tokens 8")
        chat.send("/model small")
        chat.send("Hello again")
        chat.send("/save k.json")
        let (status, stdout, stderr) = try chat.finish(timeout: 120)
        #expect(status == 0, "\(stderr)")
        let errors = stderr.split(separator: "\n").map(String.init)
        #expect(errors.count == 2, "\(stderr)")
        #expect(errors.first?.hasPrefix("error: server \(doomed.url): ") == true && errors.first?.hasSuffix("(the partial reply is kept)") == true)
        #expect(errors.last == "error: server \(doomed.url): cannot connect (connection refused)")
        #expect(stdout.contains("now on smollm2-q4 on \(q4.url)"))
        let all = try messages(dir.appendingPathComponent("k.json"))
        #expect(all.map { $0["role"] as? String } == ["user", "assistant", "user", "assistant"])
        #expect(all[0]["content"] as? String == "Write a very long story about a dragon who learns to cook.")
        #expect(all[2]["content"] as? String == "Hello again")
        let partial = all[1]
        #expect(partial["server"] as? String == doomed.url && !((partial["content"] as? String) ?? "").isEmpty)
        #expect((partial["stats"] as? [String: Any])?["interrupted"] as? Bool == true)
        #expect(all[3]["server"] as? String == q4.url)
    }
}

/// The HTTP layer is libcurl opened with dlopen by the first request (CHTTP): a `nibble` that
/// talks to no server maps no HTTP, TLS or crypto library (linking URLSession cost every
/// process 6.3 MiB), and one that does finds libcurl at run time. The dynamic loader's own log
/// (LD_DEBUG=files) lists every library each process opened.
@Suite struct HTTPLibraryLoadingTests {
    static let networkLibraries = ["libcurl", "FoundationNetworking", "libssl", "libgnutls", "libcrypto"]

    func loadedLibraries(_ stderr: String) -> [String] {
        stderr.split(separator: "\n").compactMap { line in
            guard let range = line.range(of: "file=") else { return nil }
            return line[range.upperBound...].split(separator: " ").first.map(String.init)
        }
    }

    @Test func aLocalChatLoadsNoHTTPLibraryAndAServedOneLoadsLibcurlWithoutAProxy() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let env = ServedChatTests.environment(dir).merging(["LD_DEBUG": "files"]) { $1 }
        let local = try nibble(["chat", "--model", try requireModel(), "--max-tokens", "2", "--temperature", "0"],
                               input: "Hi.\n", environment: env, currentDirectory: dir)
        #expect(local.status == 0, "\(local.stdout)")
        let localLibraries = loadedLibraries(local.stderr)
        #expect(!localLibraries.isEmpty, "LD_DEBUG printed nothing: \(local.stderr.prefix(300))")
        #expect(localLibraries.filter { name in Self.networkLibraries.contains { name.contains($0) } } == [])

        let fake = try FakeOpenAIServer()
        defer { fake.stop() }
        // A proxy in the environment (nothing listens there) is not used for a server on this machine.
        let proxied = env.merging(["http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
                                   "NO_PROXY": "example.invalid"]) { $1 }
        let served = try nibble(["chat", "--model", try requireModel(), "--server", "fake=\(fake.url)"],
                                input: "/model fake/ok\nHi.\n", environment: proxied, currentDirectory: dir)
        #expect(served.status == 0, "\(served.stdout)")
        #expect(served.stdout.contains("Hello world"), "\(served.stdout)")
        #expect(loadedLibraries(served.stderr).contains { $0.contains("libcurl") })
    }
}

/// `--server` and `--api-key-env` values that cannot be used: exit 1 and one line, before
/// anything is contacted or loaded (no llama-server needed).
@Suite struct ServedArgumentTests {
    @Test(arguments: [
        (["--server", "ftp://x"], "Error: --server 'ftp://x': only http and https URLs are supported"),
        (["--server", "http://user:secret@127.0.0.1:9"],
         "Error: --server http://127.0.0.1:9: credentials in the URL are not accepted; put the API key in an environment variable and name it with --api-key-env"),
        (["--server", "http://127.0.0.1:9", "--api-key-env", "NIBBLE_TEST_UNSET_VARIABLE"],
         "Error: --api-key-env NIBBLE_TEST_UNSET_VARIABLE: the environment variable NIBBLE_TEST_UNSET_VARIABLE is not set or empty"),
        (["--api-key-env", "HOME"], "Error: --api-key-env is for --server: no server was given"),
        (["--server", "a=http://127.0.0.1:9", "--server", "a=http://127.0.0.1:10"],
         "Error: --server a is given twice: name them apart with --server NAME=URL"),
    ])
    func refusedWithOneLine(arguments: [String], message: String) throws {
        let run = try nibble(["chat"] + arguments, input: "")
        #expect(run.status == 1)
        #expect(run.stderr == message + "\n", "\(run.stderr)")
        #expect(!run.stderr.contains("secret"))
    }
}

// MARK: - Ctrl-C and the API key on a terminal

extension PTYTests {
    /// A slow server (one piece every 0.2 s): Ctrl-C stops the reply within half a second,
    /// closes the connection, keeps the partial reply; the API key of `--api-key-env` is in
    /// no file Nibble wrote (history, autosave, saved conversation) nor on the screen, even
    /// when a server echoes it back in an error.
    @Test func ctrlCStopsASlowServerAndTheAPIKeyIsWrittenNowhere() throws {
        let fake = try FakeOpenAIServer()
        defer { fake.stop() }
        let key = "sk-nibble-test-\(UUID().uuidString)"
        let state = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: state) }
        setenv("NIBBLE_TEST_API_KEY", key, 1)
        defer { unsetenv("NIBBLE_TEST_API_KEY") }
        let chat = try startChat(["--server", "fake=\(fake.url)", "--api-key-env", "NIBBLE_TEST_API_KEY"], state: state)
        let session = chat.session
        try submit("/model fake/slow", in: chat)
        session.send("Count for me\r")
        try session.expect("Count for me\r\n")
        try session.waitFor("the slow reply") { text, _ in text.contains("2 ") }
        let pressed = Date()
        session.sendControl("c")
        try session.expect("[interrupted: the partial reply is kept]", timeout: 5)
        let seconds = Date().timeIntervalSince(pressed)
        #expect(seconds < 0.5, "Ctrl-C took \(seconds) s to stop the reply")
        try session.expect(">>> ")
        try waitForEditMode(session)
        // The server saw its connection closed (it notices at its next write or two).
        var closed = ""
        for _ in 0..<30 where !closed.contains("\"closed\": 1") {
            closed = String(decoding: try httpRequest(fake.url + "/fake/closed"), as: UTF8.self)
            usleep(100_000)
        }
        #expect(closed.contains("\"closed\": 1"), "\(closed)")
        // A server that echoes the Authorization header in its error: the key is scrubbed.
        try submit("/model fake/echo-auth", in: chat)
        try submit("Who am I?", in: chat)
        try submit("/save \(state.path)/keyed.json", in: chat)
        session.send("/quit\r")
        #expect(try session.waitForExit() == 0)
        #expect(session.output.contains("HTTP 401: bad credentials: Bearer [API key from $NIBBLE_TEST_API_KEY]"), "\(session.output)")
        #expect(!session.output.contains(key))
        // Every file Nibble wrote.
        var written: [String] = []
        let walker = FileManager.default.enumerator(at: state, includingPropertiesForKeys: [.isRegularFileKey])
        while let url = walker?.nextObject() as? URL {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true else { continue }
            written.append(url.lastPathComponent)
            let bytes = try Data(contentsOf: url)
            #expect(bytes.range(of: Data(key.utf8)) == nil, "\(url.path) holds the API key")
        }
        #expect(written.contains("history") && written.contains("keyed.json") && written.contains { $0.hasPrefix("nibble-") }, "\(written)")
        let saved = try String(contentsOf: state.appendingPathComponent("keyed.json"), encoding: .utf8)
        #expect(saved.contains("\"interrupted\" : true") || saved.contains("\"interrupted\": true") || saved.contains("\"interrupted\":true"))
    }
}

extension PTYTests {
    /// Tab completes served models after /model, /compare and /replay --model.
    @Test func tabCompletesServedModels() throws {
        let fake = try FakeOpenAIServer()
        defer { fake.stop() }
        let session = try startChat(["--server", "zq9=\(fake.url)"]).session
        session.send("/model zq9/f\t")
        try session.waitFor("/model zq9/fake") { _, screen in screen.cursorLine.hasPrefix(">>> /model zq9/fake") }
        session.sendControl("c")
        try session.expect(">>> ")
        try waitForEditMode(session)
        session.send("/compare q8 zq9/\t")
        try session.waitFor("/compare q8 zq9/fake") { _, screen in screen.cursorLine.hasPrefix(">>> /compare q8 zq9/fake") }
        session.sendControl("c")
        try session.expect(">>> ")
        try waitForEditMode(session)
        session.send("/replay --model zq9/\t")
        try session.waitFor("/replay --model zq9/fake") { _, screen in screen.cursorLine.hasPrefix(">>> /replay --model zq9/fake") }
        session.sendControl("c")
        try session.expect(">>> ")
        session.sendControl("d")
        #expect(try session.waitForExit() == 0)
    }
}

// MARK: - Helpers

/// Validates `file` against Tools/conversation.schema.json with Python's jsonschema.
func validateConversation(_ file: URL) throws {
    let complaint = try conversationSchemaComplaint(file)
    #expect(complaint == nil, "\(file.lastPathComponent) does not validate: \(complaint?.suffix(600) ?? "")")
}

/// One HTTP request to a test server on 127.0.0.1 (the harness's blocking client, not
/// URLSession: these synchronous tests block their threads); a status other than 2xx throws.
func httpRequest(_ url: String, body: Data? = nil) throws -> Data {
    guard let parsed = URLComponents(string: url), let port = parsed.port else { throw ServerHarnessError("not a loopback URL: \(url)") }
    let (status, data) = try loopbackHTTP(port: port, path: parsed.percentEncodedPath, body: body, timeout: 60)
    guard (200..<300).contains(status) else { throw ServerHarnessError("\(url): HTTP \(status): \(String(decoding: data, as: UTF8.self))") }
    return data
}

/// `nibble` in script mode with stdin kept open: lines are sent while it runs and its
/// output is read as it comes, so a test can act (kill a server) in the middle of a reply.
final class ScriptedChat: @unchecked Sendable {
    let process = Process()
    private let input = Pipe(), output = Pipe(), errors = Pipe()
    private let lock = NSLock()
    private var stdout = Data(), stderr = Data()
    private let group = DispatchGroup()

    init(_ arguments: [String], environment: [String: String], in dir: URL) throws {
        process.executableURL = URL(fileURLWithPath: nibbleBinary)
        process.arguments = arguments
        process.currentDirectoryURL = dir
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        for (pipe, isOut) in [(output, true), (errors, false)] {
            let handle = pipe.fileHandleForReading
            DispatchQueue.global().async(group: group) { [self] in
                while true {
                    let data = handle.availableData
                    if data.isEmpty { break }
                    lock.withLock { if isOut { stdout.append(data) } else { stderr.append(data) } }
                }
            }
        }
    }

    func send(_ line: String) { input.fileHandleForWriting.write(Data((line + "\n").utf8)) }

    var stdoutText: String { lock.withLock { String(decoding: stdout, as: UTF8.self) } }

    func waitForStdout(timeout: Double, _ condition: (String) -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition(stdoutText) {
            guard Date() < deadline, process.isRunning else {
                throw ServerHarnessError("timed out waiting for output; stdout: \(stdoutText.suffix(500)) stderr: \(lock.withLock { String(decoding: stderr, as: UTF8.self) })")
            }
            usleep(10_000)
        }
    }

    /// Closes stdin (end of the script) and waits for the exit.
    func finish(timeout: Double) throws -> (Int32, String, String) {
        try input.fileHandleForWriting.close()
        if group.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            Issue.record("nibble did not finish within \(timeout) s")
        }
        process.waitUntilExit()
        return lock.withLock { (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self)) }
    }
}
