import Foundation
import TestFixtures
import Remote
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The fake OpenAI-compatible server (modes chosen by the request's model name), one for the
/// whole run.
enum FakeServer {
    private static let starting = Task { try await onOwnThread { try FakeOpenAIServer() } }
    static func shared() async throws -> FakeOpenAIServer { try await starting.value }
}

/// Seconds `body` took.
func timed<T>(_ body: () async throws -> T) async rethrows -> (T, Double) {
    let start = ContinuousClock.now
    let value = try await body()
    let d = ContinuousClock.now - start
    return (value, Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
}

// MARK: - llama-server

/// One llama-server on 127.0.0.1 serving `model` as `alias`, started on a thread of its own.
func startLlamaServer(model: String, alias: String, binary: String) async throws -> LlamaServerProcess {
    try await onOwnThread { try LlamaServerProcess(model: model, alias: alias, binary: binary) }
}

/// The two servers the real-server tests share: SmolLM2 Q4_1 and a q8 copy written by
/// `nibble quantize`, started once; their guards stop them when this process ends.
func sharedServers() async throws -> (q4: LlamaServerProcess, q8: LlamaServerProcess) {
    try #require(FileManager.default.fileExists(atPath: modelPath), "model missing at \(modelPath): run `make model`")
    return try await onOwnThread { try SharedLlamaServers.shared.servers(model: modelPath, nibble: nibbleBinary) }
}
