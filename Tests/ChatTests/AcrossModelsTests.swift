import Foundation
import Testing
@testable import Chat
@testable import Inference

/// `/compare` and `/replay` across kinds of model: local precisions and served models, in
/// either direction, on fake generators. The model in use and the conversation stay as they were.
@Suite("Compare and replay across local and served models")
struct AcrossModelsTests {
    @Test func compareALocalPrecisionWithAServedModelWhileServed() throws {
        let served = FakeMessageGenerator()
        served.replies = [["Hello", " there"], ["Served", " again"]]
        let other = FakeMessageGenerator(server: "http://127.0.0.1:9090", model: "big")
        other.replies = [["Big", " reply"]]
        let s = try ChatSession(generator: served, settings: EngineSettings(path: "/models/local.gguf")) { settings in
            FakeTokenGenerator(path: settings.path)
        }
        try s.send("Hi", events: { _ in })
        let before = s.conversation
        var starts: [String] = []
        let results = try s.compare([.precision(.q8), .model(other)], text: nil, onStart: { starts.append($0) }, events: { _ in })
        #expect(starts == ["q8", "big on http://127.0.0.1:9090"])
        #expect(results.map(\.precision) == ["q8", "big"] && results.map(\.server) == [nil, "http://127.0.0.1:9090"])
        #expect(results[1].reply == "Big reply")
        // Both sides answered the same history with the same seed.
        #expect(other.requests.count == 1 && other.requests[0].messages.map(\.content) == ["Hi"])
        // The served model is in use again, the conversation untouched.
        #expect(s.generator === served && s.conversation == before && s.template == nil)
        try s.send("Again", events: { _ in })
        #expect(served.requests.count == 2)
    }

    @Test func replayALocalConversationOnAServedModelAndBack() throws {
        let (s, local) = try fakeSession()
        try s.send("One", events: { _ in })
        try s.send("Two", events: { _ in })
        let recorded = s.conversation
        let served = FakeMessageGenerator()
        served.replies = [["OK"], ["Different"]]
        let turns = try s.replay(recorded, on: served, events: { _ in }, onTurn: { _ in })
        #expect(turns.count == 2 && turns.allSatisfy(\.divergenceInCharacters))
        #expect(!turns[0].changed && turns[0].recorded == "OK")
        #expect(turns[1].changed && turns[1].reply == "Different")
        #expect(served.requests.map { $0.messages.last?.content } == ["One", "Two"])
        #expect(s.generator === local && s.conversation == recorded)

        // From a served model, --precision replays on the local file at that precision.
        let t = try ChatSession(generator: served, settings: EngineSettings(path: "/models/local.gguf")) { settings in
            FakeTokenGenerator(path: settings.path)
        }
        let atQ8 = try t.replay(recorded, precision: .q8, events: { _ in }, onTurn: { _ in })
        #expect(atQ8.count == 2 && atQ8.allSatisfy { !$0.divergenceInCharacters })
        #expect(t.generator === served && served.requests.count == 2)
    }
}
