import Foundation
import TestFixtures
import Remote
import Testing

/// Against real llama-server instances on 127.0.0.1 (SmolLM2 Q4_1 and its q8 copy).
/// Skipped, with the reason shown, when NIBBLE_LLAMA_SERVER is unset.
@Suite(.serialized, .enabled(if: llamaServerBinaryPath != nil, Comment(rawValue: llamaServerSkipReason)))
struct LlamaServerTests {
    func servers() async throws -> (q4: LlamaServerProcess, q8: LlamaServerProcess) {
        try await sharedServers()
    }

    static let greedy = RemoteSettings(temperature: 0, seed: 7, maxTokens: 40)

    @Test func modelsListTheServedModel() async throws {
        let (q4, q8) = try await servers()
        #expect(try await RemoteClient(endpoint: q4.endpoint).models() == ["smollm2-q4"])
        #expect(try await RemoteClient(endpoint: q8.endpoint).models() == ["smollm2-q8"])
    }

    @Test func threeStreamedTurns() async throws {
        let (q4, _) = try await servers()
        let client = RemoteClient(endpoint: q4.endpoint)
        var messages = [RemoteMessage(role: "system", content: "You are a helpful assistant. Answer briefly.")]
        for question in ["What is the capital of France?", "And of Italy?", "Name a river in one of them."] {
            messages.append(RemoteMessage(role: "user", content: question))
            nonisolated(unsafe) var pieces: [String] = []
            let reply = try await client.stream(RemoteRequest(model: "smollm2-q4", messages: messages, settings: Self.greedy)) {
                pieces.append($0)
            }
            #expect(!reply.interrupted, "\(String(describing: reply.interruption))")
            #expect(!reply.text.isEmpty && pieces.joined() == reply.text)
            #expect(pieces.count > 1, "the reply came in one piece: not streamed")
            #expect(reply.finishReason == "stop" || reply.finishReason == "length")
            #expect(reply.model == "smollm2-q4")
            messages.append(RemoteMessage(role: "assistant", content: reply.text))
        }
        #expect(messages[2].content.contains("Paris"), "\(messages[2].content)")
    }

    @Test(arguments: ["q4", "q8"])
    func greedyStreamedEqualsNotStreamed(_ which: String) async throws {
        let servers = try await servers()
        let server = which == "q4" ? servers.q4 : servers.q8
        let client = RemoteClient(endpoint: server.endpoint)
        let request = RemoteRequest(model: server.alias, messages: [RemoteMessage(role: "user", content: "Write a short poem about the sea.")],
                                    settings: Self.greedy)
        // The same cache state before each: llama-server reuses the longest cached prefix and
        // evaluates the rest in one batch, and batch sizes may change the rounding (its matmul
        // kernels differ by batch size), so each request follows the same other request.
        let other = RemoteRequest(model: server.alias, messages: [RemoteMessage(role: "user", content: "Hi.")],
                                  settings: RemoteSettings(temperature: 0, maxTokens: 1))
        _ = try await client.complete(other)
        let streamed = try await client.stream(request) { _ in }
        _ = try await client.complete(other)
        let whole = try await client.complete(request)
        #expect(!streamed.interrupted && !streamed.text.isEmpty)
        #expect(streamed.text == whole.text)
        #expect(streamed.finishReason == whole.finishReason)
        #expect(streamed.stats.generatedTokens == whole.stats.generatedTokens)
    }

    @Test func statsAreFilled() async throws {
        let (q4, _) = try await servers()
        let request = RemoteRequest(model: "smollm2-q4", messages: [RemoteMessage(role: "user", content: "Count from one to ten in words.")],
                                    settings: RemoteSettings(temperature: 0, maxTokens: 16))
        let reply = try await RemoteClient(endpoint: q4.endpoint).stream(request) { _ in }
        let stats = reply.stats
        #expect(reply.finishReason == "length" && stats.generatedTokens == 16)
        #expect((stats.promptTokens ?? 0) > 10)
        let timings = try #require(stats.serverTimings)
        #expect(timings.predictedTokens == 16 && timings.predictedMilliseconds > 0)
        #expect(stats.prefillTokensPerSecond == nil || stats.prefillTokensPerSecond! > 0)  // the prompt may come from the cache
        #expect((stats.decodeTokensPerSecond ?? 0) > 0)
        let ttft = try #require(stats.timeToFirstToken)
        #expect(ttft > 0 && ttft <= stats.totalSeconds)
        // A prompt the cache cannot have: the server's prefill speed is reported.
        let fresh = RemoteRequest(model: "smollm2-q4", messages: [RemoteMessage(role: "user", content: "Say \(UUID().uuidString).")],
                                  settings: RemoteSettings(temperature: 0, maxTokens: 2))
        let freshStats = try await RemoteClient(endpoint: q4.endpoint).stream(fresh) { _ in }.stats
        #expect((freshStats.prefillTokensPerSecond ?? 0) > 0)
        #expect((freshStats.serverTimings?.promptTokens ?? 0) > 0)
    }

    @Test func http4xxCarriesTheServersOwnMessage() async throws {
        let (q4, _) = try await servers()
        let client = RemoteClient(endpoint: q4.endpoint)
        // A prompt longer than the server's context (2048 tokens): llama-server answers 400.
        let long = RemoteRequest(model: "smollm2-q4", messages: [RemoteMessage(role: "user", content: String(repeating: "hello world ", count: 1500))],
                                 settings: Self.greedy)
        let error = try await #require(throws: RemoteError.self) { try await client.stream(long) { _ in } }
        #expect(error.kind == .httpStatus(400), "\(error)")
        #expect(error.message.hasPrefix("HTTP 400: request ("), "\(error)")
        #expect(error.message.contains("exceeds the available context size (2048 tokens)"), "\(error)")
        let whole = try await #require(throws: RemoteError.self) { try await client.complete(long) }
        #expect(whole == error)
        guard case let .httpStatus(status) = error.kind else { Issue.record("\(error)"); return }
        #expect(status == 400)
        #expect(error.description.hasPrefix("server \(q4.endpoint.displayURL): HTTP 400: "))
    }

    @Test func serverKilledMidReplyKeepsThePartialText() async throws {
        let binary = try #require(llamaServerBinaryPath)
        _ = try await servers()  // the shared ones must not be the ones killed
        let victim = try await startLlamaServer(model: modelPath, alias: "victim", binary: binary)
        defer { victim.stop() }
        let request = RemoteRequest(model: "victim", messages: [RemoteMessage(role: "user", content: "Count from 1 to 500, one number per line.")],
                                    settings: RemoteSettings(temperature: 0, maxTokens: 1500))
        nonisolated(unsafe) var pieces = 0
        let reply = try await RemoteClient(endpoint: victim.endpoint).stream(request) { _ in
            pieces += 1
            if pieces == 8 { victim.kill() }
        }
        #expect(reply.interrupted && reply.interruption?.kind == .truncated, "\(String(describing: reply.interruption))")
        #expect(reply.interruption?.description.hasPrefix("server \(victim.endpoint.displayURL): the connection was lost mid-reply") == true,
                "\(String(describing: reply.interruption))")
        #expect(!reply.text.isEmpty && reply.finishReason == nil)
        // And once the process is gone, the next request finds no server.
        for _ in 0..<50 where kill(victim.pid, 0) == 0 { try await Task.sleep(for: .milliseconds(50)) }
        let after = try await #require(throws: RemoteError.self) { try await RemoteClient(endpoint: victim.endpoint).models() }
        #expect(after.kind == .cannotConnect)
    }
}
