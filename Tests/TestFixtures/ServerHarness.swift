import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Remote

// Real and fake OpenAI-compatible servers on 127.0.0.1 for the tests of served models, shared
// by the test targets that drive them (EndToEndTests, RemoteTests): Tools/remote_test_server.py
// starts them and kills them when this process ends, however it ends.

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
public let remoteTestServerScript = repositoryRoot.appendingPathComponent("Tools/remote_test_server.py").path

public struct ServerHarnessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A helper process started through Tools/remote_test_server.py: its first stdout line is read
/// (a port or a pid), and its stdin stays open; closing it (`stop`, deinit, or this process
/// ending) makes the helper exit and kill what it guards.
///
/// Everything here blocks the calling thread, bounded by timeouts, and uses no Dispatch queue
/// and no URLSession: on Linux both can stall (a blocked global queue starves its timers), and
/// async tests reach this through `onOwnThread`, never from the concurrency pool.
public final class ServerHelperProcess: @unchecked Sendable {
    public let process = Process()
    private let stdin = Pipe()
    private let stdout = Pipe()
    public let firstLine: String

    /// Starts the helper and waits up to `timeout` seconds for its first line.
    public init(_ arguments: [String], timeout: Double = 20) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", remoteTestServerScript] + arguments
        process.standardInput = stdin
        process.standardOutput = stdout
        // Only this process may hold the write end, or the guard would not see end of file.
        _ = fcntl(stdin.fileHandleForWriting.fileDescriptor, F_SETFD, FD_CLOEXEC)
        try process.run()
        guard let line = readLine(stdout.fileHandleForReading.fileDescriptor, timeout: timeout) else {
            firstLine = ""
            stop()
            throw ServerHarnessError("remote_test_server.py \(arguments.prefix(2).joined(separator: " ")) printed no first line "
                + "within \(Int(timeout)) s")
        }
        firstLine = line
    }

    /// Closes the helper's stdin (it exits, killing what it guards), terminates it and waits up
    /// to 5 s for it to exit.
    public func stop() {
        try? stdin.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        let deadline = ContinuousClock.now + .seconds(5)
        while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
    }

    deinit { stop() }
}

/// The first line on `fd` (without its newline), or nil at end of file or after `timeout` seconds.
private func readLine(_ fd: Int32, timeout: Double) -> String? {
    let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
    var bytes: [UInt8] = []
    while true {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { return nil }
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let polled = poll(&ready, 1, Int32(min(left.components.seconds * 1000 + 1, 1000)))
        if polled < 0 && errno != EINTR { return nil }
        guard polled > 0 else { continue }
        var byte: UInt8 = 0
        let count = read(fd, &byte, 1)
        if count < 0 && errno == EINTR { continue }
        guard count == 1 else { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
        if byte == 0x0A { return String(decoding: bytes, as: UTF8.self) }
        bytes.append(byte)
    }
}

/// `work` on a thread of its own, for async tests that must block (start a helper, wait for a
/// server): neither a thread of the concurrency pool (the timing tests run beside it) nor a
/// Dispatch worker is held.
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do { continuation.resume(returning: try work()) } catch { continuation.resume(throwing: error) }
        }
        thread.start()
    }
}

/// One HTTP/1.0 request to 127.0.0.1:`port` over a plain socket, each step bounded by what is
/// left of `timeout` seconds: the status and the body. The harness's own client, so that a
/// server's health is never waited for through URLSession.
public func loopbackHTTP(port: Int, path: String, body: Data? = nil, timeout: Double = 10) throws -> (status: Int, body: Data) {
    let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
    func failure(_ what: String) -> ServerHarnessError { ServerHarnessError("http://127.0.0.1:\(port)\(path): \(what)") }
    func wait(for events: Int32, fd: Int32) throws {
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw failure("no answer within \(timeout) s") }
            var ready = pollfd(fd: fd, events: Int16(events), revents: 0)
            let polled = poll(&ready, 1, Int32(min(left.components.seconds * 1000 + 1, 1000)))
            if polled > 0 { return }
            if polled < 0 && errno != EINTR { throw failure("poll failed (errno \(errno))") }
        }
    }
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw failure("socket() failed") }
    defer { close(fd) }
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if connected != 0 {
        guard errno == EINPROGRESS else { throw failure("cannot connect (errno \(errno))") }
        try wait(for: POLLOUT, fd: fd)
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
        guard code == 0 else { throw failure("cannot connect (errno \(code))") }
    }
    var request = Data("\(body == nil ? "GET" : "POST") \(path) HTTP/1.0\r\nHost: 127.0.0.1:\(port)\r\n".utf8)
    if let body { request += Data("Content-Type: application/json\r\nContent-Length: \(body.count)\r\n".utf8) }
    request += Data("\r\n".utf8) + (body ?? Data())
    var sent = 0
    while sent < request.count {
        try wait(for: POLLOUT, fd: fd)
        let count = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, request.count - sent, Int32(MSG_NOSIGNAL)) }
        if count < 0 && errno != EAGAIN && errno != EINTR { throw failure("send failed (errno \(errno))") }
        sent += max(count, 0)
    }
    var response = Data()
    var buffer = [UInt8](repeating: 0, count: 16384)
    while true {
        try wait(for: POLLIN, fd: fd)
        let count = recv(fd, &buffer, buffer.count, 0)
        if count < 0 && (errno == EAGAIN || errno == EINTR) { continue }
        if count < 0 { throw failure("recv failed (errno \(errno))") }
        if count == 0 { break }
        response.append(buffer, count: count)
    }
    guard let end = response.firstRange(of: Data("\r\n\r\n".utf8)) else { throw failure("no complete response head") }
    let statusLine = String(decoding: response[..<end.lowerBound], as: UTF8.self).split(separator: "\r\n").first ?? ""
    let fields = statusLine.split(separator: " ")
    guard fields.count >= 2, fields[0].hasPrefix("HTTP/"), let status = Int(fields[1]) else {
        throw failure("bad status line '\(statusLine)'")
    }
    return (status, Data(response[end.upperBound...]))
}

/// The fake server of Tools/remote_test_server.py: what it answers depends on the requested
/// model's name (`ok`, `garbage`, `truncated`, `slow`, `error500`, ...; see the script).
public final class FakeOpenAIServer: @unchecked Sendable {
    public let helper: ServerHelperProcess
    public let port: Int
    public var url: String { "http://127.0.0.1:\(port)" }
    public var endpoint: ServerEndpoint { try! ServerEndpoint.parse("fake=\(url)") }
    public init() throws {
        helper = try ServerHelperProcess(["fake"])
        guard let port = Int(helper.firstLine) else { throw ServerHarnessError("the fake server printed no port") }
        self.port = port
    }
    public func stop() { helper.stop() }
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then closed).
public func unusedLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ServerHarnessError("socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw ServerHarnessError("bind() failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// $NIBBLE_LLAMA_SERVER, the llama-server binary (`make llama-server`); the tests that need it skip without it.
public let llamaServerBinaryPath: String? = ProcessInfo.processInfo.environment["NIBBLE_LLAMA_SERVER"].flatMap { $0.isEmpty ? nil : $0 }
public let llamaServerSkipReason = "NIBBLE_LLAMA_SERVER is not set: the tests against llama-server are skipped (`make test` builds and sets it; "
    + "or `make llama-server` and export NIBBLE_LLAMA_SERVER)"

/// One llama-server on 127.0.0.1 and a free port, serving `model` as `alias`; killed when
/// stopped, when released, or when the test process ends (its guard sees stdin close).
public final class LlamaServerProcess: @unchecked Sendable {
    public let guardProcess: ServerHelperProcess
    public let pid: pid_t
    public let port: Int
    public let alias: String
    public let log: URL
    public var url: String { "http://127.0.0.1:\(port)" }
    /// The server as `nibble --server` names it: `alias=http://127.0.0.1:port`.
    public var endpoint: ServerEndpoint { try! ServerEndpoint.parse("\(alias)=\(url)") }

    public init(model: String, alias: String, binary: String, port: Int? = nil) throws {
        let port = try port ?? unusedLoopbackPort()
        self.port = port
        log = Scratch.root.appendingPathComponent("nibble-llama-server-\(alias)-\(UUID().uuidString).log")
        guardProcess = try ServerHelperProcess(["guard", log.path, binary, "--model", model, "--alias", alias,
                                                "--host", "127.0.0.1", "--port", String(port), "--ctx-size", "2048",
                                                "--threads", "1", "--parallel", "1", "--no-webui"])
        guard let pid = pid_t(guardProcess.firstLine) else { throw ServerHarnessError("the guard printed no pid") }
        self.pid = pid
        self.alias = alias
        do {
            try waitForHealth(timeout: 120)
        } catch {
            stop()
            throw error
        }
        try? FileManager.default.removeItem(at: log)  // only the start-up is worth reporting
    }

    /// Polls GET /health until it answers 200.
    private func waitForHealth(timeout: Double) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard guardProcess.process.isRunning else { throw ServerHarnessError("llama-server exited: \(logTail())") }
            if (try? loopbackHTTP(port: port, path: "/health", timeout: 2))?.status == 200 { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw ServerHarnessError("llama-server \(alias) not healthy within \(Int(timeout)) s: \(logTail())")
    }

    public func logTail() -> String {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(15).joined(separator: "\n")
    }

    /// SIGKILL to llama-server itself (not its guard).
    public func kill() { _ = Glibc.kill(pid, SIGKILL) }

    public func stop() {
        guardProcess.stop()
        try? FileManager.default.removeItem(at: log)
    }

    deinit { stop() }
}

/// Writes a q8 copy of `model` with `nibble quantize` (the binary at `nibble`).
public func writeQ8Copy(of model: String, to output: String, nibble: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: nibble)
    process.arguments = ["quantize", "--model", model, "--precision", "q8", "--output", output]
    let err = Pipe()
    process.standardError = err
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    let message = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ServerHarnessError("nibble quantize failed: \(String(decoding: message, as: UTF8.self))")
    }
}

/// The two servers a test process shares: `model` (SmolLM2 Q4_1) and a q8 copy, started
/// once on first use, stopped when the process ends (by their guards).
public final class SharedLlamaServers: @unchecked Sendable {
    public static let shared = SharedLlamaServers()
    private let lock = NSLock()
    private var started: Result<(q4: LlamaServerProcess, q8: LlamaServerProcess), Error>?

    public func servers(model: String, nibble: String) throws -> (q4: LlamaServerProcess, q8: LlamaServerProcess) {
        try lock.withLock {
            if started == nil { started = Result { try Self.start(model: model, nibble: nibble) } }
            return try started!.get()
        }
    }

    private static func start(model: String, nibble: String) throws -> (q4: LlamaServerProcess, q8: LlamaServerProcess) {
        guard let binary = llamaServerBinaryPath else { throw ServerHarnessError(llamaServerSkipReason) }
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw ServerHarnessError("NIBBLE_LLAMA_SERVER=\(binary) is not an executable file: run `make llama-server`")
        }
        let dir = Scratch.root.appendingPathComponent("nibble-served-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        // Removed once the servers are up: llama-server maps the file, so its bytes stay until it exits.
        defer { try? FileManager.default.removeItem(at: dir) }
        let q8 = dir.appendingPathComponent("SmolLM2-135M-Instruct.q8.gguf").path
        try writeQ8Copy(of: model, to: q8, nibble: nibble)
        let q4Server = try LlamaServerProcess(model: model, alias: "smollm2-q4", binary: binary)
        let q8Server = try LlamaServerProcess(model: q8, alias: "smollm2-q8", binary: binary)
        return (q4Server, q8Server)
    }
}
