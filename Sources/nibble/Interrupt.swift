import Dispatch
import Foundation
import Synchronization

/// Turns SIGINT (Ctrl-C) into a flag that generation polls between forward passes,
/// so an interrupted run stops cleanly within one token or one prefill chunk.
final class Interrupt: @unchecked Sendable {
    static let shared = Interrupt()
    private let flag = Atomic<Bool>(false)
    private let source: any DispatchSourceSignal

    private init() {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [unowned self] in self.flag.store(true, ordering: .relaxed) }
        source.resume()
    }

    var isSet: Bool { flag.load(ordering: .relaxed) }
    func reset() { flag.store(false, ordering: .relaxed) }
}

/// Writes to stdout without buffering surprises (streamed tokens appear at once).
enum Terminal {
    /// The last byte written through `write`/`writeError` (both usually reach the same
    /// terminal), so the prompt can start on a fresh line.
    private static let lastByte = Atomic<UInt8>(UInt8(ascii: "\n"))

    static func write(_ text: String) {
        guard let last = text.utf8.last else { return }
        FileHandle.standardOutput.write(Data(text.utf8))
        lastByte.store(last, ordering: .relaxed)
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

    static func writeError(_ text: String) {
        guard let last = text.utf8.last else { return }
        FileHandle.standardError.write(Data(text.utf8))
        lastByte.store(last, ordering: .relaxed)
    }
}
