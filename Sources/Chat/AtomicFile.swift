import Foundation

/// A failure in the chat layer: one line saying what is wrong.
public struct ChatError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Where Nibble keeps its files. `$HOME` comes first (as the shell and the Makefile see
/// it); the password database only when `HOME` is unset.
public enum UserPaths {
    public static var home: String {
        if let home = ProcessInfo.processInfo.environment["HOME"], !home.isEmpty { return home }
        return NSHomeDirectory()
    }

    /// `~` and `~/…` with `$HOME`; `~user/…` through the password database; other paths as they are.
    public static func expandingTilde(_ path: String) -> String {
        if path == "~" { return home }
        if path.hasPrefix("~/") { return home + path.dropFirst() }
        if path.hasPrefix("~") { return (path as NSString).expandingTildeInPath }
        return path
    }

    /// `$VARIABLE` if it is set to an absolute path (the XDG rule), else `$HOME/fallback`.
    static func xdg(_ variable: String, _ fallback: String) -> String {
        if let value = ProcessInfo.processInfo.environment[variable], value.hasPrefix("/") { return value }
        return home + "/" + fallback
    }

    /// `${XDG_DATA_HOME:-~/.local/share}/nibble/sessions`: autosaves and bare `/save`s.
    public static var sessionsFolder: String { xdg("XDG_DATA_HOME", ".local/share") + "/nibble/sessions" }
    /// `${XDG_STATE_HOME:-~/.local/state}/nibble`: the history of typed lines.
    public static var stateFolder: String { xdg("XDG_STATE_HOME", ".local/state") + "/nibble" }
    /// `${XDG_CACHE_HOME:-~/.cache}/nibble`: where `make model` installs models.
    public static var cacheFolder: String { xdg("XDG_CACHE_HOME", ".cache") + "/nibble" }

    /// Creates `folder` (and missing parents) private to the user: mode 0700 for every
    /// folder this creates; an existing folder keeps its mode.
    public static func makePrivateFolder(_ folder: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ChatError("\(folder): exists and is not a folder") }
            return
        }
        let parent = (folder as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != folder { try makePrivateFolder(parent) }
        if mkdir(folder, 0o700) != 0, errno != EEXIST {
            throw ChatError("\(folder): cannot create the folder (\(String(cString: strerror(errno)).lowercased()))")
        }
    }
}

/// Files written so that a crash, a kill or a planted link never leaves a torn file or
/// writes somewhere else: a temporary created exclusively beside the target (never
/// following a link, a random name, mode 0600), flushed, renamed over the target, and
/// the folder flushed after the rename.
public enum AtomicFile {
    /// Writes `data` to `path` atomically; the file gets `mode` (default: private).
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o600) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        let name = url.lastPathComponent
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ChatError("\(path): the folder \(folder) does not exist")
        }
        if let kind = fileKind(path), kind != S_IFREG, kind != S_IFLNK {
            throw ChatError("\(path): cannot write (it is \(describe(kind)))")
        }
        removeStaleTemporaries(in: folder)
        var temporary = ""
        var fd: Int32 = -1
        for _ in 0..<16 {
            temporary = folder + "/" + temporaryName(for: name)
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw ChatError("\(path): cannot write (\(reason(errno)))") }
        var failure: Int32 = 0
        data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                offset += n
            }
        }
        if failure == 0, fchmod(fd, mode) != 0 { failure = errno }
        if failure == 0, fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure == 0, rename(temporary, path) != 0 { failure = errno }
        guard failure == 0 else {
            unlink(temporary)
            throw ChatError("\(path): cannot write (\(reason(failure)))")
        }
        syncFolder(folder)
    }

    /// Creates `path` empty and exclusively (it must not exist; links are not followed),
    /// private to the user: how an autosave claims its own name.
    public static func createExclusively(_ path: String, mode: mode_t = 0o600) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }

    // MARK: - Temporaries

    static let temporarySuffix = ".tmp"

    /// `.NAME.PID.RANDOM.tmp`: hidden, and the PID says whether its writer is still alive.
    static func temporaryName(for name: String) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        let random = String((0..<8).map { _ in alphabet.randomElement()! })
        return ".\(name).\(getpid()).\(random)\(temporarySuffix)"
    }

    /// The PID in a temporary's name, if `entry` is one of ours.
    static func writerPID(ofTemporary entry: String) -> pid_t? {
        guard entry.hasPrefix("."), entry.hasSuffix(temporarySuffix) else { return nil }
        let parts = entry.dropLast(temporarySuffix.count).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts.last?.count == 8, let pid = pid_t(parts[parts.count - 2]), pid > 0 else { return nil }
        return pid
    }

    /// Removes temporaries whose writer is gone (a killed process's half-written file).
    /// A temporary of a process that is still running is left alone.
    static func removeStaleTemporaries(in folder: String) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        for entry in entries {
            guard let pid = writerPID(ofTemporary: entry), pid != getpid() else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { continue }
            let path = folder + "/" + entry
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_uid == getuid() else { continue }
            unlink(path)
        }
    }

    // MARK: - Helpers

    static func syncFolder(_ folder: String) {
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    /// The type bits of what is at `path` (not following a link), nil if nothing is.
    static func fileKind(_ path: String) -> mode_t? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return info.st_mode & S_IFMT
    }

    static func describe(_ kind: mode_t) -> String {
        switch kind {
        case S_IFDIR: return "a folder"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFCHR, S_IFBLK: return "a device"
        case S_IFLNK: return "a symbolic link"
        default: return "not a regular file"
        }
    }

    static func reason(_ code: Int32) -> String { String(cString: strerror(code)).lowercased() }
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a
/// plausible typo (for "did you mean" hints).
public func closest(to word: String, in candidates: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, ca) in a.enumerated() {
            var current = [i + 1] + Array(repeating: 0, count: b.count)
            for (j, cb) in b.enumerated() {
                current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
    let w = Array(word.lowercased())
    let scored = candidates.map { ($0, distance(w, Array($0.lowercased()))) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    // A prefix is always a good guess ("/prec" → "/precision").
    if let prefixed = candidates.first(where: { $0.lowercased().hasPrefix(word.lowercased()) }), !word.isEmpty { return prefixed }
    return best.1 <= max(2, w.count / 3) ? best.0 : nil
}
