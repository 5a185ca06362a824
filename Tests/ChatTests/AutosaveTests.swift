import Foundation
import Testing
@testable import Chat
import TestFixtures

@Suite("Autosave and atomic files")
struct AutosaveTests {
    func folder() throws -> String {
        Scratch.root.appendingPathComponent("nibble-autosave-\(UUID().uuidString)/sessions").path
    }

    func conversation(_ users: [String], created: Date = Date(timeIntervalSince1970: 1_795_000_000.5)) -> Conversation {
        var c = Conversation(created: created)
        for u in users {
            c.messages.append(Message(role: .user, content: u))
            c.messages.append(Message(role: .assistant, content: "ok"))
        }
        return c
    }

    /// Two sessions started in the same second each get a file of their own.
    @Test func sessionsInTheSameSecondGetTheirOwnFiles() throws {
        let dir = try folder()
        let clock = { Date(timeIntervalSince1970: 1_795_000_000) }
        let a = Autosave(folder: dir, clock: clock), b = Autosave(folder: dir, clock: clock)
        let pa = try a.save(conversation(["A"])), pb = try b.save(conversation(["B"]))
        #expect(pa != pb)
        #expect(pa.hasPrefix(dir + "/nibble-20261118-110640-") && pa.hasSuffix(".json"))
        #expect(try Conversation.load(from: pa).messages.first?.content == "A")
        #expect(try Conversation.load(from: pb).messages.first?.content == "B")
        #expect(try FileManager.default.attributesOfItem(atPath: dir)[.posixPermissions] as? Int == 0o700)
        #expect(try FileManager.default.attributesOfItem(atPath: pa)[.posixPermissions] as? Int == 0o600)
    }

    /// A save never replaces the file with a shorter or another conversation.
    @Test func shorterOrOtherConversationsGoToANewFile() throws {
        let autosave = Autosave(folder: try folder())
        let first = try autosave.save(conversation(["1", "2"]))
        #expect(try autosave.save(conversation(["1", "2", "3"])) == first)  // grows: same file
        let afterUndo = try autosave.save(conversation(["1"]))
        #expect(afterUndo != first)
        #expect(try Conversation.load(from: first).messages.count == 6)
        let other = try autosave.save(conversation(["x", "y"], created: Date(timeIntervalSince1970: 1_795_000_100)))
        #expect(other != afterUndo)
        #expect(try Conversation.load(from: afterUndo).messages.count == 2)
        #expect(!autosave.isBehind(conversation(["x", "y"], created: Date(timeIntervalSince1970: 1_795_000_100))))
        #expect(autosave.isBehind(conversation(["x", "y", "z"], created: Date(timeIntervalSince1970: 1_795_000_100))))
    }

    /// An existing file is replaced only by a save of the same conversation, unless forced.
    @Test func saveRefusesToReplaceOtherFiles() throws {
        let dir = try folder()
        try UserPaths.makePrivateFolder(dir)
        let text = dir + "/notes.txt"
        try Data("notes".utf8).write(to: URL(fileURLWithPath: text))
        let c = conversation(["1"])
        let error = try #require(throws: ChatError.self) { try c.save(to: text) }
        #expect(error.message == "\(text) already exists and is not an earlier save of this conversation")
        #expect(try String(contentsOfFile: text, encoding: .utf8) == "notes")
        try c.save(to: text, force: true)
        try conversation(["1", "2"]).save(to: text)  // the same conversation, grown
        let other = conversation(["1"], created: Date(timeIntervalSince1970: 1))
        #expect(throws: ChatError.self) { try other.save(to: text) }
        #expect(throws: ChatError.self) { try c.export(to: text) }
        try c.export(to: dir + "/t.md")
        try conversation(["1", "2"]).export(to: dir + "/t.md")
        #expect(throws: ChatError.self) { try other.export(to: dir + "/t.md") }
        #expect(throws: ChatError.self) { try c.save(to: dir, force: true) }  // a folder
    }

    @Test func temporaryNamesCarryTheWriterAndARandomPart() {
        let a = AtomicFile.temporaryName(for: "c.json"), b = AtomicFile.temporaryName(for: "c.json")
        #expect(a != b)
        #expect(AtomicFile.writerPID(ofTemporary: a) == getpid())
        #expect(AtomicFile.writerPID(ofTemporary: ".c.json.tmp") == nil)
        #expect(AtomicFile.writerPID(ofTemporary: ".notes.txt.12.short.tmp") == nil)
    }

    @Test func tildeUsesHome() {
        #expect(UserPaths.expandingTilde("~/x.json") == UserPaths.home + "/x.json")
        #expect(UserPaths.expandingTilde("~") == UserPaths.home)
        #expect(UserPaths.expandingTilde("a/~/b") == "a/~/b")
    }
}
