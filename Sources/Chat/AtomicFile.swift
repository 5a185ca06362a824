import Foundation

/// A failure in the chat layer: one line saying what is wrong.
public struct ChatError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

enum AtomicFile {
    /// Writes `data` to a temporary file in the target's folder, flushes it to disk, and
    /// renames it over `path`, so a crash leaves either the old file or the new one.
    static func write(_ data: Data, to path: String, mode: mode_t = 0o644) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ChatError("\(path): the folder \(folder) does not exist")
        }
        let temporary = folder + "/." + url.lastPathComponent + ".\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode)
        guard fd >= 0 else { throw ChatError("\(path): cannot write (\(String(cString: strerror(errno))))") }
        var ok = data.withUnsafeBytes { buffer -> Bool in
            var offset = 0
            while offset < buffer.count {
                let n = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 { if errno == EINTR { continue }; return false }
                offset += n
            }
            return true
        }
        let writeError = errno
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(ok ? errno : writeError))
            unlink(temporary)
            throw ChatError("\(path): cannot write (\(reason))")
        }
    }
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
