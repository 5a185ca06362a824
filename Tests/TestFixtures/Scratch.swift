import Foundation

/// Where tests write their files: one folder per test process under $TMPDIR
/// (`nibble-test-run-<pid>`), removed when the process exits, so a run leaves nothing
/// behind even where a test returns a path it made or fails before its own clean-up.
/// Tests that write large files (model copies, quantized outputs) still remove their
/// folder when they end, so a run's peak stays small. `make test` also points $TMPDIR at
/// a folder of its own and empties it, which covers a process that crashes.
public enum Scratch {
    public static let root: URL = {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("nibble-test-run-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.removeItem(at: url)  // a reused PID's leftovers
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            fatalError("cannot create the tests' scratch folder \(url.path): \(error)")
        }
        atexit { try? FileManager.default.removeItem(at: Scratch.root) }
        return url
    }()

    /// A new empty folder under `root`, named `prefix-<UUID>`.
    public static func directory(_ prefix: String) throws -> URL {
        let dir = root.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A path under `root` for one file, named `prefix-<UUID><suffix>`; nothing is created.
    public static func file(_ prefix: String, suffix: String = "") -> URL {
        root.appendingPathComponent("\(prefix)-\(UUID().uuidString)\(suffix)")
    }
}
