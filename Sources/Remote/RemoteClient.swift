import Foundation
import JSON

/// A client of one OpenAI-compatible server (llama-server, vLLM, Ollama, hosted APIs):
/// `GET /v1/models` and `POST /v1/chat/completions`, streamed as server-sent events or not.
///
/// Errors before a reply starts are thrown as one line naming the server. Once a streamed reply
/// has started (HTTP 200), whatever stops it early - the connection lost, a malformed event,
/// silence past the idle timeout, the task cancelled - is returned as the completion's
/// `interruption`, with the text received so far. Cancelling the calling task closes the
/// connection and returns at once.
public final class RemoteClient: Sendable {
    public let endpoint: ServerEndpoint
    /// Seconds to wait for the response headers (the connection and the server's answer).
    public let connectTimeout: Double
    /// Seconds of silence allowed between bytes of a response once its headers came.
    public let idleTimeout: Double
    let apiKey: APIKey?

    /// The most a non-streamed response body may hold.
    static let maxBodyBytes = 64 << 20

    public init(endpoint: ServerEndpoint, apiKey: APIKey? = nil, connectTimeout: Double = 10, idleTimeout: Double = 300) {
        self.endpoint = endpoint
        self.apiKey = apiKey
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }

    // MARK: - Requests

    /// The ids of the served models (`GET /v1/models`).
    public func models() async throws(RemoteError) -> [String] {
        let json = try await jsonResponse(try await send(method: "GET", path: "v1/models", body: nil), what: "the model list")
        guard let data = json["data"]?.array else {
            throw error(.badResponse, "the model list has no \"data\" array")
        }
        return data.compactMap { $0["id"]?.string }
    }

    /// A whole reply at once (`stream: false`).
    public func complete(_ request: RemoteRequest) async throws(RemoteError) -> RemoteCompletion {
        let start = ContinuousClock.now
        let json = try await jsonResponse(try await send(method: "POST", path: "v1/chat/completions",
                                                         body: request.body(stream: false)), what: "the reply")
        return try wholeCompletion(json, start: start).get()
    }

    private func wholeCompletion(_ json: JSONValue, start: ContinuousClock.Instant) -> Result<RemoteCompletion, RemoteError> {
        guard let choice = json["choices"]?.array?.first, let message = choice["message"] else {
            return .failure(error(.badResponse, "the reply has no choices[0].message"))
        }
        var completion = RemoteCompletion(text: message["content"]?.string ?? "",
                                          finishReason: choice["finish_reason"]?.string, model: json["model"]?.string)
        completion.stats.totalSeconds = seconds(since: start)
        fillStats(&completion.stats, usage: json["usage"], timings: json["timings"])
        return .success(completion)
    }

    /// A streamed reply (`stream: true`): `onText` gets each piece of text as it arrives.
    public func stream(_ request: RemoteRequest, onText: (String) -> Void) async throws(RemoteError) -> RemoteCompletion {
        let start = ContinuousClock.now
        let exchange = try await send(method: "POST", path: "v1/chat/completions", body: request.body(stream: true))
        let result: Result<RemoteCompletion, RemoteError> = await withTaskCancellationHandler {
            await readStream(exchange, start: start, onText: onText)
        } onCancel: {
            exchange.cancel()
        }
        return try result.get()
    }

    // MARK: - Streaming

    private func readStream(_ exchange: HTTPExchange, start: ContinuousClock.Instant,
                            onText: (String) -> Void) async -> Result<RemoteCompletion, RemoteError> {
        var parser = EventStreamParser()
        var completion = RemoteCompletion()
        var status: Int?
        var errorBody = Data()
        var wholeBody: Data?  // a 2xx JSON body: a server that ignored "stream": true
        var done = false
        var firstText: ContinuousClock.Instant?
        var lastText: ContinuousClock.Instant?
        var usage: JSONValue?
        var timings: JSONValue?

        func stats() -> RemoteStats {
            var stats = RemoteStats()
            stats.totalSeconds = seconds(since: start)
            stats.timeToFirstToken = firstText.map { seconds(from: start, to: $0) }
            fillStats(&stats, usage: usage, timings: timings)
            if stats.decodeTokensPerSecond == nil, let n = stats.generatedTokens, n >= 2,
               let first = firstText, let last = lastText, last > first {
                stats.decodeTokensPerSecond = Double(n - 1) / seconds(from: first, to: last)
            }
            return stats
        }
        func interrupted(_ failure: RemoteError) -> Result<RemoteCompletion, RemoteError> {
            completion.stats = stats()
            completion.interruption = failure
            return .success(completion)
        }

        do {
            eventLoop: for try await event in exchange.events {
                switch event {
                case let .head(code, contentType):
                    status = code
                    if (200..<300).contains(code), contentType.lowercased().contains("json") { wholeBody = Data() }
                case let .body(data):
                    guard status.map({ (200..<300).contains($0) }) == true else {
                        if errorBody.count < 1 << 20 { errorBody.append(data) }
                        continue
                    }
                    if wholeBody != nil {
                        wholeBody!.append(data)
                        if wholeBody!.count > Self.maxBodyBytes {
                            exchange.cancel()
                            return .failure(self.error(.badResponse, "the reply is larger than \(Self.maxBodyBytes >> 20) MiB"))
                        }
                        continue
                    }
                    for sse in parser.feed(data) {
                        let payload = sse.data.trimmingCharacters(in: .whitespaces)
                        if payload == "[DONE]" {
                            done = true
                            break eventLoop
                        }
                        let json: JSONValue
                        do {
                            json = try JSONValue.parse(payload)
                        } catch {
                            exchange.cancel()
                            return interrupted(self.error(.badResponse,
                                "malformed event stream: \(error) in the data line '\(excerpt(payload))'"))
                        }
                        if let serverError = json["error"] {
                            exchange.cancel()
                            return interrupted(self.error(.badResponse,
                                "the server reported an error mid-reply: \(Self.errorMessage(in: serverError) ?? excerpt(payload))"))
                        }
                        if let model = json["model"]?.string { completion.model = model }
                        if let u = json["usage"], u.members != nil { usage = u }
                        if let t = json["timings"], t.members != nil { timings = t }
                        if let choice = json["choices"]?.array?.first {
                            if let text = choice["delta"]?["content"]?.string, !text.isEmpty {
                                let now = ContinuousClock.now
                                if firstText == nil { firstText = now }
                                lastText = now
                                completion.text += text
                                onText(text)
                            }
                            if let reason = choice["finish_reason"]?.string { completion.finishReason = reason }
                        }
                    }
                }
            }
        } catch var failure as HTTPExchange.Failure {
            if exchange.isCancelled || Task.isCancelled { failure = .cancelled }  // whatever the transport saw after it
            let error = self.error(for: failure)
            guard let status, (200..<300).contains(status) else {
                // An error response cut short still carries its status (and what came of its message).
                if let status, case .transport = failure { return .failure(httpError(status: status, body: errorBody)) }
                return .failure(error)
            }
            if case .transport = failure {
                // The body stopped mid-transfer: the server died or the connection broke.
                if completion.finishReason != nil {
                    completion.stats = stats()
                    return .success(completion)
                }
                return interrupted(self.error(.truncated, error.kind == .truncated ? "the connection was lost mid-reply"
                                                                                    : "the connection was lost mid-reply (\(error.message))"))
            }
            return interrupted(error)
        } catch {
            // CancellationError: the task reading the events was cancelled.
            if !(exchange.isCancelled || Task.isCancelled || error is CancellationError) {
                return .failure(self.error(.transport, "\(error)"))
            }
        }
        if !done, exchange.isCancelled || Task.isCancelled {
            let cancelled = self.error(.cancelled, "cancelled")
            return status.map({ (200..<300).contains($0) }) == true ? interrupted(cancelled) : .failure(cancelled)
        }
        exchange.cancel()
        guard let status else { return .failure(self.error(.transport, "the server closed the connection without a response")) }
        guard (200..<300).contains(status) else { return .failure(httpError(status: status, body: errorBody)) }
        if let wholeBody {
            guard let json = try? JSONValue.parse([UInt8](wholeBody)) else {
                return .failure(self.error(.badResponse, "the reply is not JSON: '\(excerpt(String(decoding: wholeBody, as: UTF8.self)))'"))
            }
            let result = wholeCompletion(json, start: start)
            if case let .success(completion) = result, !completion.text.isEmpty { onText(completion.text) }
            return result
        }
        parser.finish()
        if !done && completion.finishReason == nil {
            return interrupted(self.error(.truncated, "the reply stopped before its end (the stream closed without a finish reason or [DONE])"))
        }
        completion.stats = stats()
        return .success(completion)
    }

    // MARK: - Plumbing

    private func send(method: String, path: String, body: JSONValue?) async throws(RemoteError) -> HTTPExchange {
        if Task.isCancelled { throw error(.cancelled, "cancelled") }
        var headers = [("Accept", body == nil ? "application/json" : "text/event-stream, application/json")]
        if body != nil { headers.append(("Content-Type", "application/json")) }
        if let apiKey { headers.append(("Authorization", "Bearer \(apiKey.value)")) }
        return HTTPExchange(url: endpoint.url(path), method: method, headers: headers, body: body.map { Data($0.serialized.utf8) },
                            connectTimeout: connectTimeout, idleTimeout: idleTimeout)
    }

    /// Reads a whole JSON response; an HTTP error becomes a `RemoteError` with the server's message.
    private func jsonResponse(_ exchange: HTTPExchange, what: String) async throws(RemoteError) -> JSONValue {
        let result: Result<(Int, Data), RemoteError> = await withTaskCancellationHandler {
            var status = 0
            var body = Data()
            do {
                for try await event in exchange.events {
                    switch event {
                    case let .head(code, _): status = code
                    case let .body(data):
                        body.append(data)
                        if body.count > Self.maxBodyBytes {
                            exchange.cancel()
                            return .failure(self.error(.badResponse, "\(what) is larger than \(Self.maxBodyBytes >> 20) MiB"))
                        }
                    }
                }
            } catch let failure as HTTPExchange.Failure {
                return .failure(self.error(for: exchange.isCancelled || Task.isCancelled ? .cancelled : failure))
            } catch {
                if !(exchange.isCancelled || Task.isCancelled || error is CancellationError) {
                    return .failure(self.error(.transport, "\(error)"))
                }
            }
            if exchange.isCancelled || Task.isCancelled { return .failure(self.error(.cancelled, "cancelled")) }
            return .success((status, body))
        } onCancel: {
            exchange.cancel()
        }
        let (status, body) = try result.get()
        guard (200..<300).contains(status) else { throw httpError(status: status, body: body) }
        do {
            return try JSONValue.parse([UInt8](body))
        } catch {
            throw self.error(.badResponse, "\(what) is not JSON (\(error)): '\(excerpt(String(decoding: body, as: UTF8.self)))'")
        }
    }

    private func error(for failure: HTTPExchange.Failure) -> RemoteError {
        switch failure {
        case .connectTimeout: return error(.timedOut, "no response within \(Self.format(connectTimeout)) s")
        case .idleTimeout: return error(.timedOut, "no data for \(Self.format(idleTimeout)) s")
        case .cancelled: return error(.cancelled, "cancelled")
        case let .transport(what, text):
            switch what {
            case .cannotConnect: return error(.cannotConnect, "cannot connect (\(text))")
            case .hostNotFound: return error(.cannotConnect, "cannot connect (host not found)")
            case .connectionLost: return error(.truncated, "the connection was lost")
            case .tls: return error(.transport, "TLS failed: \(text)")
            case .other: return error(.transport, text)
            }
        }
    }

    private func httpError(status: Int, body: Data) -> RemoteError {
        let text = String(decoding: body, as: UTF8.self)
        var message = (try? JSONValue.parse(text)).flatMap { Self.errorMessage(in: $0) }
        if message == nil {
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            message = trimmed.isEmpty ? Self.reasonPhrase(status) : excerpt(trimmed, limit: 300)
        }
        return error(.httpStatus(status), "HTTP \(status): \(message!)")
    }

    /// RFC 9110's reason phrase of the statuses a chat server sends, for an error without a body.
    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 400: return "bad request"
        case 401: return "unauthorized"
        case 403: return "forbidden"
        case 404: return "not found"
        case 405: return "method not allowed"
        case 408: return "request timeout"
        case 413: return "content too large"
        case 422: return "unprocessable content"
        case 429: return "too many requests"
        case 500: return "internal server error"
        case 501: return "not implemented"
        case 502: return "bad gateway"
        case 503: return "service unavailable"
        case 504: return "gateway timeout"
        default: return (300..<400).contains(status) ? "redirected (not followed)" : "no message"
        }
    }

    /// The message in an error body: OpenAI's and llama-server's `{"error": {"message": ...}}`,
    /// `{"error": "..."}` (Ollama), `{"message": ...}` (vLLM) or `{"detail": ...}` (FastAPI).
    static func errorMessage(in json: JSONValue) -> String? {
        if let message = json["error"]?["message"]?.string { return message }
        if let message = json["error"]?.string { return message }
        if let message = json["message"]?.string { return message }
        if let message = json["detail"]?.string { return message }
        if let message = json["detail"]?.array?.first?["msg"]?.string { return message }
        if json.members == nil, let message = json.string { return message }
        return nil
    }

    /// An error naming this server, on one line, with the API key scrubbed.
    func error(_ kind: RemoteError.Kind, _ message: String) -> RemoteError {
        var line = message.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: " ")
        if let apiKey { line = apiKey.scrub(line) }
        return RemoteError(kind, server: endpoint.displayURL, line)
    }

    private func fillStats(_ stats: inout RemoteStats, usage: JSONValue?, timings: JSONValue?) {
        let serverTimings = ServerTimings(timings)
        stats.serverTimings = serverTimings
        stats.promptTokens = usage?["prompt_tokens"]?.int ?? serverTimings?.promptTokens
        stats.generatedTokens = usage?["completion_tokens"]?.int ?? serverTimings?.predictedTokens
        if let t = serverTimings {
            stats.prefillTokensPerSecond = t.promptTokens > 0 ? t.promptTokensPerSecond : nil
            stats.decodeTokensPerSecond = t.predictedTokens > 0 ? t.predictedTokensPerSecond : nil
        }
    }

    private func excerpt(_ text: String, limit: Int = 80) -> String {
        let line = text.split(whereSeparator: \.isNewline).joined(separator: " ")
        return line.count <= limit ? line : String(line.prefix(limit)) + "..."
    }

    private static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(format: "%.1f", seconds)
    }
}

private func seconds(since start: ContinuousClock.Instant) -> Double { seconds(from: start, to: .now) }

private func seconds(from a: ContinuousClock.Instant, to b: ContinuousClock.Instant) -> Double {
    let d = b - a
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}
