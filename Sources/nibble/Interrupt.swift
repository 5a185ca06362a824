import Dispatch
import Glibc
import Foundation
import Synchronization

/// Turns SIGINT (Ctrl-C) into a flag that generation polls between forward passes,
/// so an interrupted run stops cleanly within one token or one prefill chunk.
///
/// The chat also routes SIGTERM and SIGHUP (the terminal window closed) here
/// (`watchTermination`): mid-reply they stop the reply like Ctrl-C, the partial reply is
/// kept and autosaved, and the chat then ends; at the prompt, where everything is saved
/// already, the process ends at once (history saved, terminal restored).
final class Interrupt: @unchecked Sendable {
    static let shared = Interrupt()
    private let flag = Atomic<Bool>(false)
    /// The exit status the chat ends with (128 + SIGTERM or SIGHUP, or that of a failed
    /// output), -1 while it goes on.
    private let termination = Atomic<Int32>(-1)
    /// The main thread is blocked reading a line: nothing is in flight.
    private let waiting = Atomic<Bool>(false)
    private var sources: [any DispatchSourceSignal] = []
    private var exitWhileWaiting: (@Sendable (Int32) -> Void)?

    private init() {
        sources.append(Self.watch(SIGINT) { [unowned self] _ in self.flag.store(true, ordering: .relaxed) })
    }

    private static func watch(_ signal: Int32, _ handler: @escaping @Sendable (Int32) -> Void) -> any DispatchSourceSignal {
        Foundation.signal(signal, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
        source.setEventHandler { handler(signal) }
        source.resume()
        return source
    }

    /// Handles SIGTERM and SIGHUP from now on. `whileWaiting` runs (off the main thread)
    /// when one arrives while the main thread waits for input; the process then exits
    /// with 128 + the signal's number.
    func watchTermination(whileWaiting: @escaping @Sendable (Int32) -> Void) {
        exitWhileWaiting = whileWaiting
        for signal in [SIGTERM, SIGHUP] {
            sources.append(Self.watch(signal) { [unowned self] signal in
                self.end(status: 128 + signal)
                if self.waiting.compareExchange(expected: true, desired: false, ordering: .sequentiallyConsistent).exchanged {
                    self.exitWhileWaiting?(signal)
                    exit(128 + signal)
                }
            })
        }
    }

    /// Ctrl-C since the last reset, or a termination signal (generation stops for both).
    var isSet: Bool { flag.load(ordering: .relaxed) }
    /// Set when the chat must end (SIGTERM, SIGHUP, stdout gone): finish what is in
    /// flight, save, and exit with this status.
    var terminationStatus: Int32? {
        let status = termination.load(ordering: .sequentiallyConsistent)
        return status < 0 ? nil : status
    }

    /// Stops what is in flight and makes the chat end with `status` (the first one given wins).
    func end(status: Int32) {
        _ = termination.compareExchange(expected: -1, desired: status, ordering: .sequentiallyConsistent)
        flag.store(true, ordering: .relaxed)
    }

    func reset() { flag.store(terminationStatus != nil, ordering: .relaxed) }

    /// Runs `read` (a blocking read of the next line) marked as waiting, so that a
    /// termination signal meanwhile ends the process at once. Returns nil when a signal
    /// arrived first (the process is then exiting).
    func waitingForInput<T>(_ read: () -> T) -> T? {
        if terminationStatus != nil { return nil }
        waiting.store(true, ordering: .sequentiallyConsistent)
        let value = read()
        if waiting.compareExchange(expected: true, desired: false, ordering: .sequentiallyConsistent).exchanged { return value }
        // The signal handler owns the exit now.
        while true { pause() }
    }
}

/// Writes to stdout without buffering surprises (streamed tokens appear at once).
///
/// Output errors never crash: a closed pipe (`nibble generate | head`) or a terminal
/// that went away ends the output quietly, any other error (a full disk) prints one line
/// on stderr; then `outputClosed` runs (by default: exit; the chat instead finishes and
/// saves what is in flight, then ends).
enum Terminal {
    /// The last byte written through `write`/`writeError` (both usually reach the same
    /// terminal), so the prompt can start on a fresh line.
    private static let lastByte = Atomic<UInt8>(UInt8(ascii: "\n"))
    /// Set once stdout failed: later writes are dropped.
    private static let stdoutBroken = Atomic<Bool>(false)
    /// What to do once stdout cannot be written (the exit status to use: 0 for a closed
    /// pipe or terminal, 1 for another error).
    nonisolated(unsafe) static var outputClosed: (Int32) -> Void = { status in exit(status) }

    static func write(_ text: String) {
        guard let last = text.utf8.last, !stdoutBroken.load(ordering: .relaxed) else { return }
        if let error = writeAll(STDOUT_FILENO, text) {
            guard !stdoutBroken.exchange(true, ordering: .relaxed) else { return }
            let quiet = error == EPIPE || error == EIO
            if !quiet {
                _ = writeAll(STDERR_FILENO, "error: cannot write to standard output: \(String(cString: strerror(error)).lowercased())\n")
            }
            outputClosed(quiet ? 0 : 1)
            return
        }
        lastByte.store(last, ordering: .relaxed)
    }

    /// Whether output to stdout failed (the chat then ends after saving).
    static var outputIsBroken: Bool { stdoutBroken.load(ordering: .relaxed) }

    /// Writes all of `text` to `fd`; the errno of a failure, nil when everything was written.
    private static func writeAll(_ fd: Int32, _ text: String) -> Int32? {
        var text = text
        return text.withUTF8 { buffer -> Int32? in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += n
            }
            return nil
        }
    }

    /// Whether the output so far ends with a newline (or nothing was written).
    static var atLineStart: Bool { lastByte.load(ordering: .relaxed) == UInt8(ascii: "\n") }

    /// Records that something else (libedit, the terminal's own echo) left the cursor
    /// at the start of a line.
    static func noteLineStart() { lastByte.store(UInt8(ascii: "\n"), ordering: .relaxed) }

    /// One JSON object on a line: sorted keys, slashes unescaped (paths stay readable).
    static func writeJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        write(String(decoding: try encoder.encode(value), as: UTF8.self) + "\n")
    }

    /// To stderr; errors are ignored (there is nowhere left to report them).
    static func writeError(_ text: String) {
        guard let last = text.utf8.last else { return }
        _ = writeAll(STDERR_FILENO, text)
        lastByte.store(last, ordering: .relaxed)
    }

    /// `text` with every control character but newline and tab shown visibly, so text
    /// from a file or a model cannot drive the terminal (retitle it, clear it, move the
    /// cursor): ESC is `^[`, other C0 characters `^@`…`^_`, DEL `^?`, and the C1 controls
    /// (U+0080–U+009F, which some terminals obey) `<U+009B>`.
    static func visible(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard isControl(scalar) else { out.append(scalar); continue }
            let shown: String
            switch scalar.value {
            case 0x7F: shown = "^?"
            case 0..<0x20: shown = "^" + String(UnicodeScalar(UInt8(scalar.value + 0x40)))
            default: shown = String(format: "<U+%04X>", scalar.value)
            }
            out.append(contentsOf: shown.unicodeScalars)
        }
        return String(out)
    }

    /// Text a command prints as its result (generated text, a rendered template): exact
    /// when stdout is a pipe or a file, `visible` on a terminal.
    static func output(_ text: String) -> String {
        isatty(STDOUT_FILENO) != 0 ? visible(text) : text
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        return (v < 0x20 && v != 0x0A && v != 0x09) || (0x7F...0x9F).contains(v)
    }
}
