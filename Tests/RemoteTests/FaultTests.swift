import Foundation
import JSON
import Remote
import Testing
import TestFixtures

/// Faults against the fake server (Tools/remote_test_server.py) and a closed port.
@Suite struct FaultTests {
    let fake: FakeOpenAIServer
    init() async throws { fake = try await FakeServer.shared() }

    func client(connectTimeout: Double = 10, idleTimeout: Double = 30, apiKey: APIKey? = nil) -> RemoteClient {
        RemoteClient(endpoint: fake.endpoint, apiKey: apiKey, connectTimeout: connectTimeout, idleTimeout: idleTimeout)
    }

    func request(_ mode: String) -> RemoteRequest {
        RemoteRequest(model: mode, messages: [RemoteMessage(role: "user", content: "hi")])
    }

    @Test func aGoodStreamAndAGoodWholeReply() async throws {
        nonisolated(unsafe) var pieces: [String] = []
        let streamed = try await client().stream(request("ok")) { pieces.append($0) }
        #expect(pieces == ["Hello", " world"])
        #expect(streamed.text == "Hello world" && streamed.finishReason == "stop" && !streamed.interrupted)
        #expect(streamed.stats.promptTokens == 5 && streamed.stats.generatedTokens == 2)
        #expect(streamed.stats.timeToFirstToken != nil && streamed.stats.serverTimings == nil)
        #expect(streamed.stats.prefillTokensPerSecond == nil)  // no timings: not invented
        let whole = try await client().complete(request("ok"))
        #expect(whole.text == "Hello world" && whole.finishReason == "stop" && whole.stats.generatedTokens == 2)
        #expect(try await client().models() == ["fake"])
    }

    @Test func aServerThatIgnoresStreamingStillAnswers() async throws {
        nonisolated(unsafe) var pieces: [String] = []
        let reply = try await client().stream(request("no-stream")) { pieces.append($0) }
        #expect(pieces == ["Hello world"] && reply.text == "Hello world" && reply.finishReason == "stop" && !reply.interrupted)
    }

    @Test func connectionRefusedNamesTheServer() async throws {
        let endpoint = try ServerEndpoint.parse("http://127.0.0.1:\(try unusedLoopbackPort())")
        let client = RemoteClient(endpoint: endpoint)
        let error = try await #require(throws: RemoteError.self) { try await client.models() }
        #expect(error.kind == .cannotConnect)
        #expect(error.description == "server \(endpoint.displayURL): cannot connect (connection refused)")
        let streamError = try await #require(throws: RemoteError.self) { try await client.stream(request("ok")) { _ in } }
        #expect(streamError.kind == .cannotConnect)
    }

    @Test func httpsToAPlainServerIsOneTLSLine() async throws {
        // The fake server speaks plain HTTP: the TLS handshake fails, and says so in one line.
        let endpoint = try ServerEndpoint.parse("https://127.0.0.1:\(fake.endpoint.baseURL.port!)")
        let error = try await #require(throws: RemoteError.self) { try await RemoteClient(endpoint: endpoint).models() }
        #expect(error.kind == .transport)
        #expect(error.description.hasPrefix("server \(endpoint.displayURL): TLS failed: "))
        #expect(!error.description.contains("\n"))
    }

    @Test func aRedirectIsNotFollowed() async throws {
        let error = try await #require(throws: RemoteError.self) { try await client().complete(request("redirect")) }
        #expect(error.kind == .httpStatus(307))
    }

    @Test func http5xxCarriesTheServersOwnMessage() async throws {
        let e500 = try await #require(throws: RemoteError.self) { try await client().stream(request("error500")) { _ in } }
        #expect(e500.kind == .httpStatus(500))
        #expect(e500.description == "server \(fake.endpoint.displayURL): HTTP 500: the fake server broke")
        let e503 = try await #require(throws: RemoteError.self) { try await client().complete(request("error503")) }
        #expect(e503.description == "server \(fake.endpoint.displayURL): HTTP 503: overloaded, try later")
        let e404 = try await #require(throws: RemoteError.self) {
            try await RemoteClient(endpoint: try ServerEndpoint.parse("http://127.0.0.1:\(fake.endpoint.baseURL.port!)/nope")).models()
        }
        #expect(e404.description.hasSuffix("HTTP 404: no route /nope/v1/models"))
    }

    @Test func aMalformedEventKeepsThePartialText() async throws {
        let (reply, seconds) = try await timed { try await client().stream(request("garbage")) { _ in } }
        #expect(reply.text == "Hel" && reply.interrupted && reply.finishReason == nil)
        let interruption = try #require(reply.interruption)
        #expect(interruption.kind == .badResponse)
        #expect(interruption.description.hasPrefix("server \(fake.endpoint.displayURL): malformed event stream: "))
        #expect(seconds < 4)  // the fake keeps the connection open 5 s: the client must not wait for it
    }

    @Test func anErrorEventMidReplyKeepsThePartialText() async throws {
        let reply = try await client().stream(request("mid-error")) { _ in }
        #expect(reply.text == "Hel" && reply.interruption?.kind == .badResponse)
        #expect(reply.interruption?.message == "the server reported an error mid-reply: the fake model ran out of memory")
    }

    @Test func aTruncatedStreamIsInterruptedNotLost() async throws {
        let reply = try await client().stream(request("truncated")) { _ in }
        #expect(reply.text == "Hello" && reply.interrupted && reply.interruption?.kind == .truncated)
        #expect(reply.interruption?.description.hasPrefix("server \(fake.endpoint.displayURL): ") == true)
    }

    @Test func cancellingASlowStreamReturnsWithinHalfASecond() async throws {
        let client = client()
        let firstText = AsyncStream<Void>.makeStream()
        let task = Task {
            try await client.stream(request("slow")) { _ in firstText.continuation.yield() }
        }
        for await _ in firstText.stream { break }
        try await Task.sleep(for: .milliseconds(300))
        let (reply, seconds) = try await timed { () async throws -> RemoteCompletion in
            task.cancel()
            return try await task.value
        }
        #expect(seconds < 0.5, "cancel took \(seconds) s")
        // The connection is closed: the fake's next write (every 0.2 s) finds it gone.
        var closed = 0
        for _ in 0..<20 where closed == 0 {
            try await Task.sleep(for: .milliseconds(100))
            let port = fake.port
            let (_, data) = try await onOwnThread { try loopbackHTTP(port: port, path: "/fake/closed") }
            closed = try JSONValue.parse([UInt8](data))["closed"]?.int ?? -1
        }
        #expect(closed == 1)
        #expect(reply.interruption?.kind == .cancelled)
        #expect(reply.text.hasPrefix("0 1 ") || reply.text.hasPrefix("0 "), "\(reply.text)")
        #expect(!reply.text.isEmpty)
    }

    @Test func cancellingBeforeTheHeadersThrowsCancelled() async throws {
        let client = client()
        let task = Task { try await client.stream(request("hang")) { _ in } }
        try await Task.sleep(for: .milliseconds(300))
        let (result, seconds) = await timed { () async -> Result<RemoteCompletion, Error> in
            task.cancel()
            return await task.result
        }
        #expect(seconds < 0.5)
        #expect((try? result.get()) == nil)
        #expect((result.failureValue as? RemoteError)?.kind == .cancelled)
    }

    @Test func silenceAfterTheHeadersHitsTheIdleTimeout() async throws {
        let (reply, seconds) = try await timed { try await client(idleTimeout: 1).stream(request("silent")) { _ in } }
        #expect(reply.text == "Hel" && reply.interruption?.kind == .timedOut)
        #expect(reply.interruption?.message == "no data for 1 s")
        #expect(seconds > 0.9 && seconds < 5)
    }

    @Test func noAnswerHitsTheConnectTimeout() async throws {
        let (result, seconds) = await timed { () async -> Result<RemoteCompletion, Error> in
            do { return .success(try await client(connectTimeout: 1).stream(request("hang")) { _ in }) } catch { return .failure(error) }
        }
        let error = try #require(result.failureValue as? RemoteError)
        #expect(error.kind == .timedOut && error.message == "no response within 1 s")
        #expect(seconds > 0.9 && seconds < 5)
    }

    @Test func theAPIKeyIsSentButAppearsInNoError() async throws {
        let secret = "sk-nibble-test-\(UUID().uuidString)"
        let key = try APIKey(environmentVariable: "NIBBLE_REMOTE_TEST_KEY", environment: ["NIBBLE_REMOTE_TEST_KEY": secret])
        // The fake's 401 message repeats the Authorization header: the key was sent, and scrubbed.
        let echoed = try await #require(throws: RemoteError.self) { try await client(apiKey: key).stream(request("echo-auth")) { _ in } }
        #expect(echoed.kind == .httpStatus(401))
        #expect(echoed.message == "HTTP 401: bad credentials: Bearer [API key from $NIBBLE_REMOTE_TEST_KEY]")
        var texts = [echoed.description, "\(echoed)", String(reflecting: echoed)]
        let refused = RemoteClient(endpoint: try ServerEndpoint.parse("http://127.0.0.1:\(try unusedLoopbackPort())"), apiKey: key)
        for failing in [{ try await refused.models() as Any }, { try await refused.complete(request("ok")) as Any },
                        { try await client(apiKey: key).complete(request("error500")) as Any }] {
            do { _ = try await failing() } catch { texts += ["\(error)", String(reflecting: error)] }
        }
        let interrupted = try await client(apiKey: key).stream(request("garbage")) { _ in }
        texts += ["\(interrupted)", String(reflecting: interrupted), "\(RemoteClient(endpoint: fake.endpoint, apiKey: key))"]
        #expect(texts.count == 12)
        for text in texts { #expect(!text.contains(secret), "\(text)") }
    }
}

extension Result {
    var failureValue: Failure? { if case let .failure(e) = self { return e }; return nil }
}
