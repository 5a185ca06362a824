import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

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
public final class ServerHelperProcess: @unchecked Sendable {
    public let process = Process()
    private let stdin = Pipe()
    private let stdout = Pipe()
    public private(set) var firstLine = ""
    /// Whether `stop` waits for the helper to exit (not when started with `start`).
    private var waitsOnStop = true

    /// Starts the helper and waits (blocking this thread) up to `timeout` seconds for its first line.
    public convenience init(_ arguments: [String], timeout: Double = 20) throws {
        try self.init(launching: arguments)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var line: String?
        readFirstLine(timeout: timeout) {
            line = $0
            done.signal()
        }
        done.wait()
        try take(line, arguments)
    }

    /// The same without blocking a thread of the concurrency pool (RemoteTests' timing tests
    /// run beside it); `stop` then does not wait for the helper to exit either.
    public static func start(_ arguments: [String], timeout: Double = 20) async throws -> ServerHelperProcess {
        let helper = try ServerHelperProcess(launching: arguments)
        helper.waitsOnStop = false
        let line: String? = await withCheckedContinuation { continuation in helper.readFirstLine(timeout: timeout) { continuation.resume(returning: $0) } }
        try helper.take(line, arguments)
        return helper
    }

    private init(launching arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", remoteTestServerScript] + arguments
        process.standardInput = stdin
        process.standardOutput = stdout
        // Only this process may hold the write end, or the guard would not see end of file.
        _ = fcntl(stdin.fileHandleForWriting.fileDescriptor, F_SETFD, FD_CLOEXEC)
        try process.run()
    }

    /// Calls `done` once: with the first line, or nil at end of file or after `timeout` seconds.
    private func readFirstLine(timeout: Double, _ done: @escaping @Sendable (String?) -> Void) {
        let handle = stdout.fileHandleForReading
        let claimed = NSLock()
        nonisolated(unsafe) var finished = false
        let finish: @Sendable (String?) -> Void = { line in
            let first = claimed.withLock {
                defer { finished = true }
                return !finished
            }
            if first { done(line) }
        }
        DispatchQueue.global().async {
            var bytes = Data()
            while true {
                let byte = handle.readData(ofLength: 1)
                if byte.isEmpty || byte.first == 0x0A { break }
                bytes.append(byte)
            }
            finish(bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self))
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { finish(nil) }
    }

    private func take(_ line: String?, _ arguments: [String]) throws {
        guard let line else {
            stop()
            throw ServerHarnessError("remote_test_server.py \(arguments.prefix(2).joined(separator: " ")) printed no first line")
        }
        firstLine = line
    }

    /// Closes the helper's stdin (it exits, killing what it guards) and terminates it.
    public func stop() {
        try? stdin.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        if waitsOnStop { process.waitUntilExit() }
    }

    deinit { stop() }
}

/// The fake server of Tools/remote_test_server.py: what it answers depends on the requested
/// model's name (`ok`, `garbage`, `truncated`, `slow`, `error500`, ...; see the script).
public final class FakeOpenAIServer: @unchecked Sendable {
    public let helper: ServerHelperProcess
    public let port: Int
    public var url: String { "http://127.0.0.1:\(port)" }
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
        let url = URL(string: url + "/health")!
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard guardProcess.process.isRunning else { throw ServerHarnessError("llama-server exited: \(logTail())") }
            var request = URLRequest(url: url)
            request.timeoutInterval = 2
            let done = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var healthy = false
            URLSession.shared.dataTask(with: request) { _, response, _ in
                healthy = (response as? HTTPURLResponse)?.statusCode == 200
                done.signal()
            }.resume()
            done.wait()
            if healthy { return }
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
