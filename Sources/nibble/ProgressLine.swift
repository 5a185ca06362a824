import Dispatch
import Foundation
import Synchronization

/// A one-line note on stderr for work that takes a while ("packing weights for nf4 …"),
/// shown only if the work is still running after `delay` and only on a terminal, then
/// erased when it ends, so quick work stays silent and pipes stay clean.
final class ProgressLine: @unchecked Sendable {
    static let delay = 0.3
    private let lock = NSLock()
    private var pending: DispatchWorkItem?
    private var shown = false
    private let enabled = isatty(STDERR_FILENO) != 0

    /// Starts the note for `text` (replacing one in progress).
    func start(_ text: String) {
        end()
        guard enabled else { return }
        let item = DispatchWorkItem { [weak self] in
            guard let self else { return }
            self.lock.lock()
            defer { self.lock.unlock() }
            guard self.pending != nil else { return }
            Terminal.writeError(Style.dim(Terminal.visible(text) + " …"))
            self.shown = true
        }
        lock.lock()
        pending = item
        lock.unlock()
        DispatchQueue.global().asyncAfter(deadline: .now() + Self.delay, execute: item)
    }

    /// Ends the note: erases it if it was shown.
    func end() {
        lock.lock()
        defer { lock.unlock() }
        pending?.cancel()
        pending = nil
        if shown {
            Terminal.writeError("\r\u{1B}[K")
            Terminal.noteLineStart()
            shown = false
        }
    }

    /// Runs `work` with the note shown while it lasts.
    func run<T>(_ text: String, _ work: () throws -> T) rethrows -> T {
        start(text)
        defer { end() }
        return try work()
    }
}
