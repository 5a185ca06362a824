import Foundation

/// The session's own autosave file. Every session writes to a file of its own, claimed
/// exclusively on the first save (`nibble-YYYYmmdd-HHMMSS-XXXXXX.json`, mode 0600, in a
/// 0700 folder), so two sessions never share one, and a resumed conversation never
/// overwrites the file it came from. A save that would replace the file with a shorter
/// or another conversation (after `/undo`, `/clear`, `/load`) starts a new file instead:
/// nothing autosaved is ever lost.
public final class Autosave {
    public let folder: String
    /// The file this session writes, once the first save claimed it.
    public private(set) var path: String?
    /// What the file holds: which conversation, and how many messages.
    private var saved: (created: Date, count: Int)?
    private let clock: () -> Date

    public init(folder: String, clock: @escaping () -> Date = Date.init) {
        self.folder = folder
        self.clock = clock
    }

    /// Writes `conversation`, to a new file when the current one holds another or a longer
    /// conversation. Returns the path written.
    @discardableResult
    public func save(_ conversation: Conversation) throws -> String {
        if let saved, saved.created != conversation.created || saved.count > conversation.messages.count {
            startNewFile()
        }
        let path = try self.path ?? claimFile()
        try AtomicFile.write(conversation.encoded(), to: path)
        self.path = path
        saved = (conversation.created, conversation.messages.count)
        return path
    }

    /// Whether `conversation` has messages the file does not hold yet.
    public func isBehind(_ conversation: Conversation) -> Bool {
        guard let saved else { return conversation.messages.contains { $0.role != .system } }
        return saved.created != conversation.created || saved.count != conversation.messages.count
    }

    /// The next save goes to a new file; the current one (if any) stays as it is.
    public func startNewFile() {
        path = nil
        saved = nil
    }

    /// Creates a fresh file with a unique name; a clash (another session, the same second)
    /// just draws another suffix.
    private func claimFile() throws -> String {
        try UserPaths.makePrivateFolder(folder)
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyyMMdd-HHmmss"
        let stamp = f.string(from: clock())
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        for _ in 0..<64 {
            let suffix = String((0..<6).map { _ in alphabet.randomElement()! })
            let candidate = "\(folder)/nibble-\(stamp)-\(suffix).json"
            if AtomicFile.createExclusively(candidate) { return candidate }
            if errno != EEXIST { throw ChatError("\(candidate): cannot create the autosave (\(AtomicFile.reason(errno)))") }
        }
        throw ChatError("\(folder): cannot find a free autosave name")
    }
}
