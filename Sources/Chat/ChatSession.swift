import Foundation
import Inference
import ModelFiles
import Quantization
import Templates
import Tokenizers

/// How to (re)build the engine: the model file and the flags that shaped it.
public struct EngineSettings: Sendable, Equatable {
    public var path: String
    /// What the user asked for (`native`, `q8`…); kept across `/model` so a new model
    /// loads at the precision the conversation runs at.
    public var precision: Precision
    public var threads: Int?
    public var context: Int?
    public var memoryLimit: Int?
    /// The LoRA adapter to put on (a PEFT folder or a GGUF LoRA file).
    public var adapter: String?
    /// The KV cache's type (nil: each precision's default).
    public var kvCache: KVCacheType?

    public init(path: String, precision: Precision = .native, threads: Int? = nil, context: Int? = nil, memoryLimit: Int? = nil,
                adapter: String? = nil, kvCache: KVCacheType? = nil) {
        self.path = path
        self.precision = precision
        self.threads = threads
        self.context = context
        self.memoryLimit = memoryLimit
        self.adapter = adapter
        self.kvCache = kvCache
    }

}

/// What happened while a reply was produced, for the terminal.
public enum ChatEvent {
    /// Decoded reply text, as soon as it is complete UTF-8.
    case text(String)
    /// One line the user should see (a turn dropped to fit the context, …).
    case notice(String)
    /// Work that may take a while before the first text ("re-reading 566 tokens of
    /// history at q8"); the next `.text` ends it.
    case progress(String)
}

/// One re-run user turn of `/replay`.
public struct ReplayTurn: Sendable {
    /// 1-based index among the conversation's user turns.
    public var number: Int
    public var user: String
    /// The reply the file recorded (nil if the turn had none), and at which precision.
    public var recorded: String?
    public var recordedPrecision: String?
    public var reply: String
    /// Token index of the first difference between the recorded and the new reply; nil when equal.
    public var firstDivergence: Int?
    public var stats: TurnStats
    /// The recorded reply was sampled without a recorded seed: a difference may be
    /// sampling alone, not the precision.
    public var unseeded: Bool
    /// `firstDivergence` counts characters, not tokens (a served model: no tokenizer here).
    public var divergenceInCharacters = false
    public var changed: Bool { firstDivergence != nil }
}

/// One side of `/compare`: the local model at a precision, or another model (served).
public enum CompareSide {
    case precision(Precision)
    case model(any Generator)
}

/// One side of `/compare`.
public struct ComparedReply: Sendable {
    /// The local precision, or the served model's id.
    public var precision: String
    /// The server that wrote the reply (nil: a local model).
    public var server: String?
    public var reply: String
    public var stats: TurnStats
    public var weightBytes: Int
    public var residentBytes: Int?
}

/// A reply that failed after part of it had arrived (a served model's connection lost
/// mid-stream): the partial reply was kept in the conversation, marked interrupted, as a
/// reply stopped with Ctrl-C is.
public struct InterruptedReply: Error, CustomStringConvertible {
    public var reply: Message
    public var cause: any Error
    public var description: String { "\(cause) (the partial reply is kept)" }
}

/// A conversation with a model: history → chat template → tokens → model → streamed
/// reply → history. The model is a `Generator`: a local `TokenGenerator` gets tokens (the
/// session keeps what its KV cache holds in step with the history so that a new turn only
/// prefills the tokens after the previous reply), a served `MessageGenerator` gets the
/// messages. The session owns the model so that a failed `/model` or `/precision` leaves
/// everything as it was.
public final class ChatSession {
    /// The model replies come from.
    public private(set) var generator: any Generator
    /// How to build the local model: the file and the flags that shaped it (also while a
    /// served model is in use, so `/model PATH` can go back to a file).
    public private(set) var engineSettings: EngineSettings
    /// Builds a local model from settings (`/model`, `/reload`, `/set context`).
    let loader: (EngineSettings) throws -> any TokenGenerator
    /// The chat template a local model's prompts are rendered with (nil for a served model:
    /// the server applies its own).
    public private(set) var template: ChatTemplate?
    /// Where the template came from: "model", a fallback name, a file, or the server.
    public private(set) var templateOrigin: String
    /// `--template`: used for every model instead of the model's own.
    public let templateOverride: String?
    public var conversation: Conversation
    /// The last turn's numbers and prompt (`/stats`).
    public private(set) var lastStats: TurnStats?
    public private(set) var lastPrompt: RenderedPrompt?
    /// Where the conversation is saved after every turn (nil: not saved).
    public var autosave: Autosave?
    /// The file the autosave writes (nil before the first save).
    public var autosavePath: String? { autosave?.path }
    /// The clock templates see through `strftime_now`.
    public var now: () -> Date = Date.init
    /// Text and tokens of the last prompt plus its reply, as the KV cache holds them: the
    /// next prompt extends this text, so its tokens are carried over rather than
    /// re-tokenized (a reply re-tokenized can split differently than it was generated).
    private var carried: (text: String, tokens: [Int])?

    /// A session on the local model `settings` describe (the engine).
    public convenience init(settings: EngineSettings, templateOverride: String? = nil, conversation: Conversation = Conversation()) throws {
        try self.init(settings: settings, templateOverride: templateOverride, conversation: conversation, loader: LocalEngine.init(settings:))
    }

    /// A session on the local model `loader` builds from `settings` (tests pass a fake).
    public convenience init(settings: EngineSettings, templateOverride: String? = nil, conversation: Conversation = Conversation(),
                            loader: @escaping (EngineSettings) throws -> any TokenGenerator) throws {
        try self.init(generator: loader(settings), settings: settings, templateOverride: templateOverride, conversation: conversation,
                      loader: loader)
    }

    /// A session on `generator`, local or served; `settings` and `loader` say how to build
    /// a local model when one is asked for (`/model PATH`).
    public init(generator: any Generator, settings: EngineSettings, templateOverride: String? = nil, conversation: Conversation = Conversation(),
                loader: @escaping (EngineSettings) throws -> any TokenGenerator = LocalEngine.init(settings:)) throws {
        (template, templateOrigin, templateWarning) = try Self.template(for: generator, override: templateOverride)
        self.generator = generator
        self.engineSettings = settings
        self.loader = loader
        self.templateOverride = templateOverride
        self.conversation = conversation
        if conversation.settings.context == nil { self.conversation.settings.context = settings.context }
    }

    /// The model in use, when it runs here.
    public var local: (any TokenGenerator)? { generator as? any TokenGenerator }
    /// The model in use, when a server runs it.
    public var served: (any MessageGenerator)? { generator as? any MessageGenerator }
    /// Which model is in use and where.
    public var descriptor: ModelDescriptor { generator.descriptor }

    /// The local model, or an error saying that `what` needs one.
    public func localModel(for what: String) throws -> any TokenGenerator {
        if let local { return local }
        let d = descriptor
        throw ChatError("\(what) needs a local model: \(d.name) is served by \(d.server ?? "a server")")
    }

    /// The model's name as people know it (`ModelName`: the file name without its
    /// quantization suffix; a served model's id); `general.name` is shown beside it by `/show`.
    public var modelName: String { descriptor.name }

    /// Why the model's own template is not used (it does not parse, or fails on a plain
    /// conversation: a template is code inside the model file); nil when it is.
    public private(set) var templateWarning: String?

    /// The template to use: `--template`, else the model's own, else a fallback chosen by
    /// the control tokens the vocabulary has. A model template that fails to parse or to
    /// render a one-message conversation (within the interpreter's limits) is replaced by
    /// the fallback, with a warning.
    /// A served model has none here: the server applies its own.
    static func template(for generator: any Generator, override: String?) throws -> (ChatTemplate?, String, warning: String?) {
        guard let model = generator as? any TokenGenerator else {
            return (nil, "the server's own (\(generator.descriptor.server ?? "served"))", nil)
        }
        if let override { return (try PromptLibrary.template(override), override, nil) }
        var warning: String?
        if let source = model.chatTemplate {
            let path = if case let .local(path, _) = model.descriptor.location { path } else { model.descriptor.name }
            let name = URL(fileURLWithPath: path).lastPathComponent + ": tokenizer.chat_template"
            do {
                let template = try ChatTemplate(source: source, name: name)
                let builder = PromptBuilder(template: template, tokenizer: model.tokenizer, now: Date.init)
                _ = try builder.render([Message(role: .user, content: "Hello!")], addGenerationPrompt: true)
                return (template, "model", nil)
            } catch let error as TemplateError {
                warning = "the model's chat template failed (\(error)); using a fallback"
            }
        }
        let name = fallbackTemplateName(model.tokenizer)
        let why = warning == nil ? "the model has none" : "the model's failed"
        return (try PromptLibrary.template(name), "\(name) (fallback: \(why))", warning)
    }

    static func fallbackTemplateName(_ tokenizer: Tokenizer) -> String {
        let has = { (text: String) in tokenizer.tokenID(forText: text) != nil }
        if has("<|im_start|>") { return "chatml" }
        if has("<|start_header_id|>") { return "llama3" }
        if has("<start_of_turn>") { return "gemma" }
        if has("[INST]") { return "mistral" }
        if tokenizer.kind == .sentencePiece { return "llama2" }
        return "chatml"
    }

    /// Asked while a template renders, so that Ctrl-C stops a runaway one.
    public var renderShouldStop: (@Sendable () -> Bool)?

    /// The prompt builder of a local model (its template and tokenizer).
    func builder(_ model: any TokenGenerator) throws -> PromptBuilder {
        guard let template else { throw ChatError("no chat template for \(model.descriptor.name)") }
        return PromptBuilder(template: template, tokenizer: model.tokenizer, now: now, shouldStop: renderShouldStop)
    }

    // MARK: - Prompts

    /// Renders and tokenizes `messages` for generation. When they do not fit the context
    /// window with room for a reply, the oldest exchanges (never the system prompt, never
    /// the last message) are left out of what the model sees.
    ///
    /// The cut is searched from the newest exchange backwards: keep 1, 2, 4, … exchanges
    /// until a prompt no longer fits, then bisect between the last two counts. Each render
    /// then covers at most about twice what the window holds, so the cost follows the
    /// window, not the length of the history (a 100,000-message file costs one pass to find
    /// the exchange boundaries). Assumes that keeping more exchanges never makes the prompt
    /// shorter, which holds for chat templates.
    public func prompt(for messages: [Message]) throws -> RenderedPrompt {
        let model = try localModel(for: "a rendered prompt")
        let builder = try builder(model)
        let window = model.contextLength
        let reserve = min(conversation.settings.maxTokens, max(1, window / 4))
        let system = messages.first?.role == .system ? Array(messages.prefix(1)) : []
        let turns = messages.dropFirst(system.count)
        // Where each exchange starts: a user message and the replies up to the next one.
        var starts = [turns.startIndex]
        for i in turns.indices.dropFirst() where turns[i].role == .user { starts.append(i) }
        let exchanges = turns.isEmpty ? 0 : starts.count

        var rendered: [Int: RenderedPrompt] = [:]
        func keeping(_ kept: Int) throws -> RenderedPrompt {
            if let prompt = rendered[kept] { return prompt }
            let from = kept >= exchanges ? turns.startIndex : starts[exchanges - kept]
            let prompt = try render(system + turns[from...], dropped: exchanges - max(kept, 0), builder: builder, tokenizer: model.tokenizer)
            rendered[kept] = prompt
            return prompt
        }
        func fits(_ kept: Int) throws -> Bool { try keeping(kept).tokens.count + reserve <= window }

        guard exchanges > 1 else {
            let prompt = try keeping(exchanges)
            guard prompt.tokens.count + reserve <= window || prompt.tokens.count < window else { throw tooLong(prompt, window) }
            return prompt
        }
        if try !fits(1) {
            let prompt = try keeping(1)
            guard prompt.tokens.count < window else { throw tooLong(prompt, window) }
            return prompt
        }
        // Grow while it fits: `good` fits, `bad` does not (or is past the history).
        var good = 1, bad = 2
        while bad < exchanges, try fits(bad) {
            good = bad
            bad *= 2
        }
        if bad >= exchanges {
            if try fits(exchanges) { return try keeping(exchanges) }
            bad = exchanges
        }
        while bad - good > 1 {
            let middle = (good + bad) / 2
            if try fits(middle) { good = middle } else { bad = middle }
        }
        return try keeping(good)
    }

    private func tooLong(_ prompt: RenderedPrompt, _ window: Int) -> ChatError {
        ChatError("the message needs \(prompt.tokens.count) tokens but the context window holds \(window); shorten it or `/set context N`")
    }

    private func render(_ messages: [Message], dropped: Int, builder: PromptBuilder, tokenizer: Tokenizer) throws -> RenderedPrompt {
        let text: String
        do {
            text = try builder.render(messages, addGenerationPrompt: true)
        } catch let error as TemplateError {
            throw ChatError("chat template (\(templateOrigin)): \(error)")
        }
        let segments = builder.segments(of: text, messages: messages, addGenerationPrompt: true)
        if let carried, text.utf8.starts(with: carried.text.utf8) {
            let tail = tokenizer.encode(segments: segments.dropping(bytes: carried.text.utf8.count))
            return RenderedPrompt(text: text, tokens: carried.tokens + tail, droppedTurns: dropped, carriedTokens: carried.tokens.count)
        }
        return RenderedPrompt(text: text, tokens: builder.tokens(segments, fullText: text), droppedTurns: dropped, carriedTokens: 0)
    }

    /// The system prompt the template adds when the conversation has none (SmolLM2's
    /// "You are a helpful AI assistant named SmolLM…"), found by rendering a message with
    /// and without a system prompt: nil when the template adds none.
    public func templateDefaultSystemPrompt() -> String? {
        let system = "\u{F8F2}", user = "\u{F8F3}"
        guard let model = local, let builder = try? builder(model),
              let plain = try? builder.render([Message(role: .user, content: user)], addGenerationPrompt: false),
              let withSystem = try? builder.render([Message(role: .system, content: system), Message(role: .user, content: user)],
                                                   addGenerationPrompt: false),
              let mark = withSystem.range(of: system) else { return nil }
        let prefix = withSystem[..<mark.lowerBound], suffix = withSystem[mark.upperBound...]
        guard plain.count > prefix.count + suffix.count, plain.hasPrefix(prefix), plain.hasSuffix(suffix) else { return nil }
        let text = String(plain.dropFirst(prefix.count).dropLast(suffix.count))
        return text.isEmpty ? nil : text
    }

    /// The prompt the next message would be sent with (`/template`, `/tokens`): the
    /// history and, if given, a user message.
    public func pendingPrompt(adding text: String? = nil) throws -> RenderedPrompt {
        var messages = conversation.messages
        if let text { messages.append(Message(role: .user, content: text)) }
        return try prompt(for: messages)
    }

    // MARK: - Turns

    /// Sends a user message and streams the reply; the reply (partial if interrupted) is
    /// appended to the conversation and returned.
    /// A reply stopped before its first token is not kept, nor is its message (the
    /// caller puts the text back on the edit line): the returned reply is empty and
    /// interrupted, and the conversation is as it was.
    @discardableResult
    public func send(_ text: String, shouldStop: () -> Bool = { false }, events: (ChatEvent) -> Void) throws -> Message {
        let user = Message(role: .user, content: text, created: now())
        let reply: Message
        do {
            reply = try respond(to: conversation.messages + [user], shouldStop: shouldStop, events: events)
        } catch let failure as InterruptedReply {
            conversation.messages += [user, failure.reply]
            recordModel()
            autosave(events: events)
            throw failure
        }
        if reply.isEmptyInterruption { return reply }
        conversation.messages.append(user)
        conversation.messages.append(reply)
        recordModel()
        autosave(events: events)
        return reply
    }

    /// Generates the last reply again (`/retry`); nil when there is no user message yet.
    @discardableResult
    public func retry(shouldStop: () -> Bool = { false }, events: (ChatEvent) -> Void) throws -> Message? {
        var messages = conversation.messages
        while messages.last?.role == .assistant { messages.removeLast() }
        guard messages.last?.role == .user else { return nil }
        let reply: Message
        do {
            reply = try respond(to: messages, shouldStop: shouldStop, events: events)
        } catch let failure as InterruptedReply {
            conversation.messages = messages + [failure.reply]
            recordModel()
            autosave(events: events)
            throw failure
        }
        if reply.isEmptyInterruption { return reply }
        conversation.messages = messages + [reply]
        recordModel()
        autosave(events: events)
        return reply
    }

    /// Removes the last exchange (`/undo`) and returns the user's text, so the caller can
    /// put it back on the edit line; nil when there is nothing to undo.
    public func undo() -> String? {
        guard let last = conversation.messages.lastIndex(where: { $0.role == .user }) else { return nil }
        let text = conversation.messages[last].content
        conversation.messages.removeSubrange(last...)
        return text
    }

    /// Forgets the messages (the system prompt stays) and the cached tokens (`/clear`):
    /// a new conversation, autosaved to a new file. Returns the file that keeps the
    /// previous turns (nil if there were none).
    @discardableResult
    public func clear() throws -> String? {
        let previous = try keepPreviousTurns()
        conversation.messages = conversation.messages.first?.role == .system ? [conversation.messages[0]] : []
        conversation.created = now()
        carried = nil
        local?.resetCache()
        return previous
    }

    /// Replaces the conversation (`/load`, `--load`); sampling settings come with it, and
    /// it continues in a new autosave file. Returns the file that keeps the previous
    /// turns (nil if there were none).
    @discardableResult
    public func replaceConversation(_ loaded: Conversation) throws -> String? {
        let previous = try keepPreviousTurns()
        let context = conversation.settings.context
        conversation = loaded
        conversation.settings.context = context
        carried = nil
        return previous
    }

    /// Autosaves what the file does not hold yet and closes the file: the next save
    /// starts a new one. Returns where the turns are.
    private func keepPreviousTurns() throws -> String? {
        guard let autosave else { return nil }
        if autosave.isBehind(conversation) { try autosave.save(conversation) }
        let path = autosave.path
        autosave.startNewFile()
        return path
    }

    /// Prompts longer than this (to compute) announce themselves (`.progress`).
    public static let progressPrefillTokens = 128

    private func respond(to messages: [Message], settings: ChatSettings? = nil, shouldStop: () -> Bool,
                         events: (ChatEvent) -> Void) throws -> Message {
        var settings = settings ?? conversation.settings
        // A sampled reply draws its seed here, so the message can record it.
        let sampled = settings.temperature > 0
        if sampled, settings.seed == nil { settings.seed = UInt64.random(in: 0...UInt64(UInt32.max)) }
        let seed = sampled ? settings.seed : nil
        if let served { return try respond(served, to: messages, settings: settings, seed: seed, shouldStop: shouldStop, events: events) }
        let model = try localModel(for: "a reply")
        let prompt = try prompt(for: messages)
        if prompt.droppedTurns > 0 {
            let n = prompt.droppedTurns
            events(.notice("context: left out the oldest " + (n == 1 ? "exchange" : "\(n) exchanges")
                + " to fit the \(model.contextLength)-token window (the history keeps " + (n == 1 ? "it)" : "them)")))
        }
        lastPrompt = prompt
        // What the cache does not hold is prefilled before the first token: after a switch,
        // a /load or a new context, that is the whole history.
        let cached = model.cachedTokens
        let reused = zip(cached, prompt.tokens).prefix { $0 == $1 }.count
        let toCompute = prompt.tokens.count - reused
        let descriptor = model.descriptor
        if toCompute >= Self.progressPrefillTokens {
            events(.progress("reading \(toCompute) tokens of " + (reused == 0 && messages.count > 1 ? "history" : "prompt")
                + " at \(descriptor.precision ?? "?")"))
        }
        var decoder = StreamingDecoder(tokenizer: model.tokenizer)
        var reply = ""
        let room = model.contextLength - prompt.tokens.count
        let result = try model.generate(prompt: prompt.tokens, maxTokens: min(settings.maxTokens, room), sampling: settings.sampling,
                                        shouldStop: shouldStop) { token in
            let piece = decoder.append(token)
            reply += piece
            events(.text(piece))
        }
        let tail = decoder.finish()
        reply += tail
        events(.text(tail))
        carried = (prompt.text + reply, prompt.tokens + result.tokens)
        let stats = TurnStats(promptTokens: prompt.tokens.count, generatedTokens: result.tokens.count,
                              ttftSeconds: result.stats.ttftSeconds, prefillTokensPerSecond: result.stats.prefillTokensPerSecond,
                              decodeTokensPerSecond: result.stats.decodeTokensPerSecond, stopReason: result.stopReason.rawValue,
                              interrupted: result.stopReason == .cancelled)
        lastStats = stats
        return Message(role: .assistant, content: reply, created: now(), model: descriptor.name, precision: descriptor.precision, stats: stats,
                       seed: seed, adapter: adapterReference)
    }

    /// A served model's reply: the messages go as they are (the server renders them with its
    /// own template and keeps its own cache). A stream that fails after some text keeps that
    /// text as an interrupted reply (`InterruptedReply`); one that fails before any text
    /// changes nothing.
    private func respond(_ model: any MessageGenerator, to messages: [Message], settings: ChatSettings, seed: UInt64?, shouldStop: () -> Bool,
                         events: (ChatEvent) -> Void) throws -> Message {
        lastPrompt = nil
        let request = MessageRequest(messages: messages.map { MessageRequest.Turn(role: $0.role, content: $0.content) }, settings: settings)
        let descriptor = model.descriptor
        let clock = ContinuousClock()
        let started = clock.now
        var firstText: ContinuousClock.Instant?
        var reply = "", pieces = 0
        func message(_ result: MessageReply) -> Message {
            // Servers that send no usage: count the streamed pieces (one token each on
            // llama-server and vLLM) and time them here.
            let generated = result.generatedTokens ?? pieces
            let decodeSeconds = firstText.map { (clock.now - $0).seconds } ?? 0
            let measuredDecode = generated > 1 && decodeSeconds > 0 ? Double(generated - 1) / decodeSeconds : 0
            let stats = TurnStats(promptTokens: result.promptTokens ?? 0, generatedTokens: generated,
                                  ttftSeconds: result.ttftSeconds ?? firstText.map { ($0 - started).seconds } ?? 0,
                                  prefillTokensPerSecond: result.prefillTokensPerSecond ?? 0,
                                  decodeTokensPerSecond: result.decodeTokensPerSecond ?? measuredDecode,
                                  stopReason: result.stopReason.rawValue, interrupted: result.stopReason == .cancelled)
            lastStats = stats
            return Message(role: .assistant, content: reply, created: now(), model: descriptor.name, stats: stats, seed: seed,
                           server: descriptor.server)
        }
        do {
            let result = try model.send(request, shouldStop: shouldStop) { piece in
                guard !piece.isEmpty else { return }
                if firstText == nil { firstText = clock.now }
                reply += piece
                pieces += 1
                events(.text(piece))
            }
            return message(result)
        } catch {
            guard !reply.isEmpty else { throw error }
            throw InterruptedReply(reply: message(MessageReply(stopReason: .cancelled)), cause: error)
        }
    }

    private func recordModel() {
        let descriptor = generator.descriptor
        conversation.model = descriptor.reference
        conversation.precision = descriptor.precision
        conversation.adapter = adapterReference
    }

    /// The adapter that is on, as conversation files record it.
    public var adapterReference: AdapterReference? { local?.adapter?.reference }

    // MARK: - Adapters

    /// Puts the LoRA adapter at `path` on, or takes the adapter off (nil). On failure the
    /// previous adapter stays. The history is read again on the next turn.
    public func setAdapter(_ path: String?) throws {
        try localModel(for: "an adapter").setAdapter(path)
        engineSettings.adapter = path
        carried = nil
    }

    private var autosaveFailed = false
    private func autosave(events: (ChatEvent) -> Void) {
        guard let autosave else { return }
        do {
            try autosave.save(conversation)
            autosaveFailed = false
        } catch {
            if !autosaveFailed { events(.notice("autosave failed: \(error)")) }
            autosaveFailed = true
        }
    }

    // MARK: - Model and precision

    /// Switches the precision; on failure the previous weights stay and keep serving.
    @discardableResult
    public func setPrecision(_ precision: Precision, shouldStop: @escaping () -> Bool = { false }) throws -> WeightFormat {
        let format = try localModel(for: "a precision").setPrecision(precision, shouldStop: shouldStop)
        engineSettings.precision = precision
        return format
    }

    /// Loads another model (`/model`); the conversation stays. On failure nothing changes.
    /// The adapter stays on if it fits the new model; if not, the model loads without it
    /// and the returned notice says so.
    @discardableResult
    public func loadModel(path: String) throws -> String? {
        var settings = engineSettings
        settings.path = path
        guard let adapter = settings.adapter else {
            try replaceEngine(settings)
            return nil
        }
        do {
            try replaceEngine(settings)
            return nil
        } catch let error as EngineError {
            guard case .adapterDoesNotFit = error else { throw error }
            settings.adapter = nil
            try replaceEngine(settings)
            return "adapter \(adapter) taken off: \(error)"
        }
    }

    /// Reads the model file again (`/reload`).
    public func reload() throws {
        _ = try localModel(for: "/reload")
        try replaceEngine(engineSettings)
    }

    /// Rebuilds the engine with another context window (`/set context N`).
    /// nil: the model's default window.
    public func setContext(_ context: Int?) throws {
        _ = try localModel(for: "a context window")
        var settings = engineSettings
        settings.context = context
        try replaceEngine(settings)
        conversation.settings.context = context
    }

    private func replaceEngine(_ settings: EngineSettings) throws {
        // The old model is dropped only after the new one and its template are ready.
        let newModel = try loader(settings)
        try use(newModel)
        engineSettings = settings
    }

    /// Switches to `generator` (a served model, or a local one built elsewhere); the
    /// conversation stays. On failure (its template) nothing changes.
    public func use(_ generator: any Generator) throws {
        let (newTemplate, origin, warning) = try Self.template(for: generator, override: templateOverride)
        self.generator = generator
        template = newTemplate
        templateOrigin = origin
        templateWarning = warning
        carried = nil
    }

    /// Runs `body` with `generator` in use (its template, no carried tokens), then puts the
    /// model in use before back as it was; the conversation is not touched.
    func with<T>(_ generator: any Generator, _ body: () throws -> T) throws -> T {
        if generator === self.generator { return try body() }
        let saved = (self.generator, template, templateOrigin, templateWarning, carried)
        try use(generator)
        defer { (self.generator, template, templateOrigin, templateWarning, carried) = saved }
        return try body()
    }

    /// The local model: the one in use, else the file of `engineSettings` loaded for the
    /// occasion (`/compare` or `/replay` at a local precision while a served model is in use).
    public func localModelOrLoad() throws -> any TokenGenerator {
        if let local { return local }
        return try loader(engineSettings)
    }

    /// The local file at `path` (and `precision`, else the one in use), loaded with the
    /// session's other settings but not put in use (`/replay --model PATH`).
    public func loadLocal(path: String, precision: Precision? = nil) throws -> any TokenGenerator {
        var settings = engineSettings
        settings.path = path
        if let precision { settings.precision = precision }
        return try loader(settings)
    }

    /// Runs `body` at `precision`, then switches back to the precision in use before.
    private func at<T>(_ precision: Precision?, _ body: () throws -> T) throws -> T {
        guard let precision else { return try body() }
        let model = try localModel(for: "a precision")
        let previous = model.format
        try model.setPrecision(precision, shouldStop: { false })
        defer { _ = try? model.setPrecision(Precision(rawValue: previous.rawValue) ?? .native, shouldStop: { false }) }
        return try body()
    }

    // MARK: - Replay and compare

    /// Which adapter `/replay` runs each turn with.
    public enum ReplayAdapter: Equatable, Sendable {
        /// The one the recorded reply was written with (none if it had none).
        case asRecorded
        /// This one for every turn (nil: none).
        case fixed(String?)
    }

    /// Re-runs each user turn of `recorded` with the recorded history before it, at
    /// `precision` if given (then switches back) and with the adapter `adapter` says
    /// (then puts back the one that was on), and reports each new reply beside the
    /// recorded one. The session's own conversation is not changed.
    public func replay(_ recorded: Conversation, on target: (any Generator)? = nil, precision: Precision? = nil,
                       adapter: ReplayAdapter = .asRecorded, greedy: Bool = false,
                       shouldStop: () -> Bool = { false },
                       onTurnStart: (_ number: Int, _ user: String, _ recorded: Message?) -> Void = { _, _, _ in }, events: (ChatEvent) -> Void,
                       onTurn: (ReplayTurn) -> Void) throws -> [ReplayTurn] {
        var target = target ?? generator
        // A precision is a local one: on a served model, the local file at that precision.
        if precision != nil, !(target is any TokenGenerator) { target = try localModelOrLoad() }
        if !(target is any TokenGenerator), case let .fixed(path) = adapter, path != nil {
            throw ChatError("/replay --adapter needs a local model: \(target.descriptor.name) is served by \(target.descriptor.server ?? "a server")")
        }
        return try with(target) {
            let model = local
            let saved = carried
            let savedAdapter = model?.adapter?.path
            defer {
                carried = saved
                if let model, model.adapter?.path != savedAdapter { try? model.setAdapter(savedAdapter) }
            }
            if let model, case let .fixed(path) = adapter { try model.setAdapter(path) }
            return try at(model == nil ? nil : precision) {
                var turns: [ReplayTurn] = []
                var number = 0
                for (i, message) in recorded.messages.enumerated() where message.role == .user {
                    if shouldStop() { break }
                    number += 1
                    let next = recorded.messages.indices.contains(i + 1) && recorded.messages[i + 1].role == .assistant ? recorded.messages[i + 1] : nil
                    onTurnStart(number, message.content, next)
                    // The reply's recorded settings and seed (greedy when asked): the same
                    // tokens come back at the same precision.
                    var settings = recorded.settings
                    if greedy { settings.temperature = 0 }
                    let unseeded = !greedy && settings.temperature > 0 && next?.seed == nil && settings.seed == nil
                    if !greedy, let seed = next?.seed { settings.seed = seed }
                    if let model {
                        if adapter == .asRecorded, next != nil, next?.adapter?.path != model.adapter?.path {
                            try model.setAdapter(next?.adapter?.path)
                        }
                        if adapter == .asRecorded, let want = next?.adapter, let now = model.adapter, want.sha256 != now.sha256 {
                            events(.notice("adapter \(want.path) has changed since the reply was written (its sha256 differs)"))
                        }
                    }
                    let reply: Message
                    do {
                        reply = try respond(to: Array(recorded.messages[...i]), settings: settings, shouldStop: shouldStop, events: events)
                    } catch let failure as InterruptedReply {
                        // A served stream that broke: the replay stops there, nothing is recorded.
                        throw ChatError("\(failure.cause) (the replay stopped at turn \(number))")
                    }
                    var divergence: Int?
                    if let model {
                        let newIDs = model.tokenizer.encode(reply.content)
                        if let oldIDs = next.map({ model.tokenizer.encode($0.content) }) {
                            let common = zip(newIDs, oldIDs).prefix { $0 == $1 }.count
                            if common < max(newIDs.count, oldIDs.count) { divergence = common }
                        } else {
                            divergence = 0
                        }
                    } else if let old = next?.content {
                        let (a, b) = (Array(reply.content), Array(old))
                        let common = zip(a, b).prefix { $0 == $1 }.count
                        if common < max(a.count, b.count) { divergence = common }
                    } else {
                        divergence = 0
                    }
                    let turn = ReplayTurn(number: number, user: message.content, recorded: next?.content, recordedPrecision: next?.precision,
                                          reply: reply.content, firstDivergence: divergence, stats: reply.stats!, unseeded: unseeded,
                                          divergenceInCharacters: model == nil)
                    turns.append(turn)
                    onTurn(turn)
                    if reply.stats?.interrupted == true { break }
                }
                return turns
            }
        }
    }

    /// Answers the same message at each precision in turn (`/compare`); the conversation
    /// is not changed. With no text, the last user message is answered again.
    public func compare(_ precisions: [Precision], text: String?, shouldStop: () -> Bool = { false },
                        onStart: (String) -> Void = { _ in }, events: (ChatEvent) -> Void) throws -> [ComparedReply] {
        try compare(precisions.map { CompareSide.precision($0) }, text: text, shouldStop: shouldStop, onStart: onStart, events: events)
    }

    /// Answers the same message on each side in turn: the local model at a precision (the
    /// file loaded for the occasion when a served model is in use), or another model.
    public func compare(_ sides: [CompareSide], text: String?, shouldStop: () -> Bool = { false },
                        onStart: (String) -> Void = { _ in }, events: (ChatEvent) -> Void) throws -> [ComparedReply] {
        var messages = conversation.messages
        if let text {
            messages.append(Message(role: .user, content: text, created: now()))
        } else {
            while messages.last?.role == .assistant { messages.removeLast() }
            guard messages.last?.role == .user else { throw ChatError("nothing to compare yet: give a message, e.g. /compare q8 q4 Hello") }
        }
        // One seed for both sides, so sampling differences come from the weights alone.
        var settings = conversation.settings
        if settings.seed == nil { settings.seed = UInt64.random(in: 0...UInt64(UInt32.max)) }
        var results: [ComparedReply] = []
        let saved = carried
        defer { carried = saved }
        // The local model in use goes back to its precision; one loaded here is dropped.
        var borrowed: (any TokenGenerator)?
        if let model = local, sides.contains(where: { if case .precision = $0 { true } else { false } }) {
            let previous = model.format
            borrowed = model
            defer { _ = try? model.setPrecision(Precision(rawValue: previous.rawValue) ?? .native, shouldStop: { false }) }
            return try compareSides(sides, messages: messages, settings: settings, local: &borrowed, results: &results,
                                    shouldStop: shouldStop, onStart: onStart, events: events)
        }
        return try compareSides(sides, messages: messages, settings: settings, local: &borrowed, results: &results,
                                shouldStop: shouldStop, onStart: onStart, events: events)
    }

    private func compareSides(_ sides: [CompareSide], messages: [Message], settings: ChatSettings, local: inout (any TokenGenerator)?,
                              results: inout [ComparedReply], shouldStop: () -> Bool, onStart: (String) -> Void,
                              events: (ChatEvent) -> Void) throws -> [ComparedReply] {
        for side in sides {
            if shouldStop() { break }
            switch side {
            case let .precision(precision):
                if local == nil {
                    var settings = engineSettings
                    settings.precision = precision
                    local = try loader(settings)
                }
                let model = local!
                try model.setPrecision(precision, shouldStop: { false })
                try with(model) {
                    let name = model.descriptor.precision ?? precision.rawValue
                    onStart(name)
                    let reply = try respond(to: messages, settings: settings, shouldStop: shouldStop, events: events)
                    results.append(ComparedReply(precision: name, reply: reply.content, stats: reply.stats!,
                                                 weightBytes: model.memory.weightBytes, residentBytes: MemoryLimit.residentBytes()))
                }
            case let .model(generator):
                try with(generator) {
                    let d = generator.descriptor
                    onStart(d.server.map { "\(d.name) on \($0)" } ?? "\(d.name) at \(d.precision ?? "?")")
                    let reply: Message
                    do {
                        reply = try respond(to: messages, settings: settings, shouldStop: shouldStop, events: events)
                    } catch let failure as InterruptedReply {
                        throw ChatError("\(failure.cause) (/compare stopped)")
                    }
                    let memory = (generator as? any TokenGenerator)?.memory.weightBytes ?? 0
                    results.append(ComparedReply(precision: d.precision ?? d.name, server: d.server, reply: reply.content, stats: reply.stats!,
                                                 weightBytes: memory, residentBytes: MemoryLimit.residentBytes()))
                }
            }
        }
        return results
    }
}
