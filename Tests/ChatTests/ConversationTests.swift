import Foundation
import Testing
@testable import Chat
import TestFixtures

@Suite("Conversation files")
struct ConversationTests {
    func folder() throws -> String {
        let dir = Scratch.root.appendingPathComponent("nibble-chat-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func sample() -> Conversation {
        var c = Conversation(created: Date(timeIntervalSince1970: 1_795_000_000))
        c.systemPrompt = "Be brief."
        c.model = .init(path: "/models/m.gguf", name: "M")
        c.precision = "q8"
        c.settings.seed = 7
        c.messages.append(Message(role: .user, content: "Héllo \"quoted\" <|im_end|>\n", created: Date(timeIntervalSince1970: 1_795_000_001.25)))
        c.messages.append(Message(role: .assistant, content: "Hi 👋", created: Date(timeIntervalSince1970: 1_795_000_002), model: "M", precision: "q8",
                                  stats: TurnStats(promptTokens: 12, generatedTokens: 3, ttftSeconds: 0.1, prefillTokensPerSecond: 120,
                                                   decodeTokensPerSecond: 80, stopReason: "eos", interrupted: false)))
        return c
    }

    @Test func roundTripsThroughItsFile() throws {
        let path = try folder() + "/c.json"
        let c = sample()
        try c.save(to: path)
        #expect(try Conversation.load(from: path).encoded() == c.encoded())
        // Contract fields: the system prompt is the first message; adapter and a missing
        // seed are written as null; user turns carry no model/precision/stats.
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        #expect(json["format"] as? String == "nibble.conversation")
        #expect(json["version"] as? Int == 1)
        #expect(json["adapter"] is NSNull)
        #expect(json["created"] as? String == "2026-11-18T11:06:40Z")
        let messages = try #require(json["messages"] as? [[String: Any]])
        #expect(messages.map { $0["role"] as? String } == ["system", "user", "assistant"])
        #expect(messages[1]["model"] == nil && messages[1]["stats"] == nil)
        #expect(messages[1]["created"] as? String == "2026-11-18T11:06:41.250Z")
        #expect((messages[2]["stats"] as? [String: Any])?["stop_reason"] as? String == "eos")
        var unseeded = c
        unseeded.settings.seed = nil
        let text = String(decoding: try unseeded.encoded(), as: UTF8.self)
        #expect(text.contains("\"seed\" : null"))
    }

    @Test func savingLeavesNoTemporaryFileAndReplacesAtomically() throws {
        let dir = try folder()
        let path = dir + "/c.json"
        try sample().save(to: path)
        var second = sample()
        second.messages.removeLast()
        try second.save(to: path)
        #expect(try Conversation.load(from: path).encoded() == second.encoded())
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["c.json"])
        #expect(throws: ChatError.self) { try sample().save(to: dir + "/missing/c.json") }
    }

    @Test(arguments: [
        ("", "invalid JSON"),
        ("{", "invalid JSON"),
        ("[]", "not a Nibble conversation"),
        (#"{"format": "other", "version": 1}"#, "\"format\" is 'other'"),
        (#"{"format": "nibble.conversation", "version": 9}"#, "version 9 is not supported"),
        (#"{"format": "nibble.conversation", "version": 1, "created": "yesterday", "messages": []}"#, "not an ISO 8601 date"),
        (#"{"format": "nibble.conversation", "version": 1, "created": "2026-11-25T16:00:00Z"}"#, "missing \"messages\""),
        (#"{"format": "nibble.conversation", "version": 1, "created": "2026-11-25T16:00:00Z", "messages": [{"role": "robot", "content": "x", "created": "2026-11-25T16:00:00Z"}]}"#, "messages[0].role"),
        (#"{"format": "nibble.conversation", "version": 1, "created": "2026-11-25T16:00:00Z", "messages": [{"role": "user", "content": "x", "created": "2026-11-25T16:00:00Z"}, {"role": "system", "content": "x", "created": "2026-11-25T16:00:00Z"}]}"#, "system message may only come first"),
    ])
    func brokenFilesSayWhatIsWrong(text: String, expected: String) throws {
        let path = try folder() + "/bad.json"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let error = try #require(throws: ChatError.self) { try Conversation.load(from: path) }
        #expect(error.message.hasPrefix(path + ": "), "\(error.message)")
        #expect(error.message.contains(expected), "\(error.message)")
        #expect(!error.message.contains("\n"))
    }

    @Test func missingFileIsNamed() throws {
        let error = try #require(throws: ChatError.self) { try Conversation.load(from: "/nonexistent/x.json") }
        #expect(error.message == "/nonexistent/x.json: no such file")
    }

    @Test func settingsAcceptOnlySensibleValues() throws {
        var s = ChatSettings()
        try s.set("temperature", to: "0")
        try s.set("top_k", to: "20")
        try s.set("seed", to: "42")
        try s.set("max_tokens", to: "64")
        #expect(s.temperature == 0 && s.topK == 20 && s.seed == 42 && s.maxTokens == 64)
        try s.set("seed", to: "random")
        #expect(s.seed == nil)
        #expect(throws: ChatError.self) { try s.set("top_p", to: "1.5") }
        #expect(throws: ChatError.self) { try s.set("top_k", to: "many") }
        let error = try #require(throws: ChatError.self) { try s.set("temprature", to: "1") }
        #expect(error.message.contains("did you mean 'temperature'"))
    }

    @Test func markdownTranscriptHasEveryTurn() {
        let md = sample().markdown()
        #expect(md.hasPrefix("<!-- nibble.conversation created 2026-11-18T"))
        #expect(md.contains(" -->\n# Conversation with M\n"))
        #expect(md.contains("## System\n\nBe brief."))
        #expect(md.contains("## User\n\nHéllo"))
        #expect(md.contains("## Assistant (M · q8 · 3 tokens, 80.0 tok/s)\n\nHi 👋"))
    }

    @Test func closestSuggestsPrefixesAndTypos() {
        #expect(closest(to: "/prec", in: ["/precision", "/prompt"]) == "/precision")
        #expect(closest(to: "/sav", in: ["/save", "/set"]) == "/save")
        #expect(closest(to: "/qiut", in: ["/quit", "/help"]) == "/quit")
        #expect(closest(to: "/zzzzzz", in: ["/quit", "/help"]) == nil)
    }
}

@Suite("ISO 8601 timestamps")
struct TimestampTests {
    /// The hand-written reader and writer agree with ISO8601DateFormatter.
    @Test func agreeWithTheFormatter() {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let seconds = Double(Int64.random(in: -2_000_000_000...4_000_000_000, using: &rng))
            let date = Date(timeIntervalSince1970: seconds)
            #expect(ISO8601.string(from: date) == f.string(from: date))
            #expect(ISO8601.date(from: f.string(from: date)) == date)
        }
        #expect(ISO8601.string(from: Date(timeIntervalSince1970: 1_795_000_001.25)) == "2026-11-18T11:06:41.250Z")
        #expect(ISO8601.date(from: "2026-11-18T11:06:41.25Z") == Date(timeIntervalSince1970: 1_795_000_001.25))
        #expect(ISO8601.date(from: "2026-11-18T12:06:41+01:00") == Date(timeIntervalSince1970: 1_795_000_001))
        #expect(ISO8601.date(from: "2026-11-18T10:36:41.5-00:30") == Date(timeIntervalSince1970: 1_795_000_001.5))
        // Found by fuzzing: ICU's parser (ISO8601DateFormatter) died with SIGFPE on this.
        #expect(ISO8601.date(from: "2026-11-25T16:-0:00.22222222222222222222222222222222222222222125Z1-25T16:00: 1Z") == nil)
        for bad in ["0000-01-01T00:00:00Z", "-026-11-25T16:00:00.125Z", "2026-13-18T11:06:41Z", "2026-11-18 11:06:41Z", "2026-11-18T11:06:41", "yesterday", "2026-11-18T11:06:41.Z"] {
            #expect(ISO8601.date(from: bad) == nil, "\(bad)")
        }
        let now = Date()
        let text = ISO8601.string(from: now)
        #expect(ISO8601.string(from: ISO8601.date(from: text)!) == text)
    }
}
