import Foundation
import Inference

/// Sampling and length settings of a conversation (the file's `settings` object).
public struct ChatSettings: Codable, Equatable, Sendable {
    public var temperature: Double = 0.8
    public var topK: Int = 40
    public var topP: Double = 0.95
    public var minP: Double = 0.05
    public var repeatPenalty: Double = 1.0
    /// nil: a new random seed for every reply.
    public var seed: UInt64?
    /// Longest reply, in tokens.
    public var maxTokens: Int = 512
    /// Context window in tokens the engine was asked for (nil: the model's default).
    public var context: Int?

    public init() {}

    public var sampling: SamplingParameters {
        var p = SamplingParameters()
        p.temperature = Float(temperature)
        p.topK = topK
        p.topP = Float(topP)
        p.minP = Float(minP)
        p.repeatPenalty = Float(repeatPenalty)
        p.seed = seed
        return p
    }

    enum CodingKeys: String, CodingKey {
        case temperature, topK = "top_k", topP = "top_p", minP = "min_p", repeatPenalty = "repeat_penalty"
        case seed, maxTokens = "max_tokens", context
    }

    // Optional settings are written as null rather than left out, so every file has them all.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(temperature, forKey: .temperature)
        try c.encode(topK, forKey: .topK)
        try c.encode(topP, forKey: .topP)
        try c.encode(minP, forKey: .minP)
        try c.encode(repeatPenalty, forKey: .repeatPenalty)
        try c.encode(seed, forKey: .seed)
        try c.encode(maxTokens, forKey: .maxTokens)
        try c.encode(context, forKey: .context)
    }

    /// The names `/set` accepts, in the order `/set` lists them.
    public static let parameterNames = ["temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed", "max_tokens", "context"]

    /// Sets one parameter from text (`/set top_k 20`); the error says what is accepted.
    public mutating func set(_ name: String, to text: String) throws {
        func number(_ range: ClosedRange<Double>) throws -> Double {
            guard let v = Double(text), v.isFinite, range.contains(v) else {
                throw ChatError("\(name) must be a number in \(range.lowerBound.formatted())...\(range.upperBound.formatted()), not '\(text)'")
            }
            return v
        }
        func integer(_ range: ClosedRange<Int>) throws -> Int {
            guard let v = Int(text), range.contains(v) else {
                throw ChatError("\(name) must be a whole number in \(range.lowerBound)...\(range.upperBound), not '\(text)'")
            }
            return v
        }
        switch name {
        case "temperature": temperature = try number(0...100)
        case "top_k": topK = try integer(0...1_000_000)
        case "top_p": topP = try number(0...1)
        case "min_p": minP = try number(0...1)
        case "repeat_penalty":
            repeatPenalty = try number(0...100)
            if repeatPenalty == 0 { throw ChatError("repeat_penalty must be > 0 (1 = off)") }
        case "seed":
            if ["random", "none", "off"].contains(text.lowercased()) { seed = nil; return }
            guard let v = UInt64(text) else { throw ChatError("seed must be a whole number ≥ 0 or 'random', not '\(text)'") }
            seed = v
        case "max_tokens": maxTokens = try integer(1...1 << 20)
        case "context": context = try integer(16...1 << 20)
        default:
            throw ChatError("unknown setting '\(name)'" + (closest(to: name, in: Self.parameterNames).map { ", did you mean '\($0)'?" } ?? "")
                + " (settings: \(Self.parameterNames.joined(separator: ", ")))")
        }
    }

    /// `name = value` lines for `/set` and `/show`.
    public var described: [(String, String)] {
        [("temperature", temperature.formatted()), ("top_k", String(topK)), ("top_p", topP.formatted()),
         ("min_p", minP.formatted()), ("repeat_penalty", repeatPenalty.formatted()),
         ("seed", seed.map(String.init) ?? "random"), ("max_tokens", String(maxTokens)),
         ("context", context.map(String.init) ?? "model default")]
    }
}

/// A saved chat: the system prompt and messages, the settings, and where they came from.
/// The file format (DESIGN.md "Conversation file", `Tools/conversation.schema.json`) is
/// versioned; the system prompt is the first message with role `system`, so OpenAI-style
/// tools read the messages as they are.
public struct Conversation: Codable, Equatable, Sendable {
    public static let formatName = "nibble.conversation"
    public static let currentVersion = 1

    public struct ModelReference: Codable, Equatable, Sendable {
        public var path: String
        public var name: String
        public init(path: String, name: String) {
            self.path = path
            self.name = name
        }
    }

    public var created: Date
    public var model: ModelReference?
    /// The precision the conversation last ran at.
    public var precision: String?
    public var settings: ChatSettings
    public var messages: [Message]

    public init(created: Date = Date(), settings: ChatSettings = ChatSettings(), messages: [Message] = []) {
        self.created = created
        self.settings = settings
        self.messages = messages
    }

    /// The system prompt: the text of a leading `system` message.
    public var systemPrompt: String? {
        get { messages.first?.role == .system ? messages[0].content : nil }
        set {
            if messages.first?.role == .system { messages.removeFirst() }
            if let newValue, !newValue.isEmpty { messages.insert(Message(role: .system, content: newValue), at: 0) }
        }
    }

    /// Messages after the system prompt.
    public var turns: ArraySlice<Message> { messages.first?.role == .system ? messages.dropFirst() : messages[...] }

    enum CodingKeys: String, CodingKey {
        case format, version, created, model, precision, adapter, settings, messages
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let format = try c.decode(String.self, forKey: .format)
        guard format == Self.formatName else {
            throw ChatError("\"format\" is '\(format)', not '\(Self.formatName)'")
        }
        let version = try c.decode(Int.self, forKey: .version)
        guard version == Self.currentVersion else {
            throw ChatError("version \(version) is not supported (this Nibble reads version \(Self.currentVersion))")
        }
        created = try c.decode(Date.self, forKey: .created)
        model = try c.decodeIfPresent(ModelReference.self, forKey: .model)
        precision = try c.decodeIfPresent(String.self, forKey: .precision)
        settings = try c.decodeIfPresent(ChatSettings.self, forKey: .settings) ?? ChatSettings()
        messages = try c.decode([Message].self, forKey: .messages)
        if let misplaced = messages.dropFirst().firstIndex(where: { $0.role == .system }) {
            throw ChatError("messages[\(misplaced)]: a system message may only come first")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.formatName, forKey: .format)
        try c.encode(Self.currentVersion, forKey: .version)
        try c.encode(created, forKey: .created)
        try c.encode(model, forKey: .model)
        try c.encode(precision, forKey: .precision)
        try c.encodeNil(forKey: .adapter)  // LoRA adapters: not yet supported
        try c.encode(settings, forKey: .settings)
        try c.encode(messages, forKey: .messages)
    }
}

// MARK: - Files

extension Conversation {
    /// Reads a conversation file; the error names the file and what is wrong with it.
    public static func load(from path: String) throws -> Conversation {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file"
            throw ChatError("\(path): \(reason)")
        }
        do {
            return try JSONDecoder.conversation.decode(Conversation.self, from: data)
        } catch let error as ChatError {
            throw ChatError("\(path): \(error.message)")
        } catch let error as DecodingError {
            throw ChatError("\(path): not a Nibble conversation: \(error.shortDescription)")
        } catch {
            throw ChatError("\(path): not a Nibble conversation: \(error)")
        }
    }

    /// The file's bytes: pretty-printed JSON with sorted keys and a final newline.
    public func encoded() throws -> Data {
        try JSONEncoder.conversation.encode(self) + Data("\n".utf8)
    }

    /// Writes the file atomically: a temporary file beside it, flushed, then renamed over it.
    public func save(to path: String) throws {
        try AtomicFile.write(encoded(), to: path)
    }

    /// A Markdown transcript (`/export`).
    public func markdown() -> String {
        var out = "# Conversation"
        if let model { out += " with \(model.name)" }
        out += "\n\n*Started \(ISO8601DateFormatter().string(from: created))"
        if let precision { out += " · \(precision)" }
        out += "*\n"
        for message in messages {
            switch message.role {
            case .system: out += "\n## System\n\n"
            case .user: out += "\n## User\n\n"
            case .assistant:
                var details = [message.model, message.precision].compactMap { $0 }
                if let stats = message.stats {
                    details.append("\(stats.generatedTokens) tokens, \(String(format: "%.1f", stats.decodeTokensPerSecond)) tok/s")
                    if stats.interrupted { details.append("interrupted") }
                }
                out += "\n## Assistant" + (details.isEmpty ? "" : " (\(details.joined(separator: " · ")))") + "\n\n"
            }
            out += message.content.trimmingCharacters(in: .newlines) + "\n"
        }
        return out
    }
}

extension JSONEncoder {
    static var conversation: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(ISO8601.string(from: date))
        }
        return e
    }
}

extension JSONDecoder {
    static var conversation: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            let text = try c.decode(String.self)
            guard let date = ISO8601.date(from: text) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "'\(text)' is not an ISO 8601 date")
            }
            return date
        }
        return d
    }
}

/// ISO 8601 UTC timestamps, with fractional seconds when they are not whole.
enum ISO8601 {
    static func string(from date: Date) -> String {
        let whole = date.timeIntervalSince1970.rounded(.down) == date.timeIntervalSince1970
        let f = ISO8601DateFormatter()
        f.formatOptions = whole ? [.withInternetDateTime] : [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    static func date(from text: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: text) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: text)
    }
}

extension DecodingError {
    /// "messages[2].role: …" — where in the file, and what.
    var shortDescription: String {
        func path(_ context: Context) -> String {
            var out = ""
            for key in context.codingPath {
                if let i = key.intValue { out += "[\(i)]" } else { out += (out.isEmpty ? "" : ".") + key.stringValue }
            }
            return out.isEmpty ? "" : out + ": "
        }
        switch self {
        case let .keyNotFound(key, context): return path(context) + "missing \"\(key.stringValue)\""
        case let .typeMismatch(type, context): return path(context) + "expected \(type)"
        case let .valueNotFound(type, context): return path(context) + "expected \(type), found null"
        case let .dataCorrupted(context):
            if context.codingPath.isEmpty {
                let detail = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey].map { " (\($0))" } ?? ""
                return "invalid JSON" + detail
            }
            return path(context) + context.debugDescription
        @unknown default: return "\(self)"
        }
    }
}
