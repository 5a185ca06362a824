import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What went wrong while driving a pseudo-terminal session.
struct PTYError: Error, CustomStringConvertible {
    let description: String
}

/// A program on a pseudo-terminal that is its controlling terminal, so typed control
/// characters act as on a real terminal: ^C is turned into SIGINT by the line
/// discipline when the program has ISIG on, and reaches the program as a byte when it
/// has ISIG off (libedit's edit mode).
///
/// Spawned with posix_spawn (no code runs in the child between fork and exec):
/// POSIX_SPAWN_SETSID makes it a session leader without a terminal, and opening the
/// pty's slave side as fd 0 then makes that the controlling terminal.
///
/// Output is accumulated unmodified in `output` and fed to `screen`, a small terminal
/// emulator, so tests can check what the user sees as well as the bytes.
final class PTYSession {
    let pid: pid_t
    private let master: Int32
    private var bytes: [UInt8] = []
    /// Byte offset in `bytes` just after the last `expect` match.
    private var mark = 0
    private var status: Int32?
    private(set) var screen: VirtualScreen

    /// Everything the program wrote so far.
    var output: String { String(decoding: bytes, as: UTF8.self) }
    /// What the program wrote after the last `expect` match.
    var pendingOutput: String { String(decoding: bytes[mark...], as: UTF8.self) }

    /// Starts `arguments[0]` with `arguments[1...]`. The environment is this process's,
    /// with `TERM=xterm`, `NO_COLOR` and `NIBBLE_NO_HISTORY` removed, then `environment`
    /// merged in (a value of "" removes the variable).
    init(_ arguments: [String], environment: [String: String] = [:], rows: Int = 24, columns: Int = 80) throws {
        screen = VirtualScreen(rows: rows, columns: columns)
        // posix_openpt/grantpt/unlockpt/ptsname are hidden from Swift's Glibc module
        // (_XOPEN_SOURCE), so: /dev/ptmx and its two ioctls (devpts needs no grantpt).
        let master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard master >= 0 else { throw PTYError(description: "/dev/ptmx: \(String(cString: strerror(errno)))") }
        let TIOCGPTN: UInt = 0x8004_5430, TIOCSPTLCK: UInt = 0x4004_5431  // _IOR('T', 0x30, uint), _IOW('T', 0x31, int)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard ioctl(master, TIOCSPTLCK, &unlock) == 0, ioctl(master, TIOCGPTN, &number) == 0 else {
            close(master)
            throw PTYError(description: "pty unlock: \(String(cString: strerror(errno)))")
        }
        let slavePath = "/dev/pts/\(number)"
        var size = winsize(ws_row: UInt16(rows), ws_col: UInt16(columns), ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master, UInt(TIOCSWINSZ), &size)

        var env = ProcessInfo.processInfo.environment
        env["TERM"] = "xterm"
        env["NO_COLOR"] = nil
        env["NIBBLE_NO_HISTORY"] = nil
        for (key, value) in environment { env[key] = value.isEmpty ? nil : value }

        // Every C string and array the child needs exists before the spawn.
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, slavePath, O_RDWR, 0)  // after setsid: the controlling terminal
        posix_spawn_file_actions_adddup2(&actions, 0, 1)
        posix_spawn_file_actions_adddup2(&actions, 0, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        for signal in [SIGINT, SIGQUIT, SIGTSTP, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD, SIGTTIN, SIGTTOU] {
            sigaddset(&defaultSignals, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        let setsid: Int32 = 0x80  // POSIX_SPAWN_SETSID (glibc 2.26+)
        posix_spawnattr_setflags(&attributes, Int16(setsid | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
        guard result == 0 else {
            close(master)
            throw PTYError(description: "posix_spawn \(arguments[0]): \(String(cString: strerror(result)))")
        }
        self.pid = pid
        self.master = master
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            var raw: Int32 = 0
            waitpid(pid, &raw, 0)
        }
        close(master)
    }

    /// The terminal's local modes now (ECHO, ICANON, ISIG…): the pty's master shares the
    /// slave's termios.
    func localModes() -> tcflag_t {
        var modes = termios()
        _ = tcgetattr(master, &modes)
        return modes.c_lflag
    }

    // MARK: Input

    /// Types `text` (use "\r" for Enter, as a terminal sends).
    func send(_ text: String) {
        var data = Array(text.utf8)
        while !data.isEmpty {
            let n = write(master, data, data.count)
            if n < 0 { if errno == EINTR || errno == EAGAIN { continue }; return }
            data.removeFirst(n)
        }
    }

    /// Types Ctrl-`letter` (e.g. "c" sends 0x03).
    func sendControl(_ letter: Character) {
        let value = letter.uppercased().unicodeScalars.first!.value
        send(String(UnicodeScalar(UInt8(value & 0x1F))))
    }

    // MARK: Output

    /// Waits until `pattern` appears after the previous match; returns the output from
    /// the previous match through this one. Throws after `timeout` seconds or when the
    /// program ends without it, with the output in the message.
    @discardableResult
    func expect(_ pattern: String, timeout: Double = 10) throws -> String {
        try expectMatch(timeout: timeout, describing: pattern.debugDescription) { $0.range(of: pattern) }
    }

    /// `expect` with a regular expression.
    @discardableResult
    func expect(regex: some RegexComponent, timeout: Double = 10) throws -> String {
        try expectMatch(timeout: timeout, describing: "\(regex)") { $0.firstRange(of: regex) }
    }

    /// Waits until `condition` holds for the output after the previous match (and the
    /// screen); does not move the match position. Returns that output.
    @discardableResult
    func waitFor(_ what: String, timeout: Double = 10, _ condition: (String, VirtualScreen) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let text = pendingOutput
            if condition(text, screen) { return text }
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 || (!readOutput(timeout: remaining) && status != nil) {
                throw PTYError(description: "timed out waiting for \(what); output after the last match: \(text.debugDescription)\nscreen:\n\(screen.text)")
            }
        }
    }

    private func expectMatch(timeout: Double, describing: String, _ find: (String) -> Range<String.Index>?) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let text = pendingOutput
            if let range = find(text) {
                let matched = String(text[..<range.upperBound])
                mark += matched.utf8.count
                return matched
            }
            let remaining = deadline.timeIntervalSinceNow
            let ended = !readOutput(timeout: max(remaining, 0)) && exited
            if remaining <= 0 || ended {
                throw PTYError(description: "\(ended ? "program ended" : "timed out") waiting for \(describing); output after the last match: \(text.debugDescription)")
            }
        }
    }

    /// Reads whatever arrives within `seconds`, without matching.
    func drain(for seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while deadline.timeIntervalSinceNow > 0 {
            if !readOutput(timeout: deadline.timeIntervalSinceNow) && exited { return }
        }
    }

    /// One read of the master side, waiting up to `timeout` seconds; false if nothing
    /// came (timeout, or the program has closed the terminal).
    @discardableResult
    private func readOutput(timeout: Double) -> Bool {
        var descriptor = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, Int32(max(0, min(timeout, 60)) * 1000))
        guard ready > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(master, &buffer, buffer.count)
        guard n > 0 else {
            // EIO: every slave descriptor is closed, the program has ended.
            _ = exited
            if status == nil { usleep(10_000) }
            return false
        }
        bytes.append(contentsOf: buffer[..<n])
        screen.feed(buffer[..<n])
        return true
    }

    // MARK: Exit

    /// Whether the program has ended (reaps it).
    private var exited: Bool {
        if status != nil { return true }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid {
            status = (raw & 0x7F) == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
        }
        return status != nil
    }

    /// Reads output until the program ends; its exit status (128 + signal if killed).
    func waitForExit(timeout: Double = 10) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while !exited {
            if deadline.timeIntervalSinceNow <= 0 {
                throw PTYError(description: "the program did not exit within \(timeout) s; output after the last match: \(pendingOutput.debugDescription)")
            }
            readOutput(timeout: min(0.05, deadline.timeIntervalSinceNow))
        }
        while readOutput(timeout: 0) {}
        return status!
    }
}

/// Just enough of an xterm to know what a user would see: printable text with
/// auto-wrap, CR/LF/BS/TAB, cursor movement (CSI A B C D G H d), erasing (K J X),
/// inserting and deleting characters (@ P, insert mode 4h/4l); colours and other
/// modes are ignored.
struct VirtualScreen {
    let rows: Int
    let columns: Int
    private(set) var cells: [[Character]]
    private(set) var row = 0
    private(set) var column = 0
    private var pendingWrap = false
    private var insertMode = false
    private var utf8: [UInt8] = []
    private enum State { case text, escape, csi(String), osc, charset }
    private var state = State.text

    init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
        cells = Array(repeating: Array(repeating: " ", count: columns), count: rows)
    }

    /// Row `index` without trailing blanks.
    func line(_ index: Int) -> String {
        String(String(cells[index]).reversed().drop { $0 == " " }.reversed())
    }

    /// The row the cursor is on, without trailing blanks.
    var cursorLine: String { line(row) }

    /// The whole screen, rows without trailing blanks, joined with "\n".
    var text: String { (0..<rows).map(line).joined(separator: "\n") }

    mutating func feed(_ data: some Sequence<UInt8>) {
        for byte in data {
            if case .text = state, byte >= 0x80 || !utf8.isEmpty {
                utf8.append(byte)
                let decoded = String(decoding: utf8, as: UTF8.self)
                if !decoded.contains("\u{FFFD}") || utf8.count >= 4 {
                    utf8 = []
                    decoded.forEach { put($0) }
                }
                continue
            }
            consume(byte)
        }
    }

    private mutating func consume(_ byte: UInt8) {
        switch state {
        case .text:
            switch byte {
            case 0x1B: state = .escape
            case 0x0D: column = 0; pendingWrap = false
            case 0x0A, 0x0B, 0x0C: lineFeed()
            case 0x08: column = max(0, column - 1); pendingWrap = false
            case 0x09: column = min(columns - 1, (column / 8 + 1) * 8); pendingWrap = false
            case 0x00..<0x20, 0x7F: break  // BEL and others
            default: put(Character(UnicodeScalar(byte)))
            }
        case .escape:
            switch byte {
            case UInt8(ascii: "["): state = .csi("")
            case UInt8(ascii: "]"): state = .osc
            case UInt8(ascii: "("), UInt8(ascii: ")"): state = .charset
            case UInt8(ascii: "E"): column = 0; lineFeed(); state = .text
            case UInt8(ascii: "M"): row = max(0, row - 1); state = .text
            default: state = .text
            }
        case .charset:
            state = .text
        case .osc:
            if byte == 0x07 || byte == 0x1B { state = .text }
        case .csi(let parameters):
            if byte >= 0x40 && byte <= 0x7E {
                state = .text
                perform(Character(UnicodeScalar(byte)), parameters)
            } else {
                state = .csi(parameters + String(UnicodeScalar(byte)))
            }
        }
    }

    private mutating func perform(_ final: Character, _ parameters: String) {
        let isPrivate = parameters.hasPrefix("?") || parameters.hasPrefix(">")
        let values = parameters.trimmingCharacters(in: CharacterSet(charactersIn: "?>")).split(separator: ";", omittingEmptySubsequences: false).map { Int($0) }
        func value(_ index: Int, _ fallback: Int = 1) -> Int {
            guard index < values.count, let v = values[index], v > 0 else { return fallback }
            return v
        }
        func argument(_ index: Int) -> Int { index < values.count ? values[index] ?? 0 : 0 }
        pendingWrap = false
        switch final {
        case "A": row = max(0, row - value(0))
        case "B": row = min(rows - 1, row + value(0))
        case "C": column = min(columns - 1, column + value(0))
        case "D": column = max(0, column - value(0))
        case "G": column = min(columns - 1, value(0) - 1)
        case "d": row = min(rows - 1, value(0) - 1)
        case "H", "f": row = min(rows - 1, value(0) - 1); column = min(columns - 1, value(1) - 1)
        case "K":
            switch argument(0) {
            case 1: for c in 0...column { cells[row][c] = " " }
            case 2: cells[row] = Array(repeating: " ", count: columns)
            default: for c in column..<columns { cells[row][c] = " " }
            }
        case "J":
            switch argument(0) {
            case 1: for r in 0..<row { cells[r] = Array(repeating: " ", count: columns) }; for c in 0...column { cells[row][c] = " " }
            case 2, 3: cells = Array(repeating: Array(repeating: " ", count: columns), count: rows)
            default:
                for c in column..<columns { cells[row][c] = " " }
                for r in (row + 1)..<max(row + 1, rows) { cells[r] = Array(repeating: " ", count: columns) }
            }
        case "X": for c in column..<min(columns, column + value(0)) { cells[row][c] = " " }
        case "@":
            let n = min(value(0), columns - column)
            cells[row].insert(contentsOf: Array(repeating: " ", count: n), at: column)
            cells[row].removeLast(n)
        case "P":
            let n = min(value(0), columns - column)
            cells[row].removeSubrange(column..<(column + n))
            cells[row].append(contentsOf: Array(repeating: " ", count: n))
        case "h", "l":
            if !isPrivate && values.contains(4) { insertMode = final == "h" }
        default: break  // m (colours), r (scroll region), private modes...
        }
    }

    private mutating func put(_ character: Character) {
        if pendingWrap {
            column = 0
            lineFeed()
        }
        if insertMode {
            cells[row].insert(" ", at: column)
            cells[row].removeLast()
        }
        cells[row][column] = character
        if column == columns - 1 { pendingWrap = true } else { column += 1 }
    }

    private mutating func lineFeed() {
        pendingWrap = false
        if row == rows - 1 {
            cells.removeFirst()
            cells.append(Array(repeating: " ", count: columns))
        } else {
            row += 1
        }
    }
}
