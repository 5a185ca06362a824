import Foundation

/// One turn of a conversation, as the conversation file stores it (DESIGN.md, "Conversation
/// file"). Assistant turns also say which model and precision wrote them, and how fast.
public struct Message: Codable, Equatable, Sendable {
    public enum Role: String, Codable, Sendable, CaseIterable {
        case system, user, assistant
    }

    public var role: Role
    public var content: String
    public var created: Date
    /// Assistant turns: the model's name (a served model's id on its server).
    public var model: String?
    /// Assistant turns of a local model: the precision the linear layers ran at (`q8`, `f32`…).
    public var precision: String?
    /// Assistant turns of a served model: the server's URL, without credentials.
    public var server: String?
    /// Assistant turns: the LoRA adapter that was on (nil: none).
    public var adapter: AdapterReference?
    /// Assistant turns: counts and timings of the generation.
    public var stats: TurnStats?
    /// Assistant turns that were sampled (temperature > 0): the seed they used, so a
    /// replay can draw the same tokens.
    public var seed: UInt64?

    public init(role: Role, content: String, created: Date = Date(), model: String? = nil, precision: String? = nil,
                stats: TurnStats? = nil, seed: UInt64? = nil, adapter: AdapterReference? = nil, server: String? = nil) {
        self.role = role
        self.server = server
        self.adapter = adapter
        self.content = content
        self.created = created
        self.model = model
        self.precision = precision
        self.stats = stats
        self.seed = seed
    }
}

/// A LoRA adapter as conversation files record it: where it was and which weights it held.
public struct AdapterReference: Codable, Equatable, Sendable {
    public var path: String
    /// sha256 of the adapter's weights file.
    public var sha256: String

    public init(path: String, sha256: String) {
        self.path = path
        self.sha256 = sha256
    }
}

extension Message {
    /// A reply stopped (Ctrl-C) before its first token: nothing worth keeping.
    public var isEmptyInterruption: Bool { stats?.interrupted == true && stats?.generatedTokens == 0 && content.isEmpty }
}

/// The `stats` object of an assistant turn.
public struct TurnStats: Codable, Equatable, Sendable {
    public var promptTokens: Int
    public var generatedTokens: Int
    /// Seconds from sending the prompt to the first generated token.
    public var ttftSeconds: Double
    public var prefillTokensPerSecond: Double
    public var decodeTokensPerSecond: Double
    /// `eos`, `length` or `cancelled`.
    public var stopReason: String
    /// Ctrl-C stopped the reply; the text kept is what had been generated.
    public var interrupted: Bool

    public init(promptTokens: Int, generatedTokens: Int, ttftSeconds: Double, prefillTokensPerSecond: Double,
                decodeTokensPerSecond: Double, stopReason: String, interrupted: Bool) {
        self.promptTokens = promptTokens
        self.generatedTokens = generatedTokens
        self.ttftSeconds = ttftSeconds
        self.prefillTokensPerSecond = prefillTokensPerSecond
        self.decodeTokensPerSecond = decodeTokensPerSecond
        self.stopReason = stopReason
        self.interrupted = interrupted
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", generatedTokens = "generated_tokens", ttftSeconds = "ttft_s"
        case prefillTokensPerSecond = "prefill_tok_s", decodeTokensPerSecond = "decode_tok_s"
        case stopReason = "stop_reason", interrupted
    }
}
