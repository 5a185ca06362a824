import Foundation
import TestFixtures
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Remote
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A message for what went wrong starting a helper.
typealias HelperError = ServerHarnessError

/// The fake OpenAI-compatible server (modes chosen by the request's model name), one for the
/// whole run.
final class FakeServer: Sendable {
    let helper: ServerHelperProcess
    let endpoint: ServerEndpoint

    private init(helper: ServerHelperProcess) throws {
        self.helper = helper
        endpoint = try ServerEndpoint.parse("fake=http://127.0.0.1:\(helper.firstLine)")
    }

    private static let starting = Task { try FakeServer(helper: try await ServerHelperProcess.start(["fake"])) }
    static func shared() async throws -> FakeServer { try await starting.value }
}

/// Seconds `body` took.
func timed<T>(_ body: () async throws -> T) async rethrows -> (T, Double) {
    let start = ContinuousClock.now
    let value = try await body()
    let d = ContinuousClock.now - start
    return (value, Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
}

// MARK: - llama-server

/// One llama-server on 127.0.0.1 and a free port, serving `model` as `alias`; killed when
/// stopped, when released, or when the test process ends (its guard sees stdin close).
final class LlamaServer: @unchecked Sendable {
    let guardProcess: ServerHelperProcess
    let pid: pid_t
    let endpoint: ServerEndpoint
    let alias: String
    let log: URL

    init(model: String, alias: String, binary: String) async throws {
        let port = try unusedLoopbackPort()
        log = Scratch.root.appendingPathComponent("nibble-llama-server-\(alias)-\(UUID().uuidString).log")
        guardProcess = try await ServerHelperProcess.start(["guard", log.path, binary, "--model", model, "--alias", alias,
                                          "--host", "127.0.0.1", "--port", String(port), "--ctx-size", "2048",
                                          "--threads", "1", "--parallel", "1", "--no-webui"])
        guard let pid = pid_t(guardProcess.firstLine) else { throw HelperError("the guard printed no pid") }
        self.pid = pid
        self.alias = alias
        endpoint = try ServerEndpoint.parse("\(alias)=http://127.0.0.1:\(port)")
        do {
            try await waitForHealth(timeout: 120)
        } catch {
            stop()
            throw error
        }
        try? FileManager.default.removeItem(at: log)  // only the start-up is worth reporting
    }

    /// Polls GET /health until it answers 200.
    private func waitForHealth(timeout: Double) async throws {
        let url = endpoint.url("health")
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard guardProcess.process.isRunning else { throw HelperError("llama-server exited: \(logTail())") }
            var request = URLRequest(url: url)
            request.timeoutInterval = 2
            if let (_, response) = try? await URLSession.shared.data(for: request),
               (response as? HTTPURLResponse)?.statusCode == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HelperError("llama-server \(alias) not healthy within \(Int(timeout)) s: \(logTail())")
    }

    func logTail() -> String {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(15).joined(separator: "\n")
    }

    /// SIGKILL to llama-server itself (not its guard).
    func kill() { _ = Glibc.kill(pid, SIGKILL) }

    func stop() {
        guardProcess.stop()
        try? FileManager.default.removeItem(at: log)
    }

    deinit { stop() }
}

/// The two servers the real-server tests share: SmolLM2 Q4_1 and a q8 copy written by
/// `nibble quantize`, started once; stopped at exit (and by their guards if this process dies).
actor SharedServers {
    static let shared = SharedServers()
    private var starting: Task<(q4: LlamaServer, q8: LlamaServer), Error>?

    func servers() async throws -> (q4: LlamaServer, q8: LlamaServer) {
        if starting == nil { starting = Task { try await Self.start() } }  // once, even for concurrent callers
        return try await starting!.value
    }

    private static func start() async throws -> (q4: LlamaServer, q8: LlamaServer) {
        let binary = try #require(llamaServerBinaryPath)
        try #require(FileManager.default.isExecutableFile(atPath: binary),
                     "NIBBLE_LLAMA_SERVER=\(binary) is not an executable file: run `make llama-server`")
        try #require(FileManager.default.fileExists(atPath: modelPath), "model missing at \(modelPath): run `make model`")
        let dir = Scratch.root.appendingPathComponent("nibble-remote-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        // Removed as soon as the servers are up: llama-server maps the file, so the bytes stay until it exits.
        defer { try? FileManager.default.removeItem(at: dir) }
        let q8 = dir.appendingPathComponent("SmolLM2-135M-Instruct.q8.gguf").path
        try await offThePool { try writeQ8Copy(of: modelPath, to: q8, nibble: nibbleBinary) }
        // No stop at exit is needed: when this process ends, however it ends, the guards see
        // their stdin close and kill the servers.
        let q4Server = try await LlamaServer(model: modelPath, alias: "smollm2-q4", binary: binary)
        let q8Server = try await LlamaServer(model: q8, alias: "smollm2-q8", binary: binary)
        return (q4Server, q8Server)
    }
}

/// Runs blocking work on a Dispatch thread, not on the concurrency pool.
func offThePool(_ work: @escaping @Sendable () throws -> Void) async throws {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
        DispatchQueue.global().async {
            do {
                try work()
                continuation.resume()
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}
