import Foundation
import Testing
import TestFixtures
@testable import Chat
@testable import Inference

/// A session on a served model (`MessageGenerator`), here a fake: the conversation goes
/// as messages, the reply comes back as text, and the file records the server.
@Suite("Chat session on a served model")
struct ServedSessionTests {
    func servedSession(_ served: FakeMessageGenerator = FakeMessageGenerator()) throws -> ChatSession {
        var conversation = Conversation()
        conversation.settings.temperature = 0.7
        conversation.settings.topK = 20
        conversation.settings.seed = 42
        conversation.settings.maxTokens = 100
        let s = try ChatSession(generator: served, settings: EngineSettings(path: "/models/fake.gguf"), conversation: conversation) { settings in
            FakeTokenGenerator(path: settings.path)
        }
        s.now = { Date(timeIntervalSince1970: 1_795_000_000) }
        return s
    }

    @Test func theConversationGoesAsMessagesAndTheReplyStreamsAsText() throws {
        let served = FakeMessageGenerator()
        served.replies = [["Paris", " is", " the capital."], ["Rome", "."]]
        let s = try servedSession(served)
        s.conversation.systemPrompt = "Be brief."
        #expect(s.template == nil && s.templateOrigin.contains("127.0.0.1:8080"))
        var events: [String] = []
        let first = try s.send("Capital of France?", events: { if case let .text(t) = $0 { events.append(t) } })
        #expect(events == ["Paris", " is", " the capital."])
        #expect(first.content == "Paris is the capital.")
        served.report = MessageReply(stopReason: .eos, promptTokens: 31, generatedTokens: 3, decodeTokensPerSecond: 12.5)
        try s.send("And of Italy?", events: { _ in })

        let request = try #require(served.requests.last)
        #expect(request.systemPrompt == "Be brief.")
        #expect(request.messages.map(\.role) == [.system, .user, .assistant, .user])
        #expect(request.messages.map(\.content) == ["Be brief.", "Capital of France?", "Paris is the capital.", "And of Italy?"])
        #expect(request.settings.temperature == 0.7 && request.settings.topK == 20 && request.settings.seed == 42 && request.maxTokens == 100)

        // Each reply records the served model and its server, no local precision.
        let replies = s.conversation.messages.filter { $0.role == .assistant }
        #expect(replies.map(\.model) == ["served-q8", "served-q8"])
        #expect(replies.map(\.server) == ["http://127.0.0.1:8080", "http://127.0.0.1:8080"])
        #expect(replies.allSatisfy { $0.precision == nil && $0.seed == 42 })
        #expect(s.conversation.model == Conversation.ModelReference(server: "http://127.0.0.1:8080", name: "served-q8"))
        #expect(s.conversation.precision == nil)
        // Usage when the server sent it; the streamed pieces when it did not.
        #expect(replies[0].stats?.generatedTokens == 3 && replies[0].stats?.promptTokens == 0)
        #expect(replies[1].stats == TurnStats(promptTokens: 31, generatedTokens: 3, ttftSeconds: replies[1].stats!.ttftSeconds,
                                              prefillTokensPerSecond: 0, decodeTokensPerSecond: 12.5, stopReason: "eos", interrupted: false))
        #expect(s.lastStats == replies[1].stats)
    }

    /// The stream breaks after two pieces: the partial reply is kept, marked interrupted as
    /// a reply stopped with Ctrl-C is, and the error says so; the turn before is intact.
    @Test func aStreamThatBreaksKeepsThePartialReplyMarkedInterrupted() throws {
        let served = FakeMessageGenerator()
        let s = try servedSession(served)
        try s.send("Hello", events: { _ in })
        let earlier = s.conversation.messages
        served.replies = [["Once", " upon", " a", " time"]]
        served.failure = (afterPieces: 2, error: FakeFailure(message: "http://127.0.0.1:8080: the connection was closed mid-reply"))
        var shown = ""
        let failure = try #require(throws: InterruptedReply.self) {
            try s.send("A story?", events: { if case let .text(t) = $0 { shown += t } })
        }
        #expect(shown == "Once upon")
        #expect("\(failure)" == "http://127.0.0.1:8080: the connection was closed mid-reply (the partial reply is kept)")
        #expect(s.conversation.messages.count == earlier.count + 2)
        #expect(Array(s.conversation.messages.prefix(earlier.count)) == earlier)
        let partial = try #require(s.conversation.messages.last)
        #expect(partial == failure.reply)
        #expect(partial.content == "Once upon" && partial.server == "http://127.0.0.1:8080")
        #expect(partial.stats?.interrupted == true && partial.stats?.stopReason == "cancelled" && partial.stats?.generatedTokens == 2)
        #expect(!partial.isEmptyInterruption)

        // Broken before any text: nothing is kept, the error is the server's.
        let before = s.conversation
        served.failure = (afterPieces: 0, error: FakeFailure(message: "connection refused"))
        #expect(throws: FakeFailure(message: "connection refused")) { try s.send("Still there?", events: { _ in }) }
        #expect(s.conversation == before)
        // Ctrl-C before the first piece keeps nothing either.
        let stopped = try s.send("Still there?", shouldStop: { true }, events: { _ in })
        #expect(stopped.isEmptyInterruption && s.conversation == before)
    }

    @Test func localOnlyCommandsSayTheModelIsServed() throws {
        let s = try servedSession()
        for action in [{ _ = try s.setPrecision(.q8) }, { _ = try s.pendingPrompt() }, { try s.setAdapter(nil) },
                       { try s.setContext(1024) }, { try s.reload() }] {
            let error = try #require(throws: ChatError.self) { try action() }
            #expect(error.message.hasSuffix("needs a local model: served-q8 is served by http://127.0.0.1:8080"), "\(error.message)")
        }
        #expect(s.templateDefaultSystemPrompt() == nil)
    }

    /// `/model PATH` goes from a served model to a file, and `use` back; the conversation stays.
    @Test func switchingBetweenServedAndLocalModels() throws {
        let served = FakeMessageGenerator()
        let s = try servedSession(served)
        try s.send("Hello", events: { _ in })
        try s.loadModel(path: "/models/local.gguf")
        #expect(s.descriptor.location == .local(path: "/models/local.gguf", precision: "q4"))
        #expect(s.template != nil)
        let local = try s.send("And you?", events: { _ in })
        #expect(local.precision == "q4" && local.server == nil && local.model == "Fake")
        #expect(s.lastPrompt?.text.contains("<|im_start|>assistant\nOK<|im_end|>") == true)
        try s.use(served)
        try s.send("Back again", events: { _ in })
        #expect(served.requests.last?.messages.count == 5)
        #expect(s.conversation.messages.compactMap(\.server).count == 2)
    }
}

@Suite("Conversation model references")
struct ModelReferenceTests {
    @Test func bothFormsRoundTrip() throws {
        for reference in [Conversation.ModelReference(path: "/models/m.gguf", name: "M"),
                          Conversation.ModelReference(server: "http://127.0.0.1:8080/v1", name: "llama-70b")] {
            var c = Conversation(created: Date(timeIntervalSince1970: 1_795_000_000))
            c.model = reference
            let data = try c.encoded()
            #expect(try Conversation.decode(data, path: "c.json") == c)
            let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let model = try #require(json["model"] as? [String: String])
            #expect(model == (reference.path.map { ["path": $0, "name": "M"] } ?? ["server": "http://127.0.0.1:8080/v1", "name": "llama-70b"]))
        }
    }

    @Test func aServerIsRecordedWithoutCredentials() {
        #expect(Conversation.ModelReference(server: "https://user:secret@api.example.com:8443/v1?api_key=sk-123#x", name: "m").server
                == "https://api.example.com:8443/v1")
        #expect(Conversation.ModelReference(server: "http://127.0.0.1:8080", name: "m").server == "http://127.0.0.1:8080")
        #expect(Conversation.ModelReference.withoutCredentials("not a url @host?key=1") == "host")
    }

    @Test(arguments: [
        (#"{"name": "m"}"#, "model: missing \"path\""),
        (#"{"path": "/m.gguf", "server": "http://h", "name": "m"}"#, "model.server: a model has a \"path\" or a \"server\", not both"),
    ])
    func aModelIsAFileOrAServer(model: String, expected: String) throws {
        let text = #"{"format": "nibble.conversation", "version": 1, "created": "2026-11-25T16:00:00Z", "messages": [], "model": "# + model + "}"
        let error = try #require(throws: ChatError.self) { try Conversation.decode(Data(text.utf8), path: "c.json") }
        #expect(error.message.contains(expected), "\(error.message)")
    }

    /// Files with either form, and served replies, validate against
    /// Tools/conversation.schema.json (Python's jsonschema, as the end-to-end tests use it);
    /// a model with both a path and a server does not.
    @Test func theSchemaTakesBothForms() throws {
        let dir = Scratch.root.appendingPathComponent("nibble-schema-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        let served = FakeMessageGenerator()
        let s = try ServedSessionTests().servedSession(served)
        s.conversation.systemPrompt = "Be brief."
        try s.send("Hello", events: { _ in })
        served.failure = (afterPieces: 1, error: FakeFailure(message: "gone"))
        served.replies = [["Par", "tial"]]
        _ = try? s.send("More", events: { _ in })
        #expect(s.conversation.messages.last?.stats?.interrupted == true)
        let servedFile = dir.appendingPathComponent("served.json")
        try s.conversation.save(to: servedFile.path)

        let (local, _) = try fakeSession()
        try local.send("Hello", events: { _ in })
        try local.use(served)
        try local.send("Hello again", events: { _ in })
        let mixedFile = dir.appendingPathComponent("mixed.json")
        try local.conversation.save(to: mixedFile.path)

        #expect(try validate(servedFile) == nil)
        #expect(try validate(mixedFile) == nil)
        let mixed = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: mixedFile)) as? [String: Any])
        let replies = try #require(mixed["messages"] as? [[String: Any]]).filter { $0["role"] as? String == "assistant" }
        #expect(replies.map { $0["precision"] as? String } == ["q4", nil])
        #expect(replies.map { $0["server"] as? String } == [nil, "http://127.0.0.1:8080"])

        // Both a path and a server: refused.
        var text = try String(contentsOf: servedFile, encoding: .utf8)
        text = text.replacingOccurrences(of: #""server" : "http://127.0.0.1:8080""#, with: #""path" : "/m.gguf", "server" : "http://127.0.0.1:8080""#)
        let both = dir.appendingPathComponent("both.json")
        try Data(text.utf8).write(to: both)
        #expect(try validate(both)?.contains("is not valid under any of the given schemas") == true)
        // A served reply that records neither a precision nor a server: refused.
        var bare = try String(contentsOf: mixedFile, encoding: .utf8)
        bare = bare.replacingOccurrences(of: #""server" : "http://127.0.0.1:8080","#, with: "")
        let bareFile = dir.appendingPathComponent("bare.json")
        try Data(bare.utf8).write(to: bareFile)
        #expect(try validate(bareFile) != nil)
    }

    /// nil when `file` validates against the schema, else jsonschema's complaint.
    func validate(_ file: URL) throws -> String? { try conversationSchemaComplaint(file) }
}
