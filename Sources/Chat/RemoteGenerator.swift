import Dispatch
import Foundation
import Inference
import Remote

/// A model an OpenAI-compatible server runs (llama-server, vLLM, Ollama), behind the
/// `MessageGenerator` seam: the conversation goes as messages, the reply streams back as
/// text. `send` is synchronous, as the session calls it: the request runs in a task of its
/// own while the calling thread hands the pieces to `onText` and polls `shouldStop` every
/// `pollInterval` seconds, events or not; when it turns true the task is cancelled (which
/// closes the connection) and `send` returns at most `stopGrace` seconds later with what
/// had arrived.
public final class RemoteGenerator: MessageGenerator {
    public let client: RemoteClient
    /// The served model's id (what `/v1/models` lists and requests name).
    public let model: String

    /// How often `shouldStop` is asked while waiting for the server.
    public var pollInterval: Double = 0.02
    /// How long `send` waits, after cancelling, for the client to hand back the partial reply.
    public var stopGrace: Double = 0.25

    public init(client: RemoteClient, model: String) {
        self.client = client
        self.model = model
    }

    public var descriptor: ModelDescriptor {
        ModelDescriptor(name: model, location: .server(url: client.endpoint.displayURL, model: model))
    }

    /// The chat-completions request for `request`: the messages as they are, every sampling
    /// setting (llama-server reads them all; see `RemoteSettings` for other servers) and the
    /// reply's length. The seed is sent when the session drew or was given one.
    public static func remoteRequest(_ request: MessageRequest, model: String) -> RemoteRequest {
        let s = request.settings
        let settings = RemoteSettings(temperature: s.temperature, topP: s.topP, topK: s.topK, minP: s.minP,
                                      repeatPenalty: s.repeatPenalty, seed: s.seed.flatMap { Int(exactly: $0) },
                                      maxTokens: s.maxTokens)
        return RemoteRequest(model: model, messages: request.messages.map { RemoteMessage(role: $0.role.rawValue, content: $0.content) },
                             settings: settings)
    }

    /// The stop reason and the server's numbers of a completed reply.
    static func reply(_ completion: RemoteCompletion, stopped: Bool) -> MessageReply {
        let reason: StopReason = stopped ? .cancelled : completion.finishReason == "length" ? .length : .eos
        let stats = completion.stats
        return MessageReply(stopReason: reason, promptTokens: stats.promptTokens, generatedTokens: stats.generatedTokens,
                            ttftSeconds: stats.timeToFirstToken, prefillTokensPerSecond: stats.prefillTokensPerSecond,
                            decodeTokensPerSecond: stats.decodeTokensPerSecond)
    }

    public func send(_ request: MessageRequest, shouldStop: () -> Bool, onText: (String) -> Void) throws -> MessageReply {
        let exchange = Exchange()
        let remote = Self.remoteRequest(request, model: model)
        let client = self.client
        let task = Task.detached {
            let result: Result<RemoteCompletion, RemoteError>
            do throws(RemoteError) {
                result = .success(try await client.stream(remote) { exchange.push($0) })
            } catch {
                result = .failure(error)
            }
            exchange.finish(result)
        }
        var stoppedAt: DispatchTime?
        var outcome: Result<RemoteCompletion, RemoteError>?
        while true {
            let (pieces, result) = exchange.take()
            // Pieces that arrive after Ctrl-C are not shown: the reply stopped there.
            if stoppedAt == nil { for piece in pieces { onText(piece) } }
            if let result {
                outcome = result
                break
            }
            if stoppedAt == nil, shouldStop() {
                stoppedAt = .now()
                task.cancel()
            }
            if let stoppedAt, DispatchTime.now() > stoppedAt + stopGrace { break }
            exchange.wait(seconds: pollInterval)
        }
        if stoppedAt != nil {
            // Stopped: whatever the client says now (it may still be closing), the reply ends here.
            var completion = (try? outcome?.get()) ?? RemoteCompletion()
            completion.interruption = nil
            return Self.reply(completion, stopped: true)
        }
        let completion = try outcome!.get()
        if let interruption = completion.interruption {
            // The stream broke after it started: the session keeps the text shown so far.
            throw interruption
        }
        return Self.reply(completion, stopped: false)
    }

    /// Pieces of text and the final result, handed from the request's task to the caller's thread.
    private final class Exchange: @unchecked Sendable {
        private let lock = NSLock()
        private let signal = DispatchSemaphore(value: 0)
        private var pieces: [String] = []
        private var result: Result<RemoteCompletion, RemoteError>?

        func push(_ piece: String) {
            lock.withLock { pieces.append(piece) }
            signal.signal()
        }

        func finish(_ result: Result<RemoteCompletion, RemoteError>) {
            lock.withLock { self.result = result }
            signal.signal()
        }

        /// The pieces received since the last call, and the result once there is one (after them).
        func take() -> ([String], Result<RemoteCompletion, RemoteError>?) {
            lock.withLock {
                defer { pieces.removeAll() }
                return (pieces, result)
            }
        }

        func wait(seconds: Double) { _ = signal.wait(timeout: .now() + seconds) }
    }
}

/// The models of one server as `/model` lists them: its client and the ids it serves, or why
/// it did not answer.
public final class ServedEndpoint {
    public let client: RemoteClient
    /// The ids from the last `GET /v1/models` that answered.
    public private(set) var models: [String] = []
    /// Why the last listing failed (nil when it answered).
    public private(set) var failure: RemoteError?
    /// Whether the list was asked for at all.
    public private(set) var listed = false

    public init(client: RemoteClient) { self.client = client }

    public var endpoint: ServerEndpoint { client.endpoint }
    public var label: String { client.endpoint.label }

    /// Asks the server for its models (blocking the calling thread; Ctrl-C through `shouldStop`).
    @discardableResult
    public func refresh(shouldStop: @escaping () -> Bool = { false }) -> Result<[String], RemoteError> {
        let result = blocking(shouldStop: shouldStop, server: endpoint.displayURL) { [client] () async -> Result<[String], RemoteError> in
            do throws(RemoteError) { return .success(try await client.models()) } catch { return .failure(error) }
        }
        listed = true
        switch result {
        case let .success(ids):
            models = ids
            failure = nil
        case let .failure(error):
            failure = error
        }
        return result
    }
}

private final class BlockingBox<T>: @unchecked Sendable {
    var result: Result<T, RemoteError>?
    let done = DispatchSemaphore(value: 0)
    init() {}
}

/// Runs `body` in a task and waits for it, cancelling it when `shouldStop` turns true.
func blocking<T: Sendable>(shouldStop: () -> Bool, server: String,
                           _ body: @escaping @Sendable () async -> Result<T, RemoteError>) -> Result<T, RemoteError> {
    let box = BlockingBox<T>()
    let task = Task.detached {
        box.result = await body()
        box.done.signal()
    }
    while box.done.wait(timeout: .now() + 0.02) == .timedOut {
        if shouldStop() {
            task.cancel()
            if box.done.wait(timeout: .now() + 0.25) == .timedOut {
                return .failure(RemoteError(.cancelled, server: server, "cancelled"))
            }
            break
        }
    }
    return box.result ?? .failure(RemoteError(.cancelled, server: server, "cancelled"))
}
