import Foundation
import Inference
import Testing
import TestFixtures
@testable import Chat

/// A LoRA adapter put on and taken off mid-chat on SmolLM2: each reply records the
/// adapter it was written with, the file keeps it, and `/replay` reproduces each reply
/// with its own adapter (or, when told, without).
@Suite("LoRA adapter in a chat on SmolLM2", .serialized)
struct AdapterChatTests {
    /// q_proj and v_proj of all 30 layers (576 wide; 3 KV heads of 64).
    static func writeAdapter(to folder: URL, seed: UInt64) throws {
        var shapes: [(name: String, inputs: Int, outputs: Int)] = []
        for layer in 0..<30 {
            shapes.append(("model.layers.\(layer).self_attn.q_proj", 576, 576))
            shapes.append(("model.layers.\(layer).self_attn.v_proj", 576, 192))
        }
        let modules = LoRAFixtures.randomModules(shapes, rank: 4, amplitude: 0.1, seed: seed)
        try LoRAFixtures.writePEFT(modules, rank: 4, alpha: 8, to: folder)
    }

    @Test func eachReplyRecordsItsAdapterAndReplayUsesIt() throws {
        let work = Scratch.root.appendingPathComponent("nibble-adapter-chat-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        let adapter = work.appendingPathComponent("adapter")
        try Self.writeAdapter(to: adapter, seed: 1)

        let s = try session(precision: .q8, maxTokens: 12)
        let plain = try s.send("Name a colour.", events: { _ in })
        #expect(plain.adapter == nil)
        try s.setAdapter(adapter.path)
        let adapted = try s.send("Name another colour.", events: { _ in })
        let reference = try #require(adapted.adapter)
        #expect(reference.path == adapter.path)
        #expect(reference.sha256.count == 64 && reference.sha256 == s.adapterReference?.sha256)
        #expect(s.conversation.adapter == reference)

        // The file keeps both.
        let decoded = try JSONDecoder().decode(Conversation.self, from: try JSONEncoder().encode(s.conversation))
        #expect(decoded == s.conversation)
        #expect(decoded.messages.filter { $0.role == .assistant }.map(\.adapter) == [nil, reference])

        // Off: replay as recorded puts it on for the second reply only, and takes it off after.
        try s.setAdapter(nil)
        let recorded = s.conversation
        let same = try s.replay(recorded, events: { _ in }, onTurn: { _ in })
        #expect(same.count == 2 && same.allSatisfy { !$0.changed }, "\(same.map(\.reply))")
        #expect(s.model.adapter == nil)
        // Without the adapter the second reply is another one (the adapter matters).
        let without = try s.replay(recorded, adapter: .fixed(nil), events: { _ in }, onTurn: { _ in })
        #expect(!without[0].changed)
        #expect(without[1].changed, "the adapter did not change the reply: \(without[1].reply)")

        // A changed adapter file is replayed with a notice.
        try Self.writeAdapter(to: adapter, seed: 2)
        var notices: [String] = []
        _ = try s.replay(recorded, events: { if case let .notice(n) = $0 { notices.append(n) } }, onTurn: { _ in })
        #expect(notices.contains { $0.contains("sha256") }, "\(notices)")
        #expect(s.conversation == recorded)
    }

    @Test func aFailedAdapterLeavesTheChatAsItWas() throws {
        let work = Scratch.root.appendingPathComponent("nibble-adapter-chat-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        let good = work.appendingPathComponent("good")
        try Self.writeAdapter(to: good, seed: 3)
        let s = try session(maxTokens: 6)
        try s.setAdapter(good.path)
        try s.send("Hello!", events: { _ in })
        let before = s.conversation
        let wrong = work.appendingPathComponent("wrong")
        let modules = LoRAFixtures.randomModules([("model.layers.0.self_attn.k_proj", 576, 576)], rank: 2, amplitude: 0.1, seed: 4)
        try LoRAFixtures.writePEFT(modules, rank: 2, alpha: 2, to: wrong)
        #expect(throws: EngineError.self) { try s.setAdapter(wrong.path) }
        #expect(throws: (any Error).self) { try s.setAdapter(work.appendingPathComponent("missing").path) }
        #expect(s.model.adapter?.path == good.path)
        #expect(s.conversation == before)
    }
}
