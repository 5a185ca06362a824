import Foundation
import Inference
import Quantization
import Tokenizers

// MARK: - The seam between a chat and a model

/// Which model a generator runs and where: what `/show` names, what a reply records.
public struct ModelDescriptor: Sendable, Equatable {
    public enum Location: Sendable, Equatable {
        /// Weights this process runs: the file or folder as the user named it, and the
        /// precision in use (`q4`, `native`…).
        case local(path: String, precision: String)
        /// An OpenAI-compatible server: its base URL (no credentials) and the id of the
        /// model it serves.
        case server(url: String, model: String)
    }

    /// The name people know the model by (`ModelName` for a file, the served model's id).
    public var name: String
    /// `general.name` of a local file, when it has one.
    public var generalName: String?
    public var location: Location

    public init(name: String, generalName: String? = nil, location: Location) {
        self.name = name
        self.generalName = generalName
        self.location = location
    }

    public var isLocal: Bool { if case .local = location { true } else { false } }
    /// The local precision in use (nil for a served model: the server chose it).
    public var precision: String? { if case let .local(_, precision) = location { precision } else { nil } }
    /// The server's URL (nil for a local model).
    public var server: String? { if case let .server(url, _) = location { url } else { nil } }
    /// How the conversation file names the model.
    public var reference: Conversation.ModelReference {
        switch location {
        case let .local(path, _): Conversation.ModelReference(path: path, name: name)
        case let .server(url, model): Conversation.ModelReference(server: url, name: model)
        }
    }
}

/// What every model a chat can talk to has, local or served. A reply is asked for through
/// one of the two refinements: `TokenGenerator` (the session renders the template and
/// keeps the KV cache in step) or `MessageGenerator` (the server does both).
///
/// Calls are synchronous and on one thread at a time, as the REPL makes them. Stopping is
/// `shouldStop`, asked while a reply is produced (the REPL's Ctrl-C flag): a generator
/// must return soon after it turns true — per token locally, and for a served model also
/// while no event arrives (poll it on a timer and close the stream).
public protocol Generator: AnyObject {
    var descriptor: ModelDescriptor { get }
}

/// A local model at token level: the session renders the chat template, tokenizes,
/// carries the KV cache across turns and cuts the context to fit. `LocalEngine` (the
/// engine) is one; tests use a fake.
public protocol TokenGenerator: Generator {
    var tokenizer: Tokenizer { get }
    /// The Jinja chat template the model ships (`tokenizer.chat_template`), if any.
    var chatTemplate: String? { get }
    /// The model's own `general.sampling.*` values (`temp`, `top_k`…).
    var samplingDefaults: [String: Double] { get }
    /// Positions the KV cache holds.
    var contextLength: Int { get }
    /// The context the model was trained for.
    var trainedContext: Int { get }
    /// Tokens whose keys and values are cached, position by position.
    var cachedTokens: [Int] { get }
    /// How the last `generate`'s prompt split into tokens found in the cache and computed.
    var lastPrefill: (reused: Int, computed: Int) { get }
    /// Forgets the cached tokens: the next prompt is computed from position 0.
    func resetCache()
    /// Generates up to `maxTokens` tokens after `prompt`, reusing the cached prefix, and
    /// calls `onToken` with each one. The result's tokens exclude the stop token.
    func generate(prompt: [Int], maxTokens: Int, sampling: SamplingParameters, shouldStop: () -> Bool,
                  onToken: (Int) -> Void) throws -> GenerationResult

    // Precision: switching must leave the previous weights serving when it fails.
    /// The linear layers' format in use.
    var format: WeightFormat { get }
    /// The format holding most of the file's linear weights.
    var nativeFormat: WeightFormat { get }
    /// What the file stores, in a few words ("Q4_1 (linear), Q8_0 (embedding)").
    var storedFormats: String { get }
    @discardableResult
    func setPrecision(_ precision: Precision, shouldStop: @escaping () -> Bool) throws -> WeightFormat
    /// The format `precision` would run at, without switching (`/replay --precision`'s label).
    func resolve(_ precision: Precision) throws -> WeightFormat
    /// Every precision with its memory, as `/precision` lists them.
    var precisionOptions: [Footprint] { get }

    // Adapters.
    var adapter: AdapterInfo? { get }
    /// Puts a LoRA adapter on (nil: takes it off); on failure the previous one stays.
    func setAdapter(_ path: String?) throws

    /// What the model holds in memory (`/show`, `/compare`).
    var memory: MemoryReport { get }
}

/// A served model: it gets the conversation as messages, applies its own template and
/// streams text. It has no tokenizer, no KV cache here and no local precisions. The
/// remote client (OpenAI chat completions) is to be wrapped into one.
public protocol MessageGenerator: Generator {
    /// Sends `request` and calls `onText` with each piece of the reply as it arrives.
    /// Throws when the reply could not be completed (connection lost, HTTP error, a
    /// malformed stream); the pieces already passed to `onText` were shown and are kept by
    /// the session as an interrupted reply.
    func send(_ request: MessageRequest, shouldStop: () -> Bool, onText: (String) -> Void) throws -> MessageReply
}

/// One request to a served model: the system prompt and history as role/content pairs,
/// the sampling settings and the longest reply.
public struct MessageRequest: Sendable, Equatable {
    public struct Turn: Sendable, Equatable {
        public var role: Message.Role
        public var content: String
        public init(role: Message.Role, content: String) {
            self.role = role
            self.content = content
        }
    }

    /// The system prompt first (when there is one), then the turns, the new user message last.
    public var messages: [Turn]
    /// Sampling settings and `maxTokens` (the seed is drawn when the reply is sampled).
    public var settings: ChatSettings
    public var maxTokens: Int { settings.maxTokens }

    public init(messages: [Turn], settings: ChatSettings) {
        self.messages = messages
        self.settings = settings
    }

    /// The system prompt (the first message when its role is `system`).
    public var systemPrompt: String? { messages.first?.role == .system ? messages[0].content : nil }
}

/// How a served reply ended, with what the server reported of it (OpenAI `usage`,
/// llama-server's `timings`): nil where it sent nothing, and the session measures it.
public struct MessageReply: Sendable, Equatable {
    public var stopReason: StopReason
    public var promptTokens: Int?
    public var generatedTokens: Int?
    public var ttftSeconds: Double?
    public var prefillTokensPerSecond: Double?
    public var decodeTokensPerSecond: Double?

    public init(stopReason: StopReason, promptTokens: Int? = nil, generatedTokens: Int? = nil, ttftSeconds: Double? = nil,
                prefillTokensPerSecond: Double? = nil, decodeTokensPerSecond: Double? = nil) {
        self.stopReason = stopReason
        self.promptTokens = promptTokens
        self.generatedTokens = generatedTokens
        self.ttftSeconds = ttftSeconds
        self.prefillTokensPerSecond = prefillTokensPerSecond
        self.decodeTokensPerSecond = decodeTokensPerSecond
    }
}

/// The LoRA adapter a local model has on.
public struct AdapterInfo: Sendable, Equatable {
    public var path: String
    public var sha256: String
    /// `peft` or `gguf`.
    public var format: String
    /// Weights it adapts, and the largest rank among them.
    public var weightCount: Int
    public var maxRank: Int
    public var byteCount: Int

    public init(path: String, sha256: String, format: String, weightCount: Int, maxRank: Int, byteCount: Int) {
        self.path = path
        self.sha256 = sha256
        self.format = format
        self.weightCount = weightCount
        self.maxRank = maxRank
        self.byteCount = byteCount
    }

    public var reference: AdapterReference { AdapterReference(path: path, sha256: sha256) }
}

/// Bytes a local model holds (`/show`).
public struct MemoryReport: Sendable, Equatable {
    public var weightBytes: Int
    public var kvCacheBytes: Int
    /// The KV cache's element type ("f16", "q8"…).
    public var kvCacheType: String
    public var scratchBytes: Int
    public var threads: Int

    public init(weightBytes: Int, kvCacheBytes: Int, kvCacheType: String = "f16", scratchBytes: Int, threads: Int) {
        self.weightBytes = weightBytes
        self.kvCacheBytes = kvCacheBytes
        self.kvCacheType = kvCacheType
        self.scratchBytes = scratchBytes
        self.threads = threads
    }
}

// MARK: - The engine as a token generator

/// `Engine` behind the `TokenGenerator` seam (an adapter rather than a conformance, so
/// the engine keeps its own names: its `generate` has a benchmark flag, its `adapter` is
/// the loaded weights).
public final class LocalEngine: TokenGenerator {
    public let engine: Engine

    public init(_ engine: Engine) { self.engine = engine }

    public convenience init(settings: EngineSettings) throws {
        self.init(try Engine(path: settings.path, precision: settings.precision, threads: settings.threads, context: settings.context,
                             memoryLimit: settings.memoryLimit, kvCache: settings.kvCache, adapter: settings.adapter))
    }

    public var descriptor: ModelDescriptor {
        ModelDescriptor(name: engine.info.displayName, generalName: engine.info.generalName,
                        location: .local(path: engine.info.path, precision: engine.plan.name))
    }
    public var tokenizer: Tokenizer { engine.tokenizer }
    public var chatTemplate: String? { engine.info.chatTemplate }
    public var samplingDefaults: [String: Double] { engine.info.samplingDefaults }
    public var contextLength: Int { engine.contextLength }
    public var trainedContext: Int { engine.config.contextLength }
    public var cachedTokens: [Int] { engine.cachedTokens }
    public var lastPrefill: (reused: Int, computed: Int) { engine.lastPrefill }
    public func resetCache() { engine.resetCache() }

    public func generate(prompt: [Int], maxTokens: Int, sampling: SamplingParameters, shouldStop: () -> Bool,
                         onToken: (Int) -> Void) throws -> GenerationResult {
        try engine.generate(prompt: prompt, maxTokens: maxTokens, sampling: sampling, shouldStop: shouldStop, onToken: onToken)
    }

    public var format: WeightFormat { engine.format }
    public var nativeFormat: WeightFormat { engine.nativeFormat }
    public var storedFormats: String { WeightPlan.native(engine.source).summary }
    @discardableResult
    public func setPrecision(_ precision: Precision, shouldStop: @escaping () -> Bool) throws -> WeightFormat {
        try engine.setPrecision(precision, shouldStop: shouldStop)
    }
    public func resolve(_ precision: Precision) throws -> WeightFormat {
        try Footprint.resolve(precision, file: engine.source, config: engine.config, context: engine.contextLength,
                              memoryLimit: engine.memoryLimit)
    }
    public var precisionOptions: [Footprint] {
        Footprint.all(file: engine.source, config: engine.config, context: engine.contextLength, memoryLimit: engine.memoryLimit)
    }

    public var adapter: AdapterInfo? {
        engine.adapter.map { AdapterInfo(path: $0.path, sha256: $0.sha256, format: $0.format.rawValue, weightCount: $0.targets.count,
                                         maxRank: $0.maxRank, byteCount: $0.byteCount) }
    }
    public func setAdapter(_ path: String?) throws { try engine.setAdapter(path) }

    public var memory: MemoryReport {
        MemoryReport(weightBytes: engine.weightBytes, kvCacheBytes: engine.kvCacheBytes, kvCacheType: engine.plan.kvCache.rawValue,
                     scratchBytes: engine.scratchBytes,
                     threads: engine.pool.threadCount)
    }
}
