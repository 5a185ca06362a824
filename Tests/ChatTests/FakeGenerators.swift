import Foundation
import ModelFiles
import Quantization
import Tokenizers
@testable import Chat
@testable import Inference

// Generators without model files, for the session's own logic: the context cut, the
// carried tokens, failures. The token-level fake has a real byte-level BPE tokenizer built
// in memory (every byte a token, ChatML's control tokens, and one merge so that a reply
// made of single bytes re-tokenizes differently) and a KV cache that behaves as the
// engine's does; its replies are scripted.

/// GPT-2's byte ↔ printable-character table (`bytes_to_unicode`), for the token texts.
private let byteTexts: [String] = {
    let printable = Array(33...126) + Array(161...172) + Array(174...255)
    var extra = 0
    return (0..<256).map { byte in
        if printable.contains(byte) { return String(UnicodeScalar(UInt8(byte))) }
        defer { extra += 1 }
        return String(UnicodeScalar(UInt32(256 + extra))!)
    }
}()

enum FakeVocabulary {
    /// Ids 0–255: the bytes; then `Hi` (the merge of `H` and `i`), `<|im_start|>`, `<|im_end|>`.
    static let hi = 256, imStart = 257, imEnd = 258

    static let tokenizer: Tokenizer = {
        let tokens = byteTexts + ["Hi", "<|im_start|>", "<|im_end|>"]
        let types = [Int](repeating: 1, count: 257) + [3, 3]
        let metadata: [String: GGUFValue] = [
            "tokenizer.ggml.model": .string("gpt2"),
            "tokenizer.ggml.pre": .string("gpt-2"),
            "tokenizer.ggml.tokens": .array(type: .string, tokens.map { .string($0) }),
            "tokenizer.ggml.token_type": .array(type: .int32, types.map { .int32(Int32($0)) }),
            "tokenizer.ggml.merges": .array(type: .string, [.string("H i")]),
            "tokenizer.ggml.bos_token_id": .uint32(UInt32(imStart)),
            "tokenizer.ggml.eos_token_id": .uint32(UInt32(imEnd)),
            "tokenizer.ggml.add_bos_token": .bool(false),
        ]
        return try! Tokenizer(metadata: metadata, source: "fake-vocab")
    }()

    /// One token per UTF-8 byte of `text`: what a model may generate, but not what `text`
    /// tokenizes to when it holds "Hi".
    static func bytes(_ text: String) -> [Int] { text.utf8.map(Int.init) }
}

/// ChatML, as SmolLM2's template minus its default system prompt.
let chatML = """
    {% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}\
    {% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}
    """

struct FakeFailure: Error, CustomStringConvertible, Equatable {
    var message: String
    var description: String { message }
}

/// A local model whose replies are scripted token lists; its cache keeps what was run
/// as `Engine`'s does (the prompt and the generated tokens fed back: all of them at
/// `eos`, all but the last at `length` or when stopped).
final class FakeTokenGenerator: TokenGenerator {
    let path: String
    let tokenizer = FakeVocabulary.tokenizer
    var chatTemplate: String? = chatML
    var samplingDefaults: [String: Double] = [:]
    let contextLength: Int
    var trainedContext: Int { contextLength }
    private(set) var cachedTokens: [Int] = []
    private(set) var lastPrefill: (reused: Int, computed: Int) = (0, 0)

    /// The next replies, in order (each without its stop token); "OK" when none is left.
    var replies: [[Int]] = []
    /// Every prompt it was given.
    private(set) var prompts: [[Int]] = []
    /// Thrown by the next `generate` after this many tokens of the reply were streamed.
    var failure: (afterTokens: Int, error: any Error)?
    /// Thrown by the next `setPrecision`.
    var precisionFailure: (any Error)?

    init(path: String = "/models/fake.gguf", contextLength: Int = 256) {
        self.path = path
        self.contextLength = contextLength
    }

    var descriptor: ModelDescriptor {
        ModelDescriptor(name: "Fake", generalName: "Fake Model", location: .local(path: path, precision: format.rawValue))
    }

    func resetCache() { cachedTokens.removeAll() }

    func generate(prompt: [Int], maxTokens: Int, sampling: SamplingParameters, shouldStop: () -> Bool,
                  onToken: (Int) -> Void) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw EngineError.emptyPrompt }
        guard prompt.count < contextLength else { throw EngineError.promptTooLong(tokens: prompt.count, context: contextLength) }
        prompts.append(prompt)
        var reuse = 0
        while reuse < min(cachedTokens.count, prompt.count - 1), cachedTokens[reuse] == prompt[reuse] { reuse += 1 }
        cachedTokens.removeLast(cachedTokens.count - reuse)
        lastPrefill = (reuse, prompt.count - reuse)
        var stats = GenerationStats()
        stats.promptTokens = prompt.count
        if shouldStop() { return GenerationResult(tokens: [], stopReason: .cancelled, stats: stats) }
        cachedTokens = prompt
        let script = replies.isEmpty ? FakeVocabulary.bytes("OK") : replies.removeFirst()
        let failure = self.failure
        self.failure = nil
        var generated: [Int] = []
        var stopReason = StopReason.eos
        for token in script + [FakeVocabulary.imEnd] {
            if let failure, generated.count == failure.afterTokens { throw failure.error }
            if token == FakeVocabulary.imEnd { stopReason = .eos; break }
            generated.append(token)
            onToken(token)
            if generated.count == maxTokens { stopReason = .length; break }
            if shouldStop() { stopReason = .cancelled; break }
            cachedTokens.append(token)
        }
        stats.generatedTokens = generated.count
        return GenerationResult(tokens: generated, stopReason: stopReason, stats: stats)
    }

    private(set) var format: WeightFormat = .q4
    var nativeFormat: WeightFormat { .q4 }
    var storedFormats: String { "Q4_1 (fake)" }

    func resolve(_ precision: Precision) throws -> WeightFormat {
        switch precision {
        case .native, .auto: .q4
        default: WeightFormat(rawValue: precision.rawValue) ?? .q4
        }
    }

    @discardableResult
    func setPrecision(_ precision: Precision, shouldStop: @escaping () -> Bool) throws -> WeightFormat {
        if let error = precisionFailure {
            precisionFailure = nil
            throw error
        }
        let new = try resolve(precision)
        if new != format { cachedTokens.removeAll() }
        format = new
        return new
    }

    var precisionOptions: [Footprint] { [] }

    private(set) var adapter: AdapterInfo?
    func setAdapter(_ path: String?) throws {
        guard let path else {
            adapter = nil
            return
        }
        guard path.hasSuffix(".lora") else { throw FakeFailure(message: "\(path): not an adapter") }
        adapter = AdapterInfo(path: path, sha256: String(repeating: "a", count: 64), format: "peft", weightCount: 2, maxRank: 4, byteCount: 64)
        cachedTokens.removeAll()
    }

    var memory: MemoryReport { MemoryReport(weightBytes: 1000, kvCacheBytes: 100, scratchBytes: 10, threads: 1) }
}

/// A served model whose replies are scripted text pieces.
final class FakeMessageGenerator: MessageGenerator {
    let descriptor: ModelDescriptor
    /// The next replies' pieces, in order.
    var replies: [[String]] = []
    /// What the server reports at the end (nil fields: it sent no usage).
    var report = MessageReply(stopReason: .eos)
    /// The next `send` throws this after so many pieces.
    var failure: (afterPieces: Int, error: any Error)?
    private(set) var requests: [MessageRequest] = []

    init(server: String = "http://127.0.0.1:8080", model: String = "served-q8") {
        descriptor = ModelDescriptor(name: model, location: .server(url: server, model: model))
    }

    func send(_ request: MessageRequest, shouldStop: () -> Bool, onText: (String) -> Void) throws -> MessageReply {
        requests.append(request)
        let pieces = replies.isEmpty ? ["OK"] : replies.removeFirst()
        let failure = self.failure
        self.failure = nil
        for (i, piece) in pieces.enumerated() {
            if let failure, i == failure.afterPieces { throw failure.error }
            if shouldStop() { return MessageReply(stopReason: .cancelled) }
            onText(piece)
        }
        if let failure, pieces.count == failure.afterPieces { throw failure.error }
        return report
    }
}

/// A session on a fake local model; `loader` builds the next ones (`/model`, `/reload`).
func fakeSession(contextLength: Int = 256, maxTokens: Int = 24, fake: FakeTokenGenerator? = nil) throws -> (ChatSession, FakeTokenGenerator) {
    let model = fake ?? FakeTokenGenerator(contextLength: contextLength)
    var conversation = Conversation()
    conversation.settings.temperature = 0
    conversation.settings.maxTokens = maxTokens
    let s = try ChatSession(generator: model, settings: EngineSettings(path: model.path), conversation: conversation) { settings in
        guard settings.path.hasSuffix(".gguf"), !settings.path.hasPrefix("/nonexistent") else {
            throw FakeFailure(message: "\(settings.path): no such file")
        }
        return FakeTokenGenerator(path: settings.path, contextLength: settings.context ?? contextLength)
    }
    s.now = { Date(timeIntervalSince1970: 1_795_000_000) }
    return (s, model)
}
