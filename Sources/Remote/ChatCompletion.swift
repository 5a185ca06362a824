import JSON

/// One message of the conversation sent to the server.
public struct RemoteMessage: Sendable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// Sampling settings and the reply's length limit; nil fields are not sent.
///
/// `temperature`, `topP`, `maxTokens` and `seed` are OpenAI's own fields. `topK`, `minP` and
/// `repeatPenalty` (sent as `top_k`, `min_p`, `repeat_penalty`) are llama-server's: vLLM reads
/// `top_k` and `min_p` and ignores `repeat_penalty` (its name is `repetition_penalty`), and
/// OpenAI's hosted API rejects all three with HTTP 400 ("Unrecognized request argument"), so
/// leave them nil for such servers.
public struct RemoteSettings: Sendable, Equatable {
    public var temperature: Double?
    public var topP: Double?
    public var topK: Int?
    public var minP: Double?
    public var repeatPenalty: Double?
    public var seed: Int?
    public var maxTokens: Int?

    public init(temperature: Double? = nil, topP: Double? = nil, topK: Int? = nil, minP: Double? = nil,
                repeatPenalty: Double? = nil, seed: Int? = nil, maxTokens: Int? = nil) {
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.minP = minP
        self.repeatPenalty = repeatPenalty
        self.seed = seed
        self.maxTokens = maxTokens
    }
}

/// A chat-completions request: the server applies its own chat template to `messages`.
public struct RemoteRequest: Sendable, Equatable {
    /// The served model's id (from `GET /v1/models`); llama-server answers with its one model whatever the name.
    public var model: String
    public var messages: [RemoteMessage]
    public var settings: RemoteSettings

    public init(model: String, messages: [RemoteMessage], settings: RemoteSettings = RemoteSettings()) {
        self.model = model
        self.messages = messages
        self.settings = settings
    }

    /// The JSON body of `POST /v1/chat/completions`.
    public func body(stream: Bool) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [
            ("model", .string(model)),
            ("messages", .array(messages.map { .object([("role", .string($0.role)), ("content", .string($0.content))]) })),
            ("stream", .bool(stream)),
        ]
        if stream { members.append(("stream_options", .object([("include_usage", .bool(true))]))) }
        if let v = settings.temperature { members.append(("temperature", .double(v))) }
        if let v = settings.topP { members.append(("top_p", .double(v))) }
        if let v = settings.maxTokens { members.append(("max_tokens", .int(v))) }
        if let v = settings.seed { members.append(("seed", .int(v))) }
        if let v = settings.topK { members.append(("top_k", .int(v))) }
        if let v = settings.minP { members.append(("min_p", .double(v))) }
        if let v = settings.repeatPenalty { members.append(("repeat_penalty", .double(v))) }
        return .object(members)
    }
}

/// llama-server's `timings` object (milliseconds and tokens per second, server-side).
public struct ServerTimings: Sendable, Equatable {
    /// Prompt tokens evaluated (the part not reused from the server's cache).
    public var promptTokens: Int
    public var promptMilliseconds: Double
    public var promptTokensPerSecond: Double
    public var predictedTokens: Int
    public var predictedMilliseconds: Double
    public var predictedTokensPerSecond: Double

    init?(_ json: JSONValue?) {
        guard let json, json.members != nil,
              let pn = json["prompt_n"]?.int, let pms = json["prompt_ms"]?.number,
              let dn = json["predicted_n"]?.int, let dms = json["predicted_ms"]?.number else { return nil }
        promptTokens = pn
        promptMilliseconds = pms
        predictedTokens = dn
        predictedMilliseconds = dms
        promptTokensPerSecond = json["prompt_per_second"]?.number ?? (pms > 0 ? Double(pn) * 1000 / pms : 0)
        predictedTokensPerSecond = json["predicted_per_second"]?.number ?? (dms > 0 ? Double(dn) * 1000 / dms : 0)
    }
}

/// What a reply cost, in Nibble's terms: tokens from the server's `usage` (llama-server's
/// `timings` when there is none), speeds from `timings` when the server sends them, otherwise
/// measured here; the time to the first token is always measured here (it includes the network).
public struct RemoteStats: Sendable, Equatable {
    /// `usage.prompt_tokens` (the whole prompt), else `timings.prompt_n`.
    public var promptTokens: Int?
    /// `usage.completion_tokens`, else `timings.predicted_n`.
    public var generatedTokens: Int?
    /// Seconds from sending the request to the first text (nil when no text came).
    public var timeToFirstToken: Double?
    /// Seconds from sending the request to the end of the reply.
    public var totalSeconds: Double
    /// `timings.prompt_per_second`; nil when the server does not report it.
    public var prefillTokensPerSecond: Double?
    /// `timings.predicted_per_second`, else (generated tokens - 1) over the time from the first
    /// text to the last (streamed replies with at least two tokens).
    public var decodeTokensPerSecond: Double?
    /// llama-server's own numbers, when present.
    public var serverTimings: ServerTimings?

    public init(promptTokens: Int? = nil, generatedTokens: Int? = nil, timeToFirstToken: Double? = nil, totalSeconds: Double = 0,
                prefillTokensPerSecond: Double? = nil, decodeTokensPerSecond: Double? = nil, serverTimings: ServerTimings? = nil) {
        self.promptTokens = promptTokens
        self.generatedTokens = generatedTokens
        self.timeToFirstToken = timeToFirstToken
        self.totalSeconds = totalSeconds
        self.prefillTokensPerSecond = prefillTokensPerSecond
        self.decodeTokensPerSecond = decodeTokensPerSecond
        self.serverTimings = serverTimings
    }
}

/// A reply, complete or not.
public struct RemoteCompletion: Sendable, Equatable {
    /// The text received (all of it so far, when interrupted).
    public var text: String
    /// `finish_reason`: "stop", "length", ...; nil when the reply was interrupted before it.
    public var finishReason: String?
    /// The model the server says answered.
    public var model: String?
    public var stats: RemoteStats
    /// Why the reply stopped early: the connection was lost (`.truncated`), the server went
    /// silent (`.timedOut`), sent a bad event (`.badResponse`) or the task was cancelled.
    public var interruption: RemoteError?
    public var interrupted: Bool { interruption != nil }

    public init(text: String = "", finishReason: String? = nil, model: String? = nil, stats: RemoteStats = RemoteStats(),
                interruption: RemoteError? = nil) {
        self.text = text
        self.finishReason = finishReason
        self.model = model
        self.stats = stats
        self.interruption = interruption
    }
}

extension JSONValue {
    /// Any JSON number as a Double.
    var number: Double? {
        switch self {
        case let .int(i): return Double(i)
        case let .double(d): return d
        default: return nil
        }
    }
}
