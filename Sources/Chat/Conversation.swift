import Foundation
import Inference
import ModelFiles

/// Sampling and length settings of a conversation (the file's `settings` object).
public struct ChatSettings: Codable, Equatable, Sendable {
    public var temperature: Double = 0.8
    public var topK: Int = 40
    public var topP: Double = 0.95
    public var minP: Double = 0.05
    /// 1.1 over the last 64 tokens, as Ollama: small models loop without it.
    public var repeatPenalty: Double = 1.1
    /// nil: a new random seed for every reply.
    public var seed: UInt64?
    /// Longest reply, in tokens.
    public var maxTokens: Int = 512
    /// Context window in tokens the engine was asked for (nil: the model's default).
    public var context: Int?

    public init() {}

    /// Nibble's defaults with the model's own generation settings where the file has
    /// them (`general.sampling.*`, which llama.cpp's converter writes from the model's
    /// generation_config.json). Values out of range are ignored.
    public init(modelDefaultsFrom model: ModelInfo) { self.init(modelDefaults: model.samplingDefaults) }

    /// The same from `general.sampling.*` values by key without the prefix (`temp`…).
    public init(modelDefaults: [String: Double]) {
        func take(_ key: String, _ name: String, _ apply: (inout ChatSettings, Double) -> Void) {
            // Stored as f32: keep the decimal it was written as (0.3, not 0.30000001192…).
            guard let stored = modelDefaults[key] else { return }
            let value = Double(Float(stored).description) ?? stored
            guard (try? Self.check(name, value)) != nil else { return }
            apply(&self, value)
        }
        take("temp", "temperature") { $0.temperature = $1 }
        take("top_k", "top_k") { $0.topK = Int($1) }
        take("top_p", "top_p") { $0.topP = $1 }
        take("min_p", "min_p") { $0.minP = $1 }
        take("penalty_repeat", "repeat_penalty") { $0.repeatPenalty = $1 }
    }

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

    /// What each numeric setting accepts: `/set`, the command line and conversation files
    /// use these same ranges.
    public static let ranges: [String: ClosedRange<Double>] = [
        "temperature": 0...100, "top_k": 0...1_000_000, "top_p": 0...1, "min_p": 0...1,
        "repeat_penalty": 0...100, "max_tokens": 1...Double(1 << 20), "context": 16...Double(1 << 20),
    ]
    static let integerSettings: Set<String> = ["top_k", "max_tokens", "context"]

    /// Checks one value against its range; the error says what is accepted.
    public static func check(_ name: String, _ value: Double, shown: String? = nil) throws {
        guard let range = ranges[name] else { return }
        let text = shown ?? value.formatted()
        if integerSettings.contains(name) {
            guard value.isFinite, value.rounded() == value, range.contains(value) else {
                throw ChatError("\(name) must be a whole number in \(Int(range.lowerBound))...\(Int(range.upperBound)), not \(text)")
            }
        } else {
            guard value.isFinite, range.contains(value) else {
                throw ChatError("\(name) must be a number in \(range.lowerBound.formatted())...\(range.upperBound.formatted()), not \(text)")
            }
        }
        if name == "repeat_penalty", value == 0 { throw ChatError("repeat_penalty must be > 0 (1 = off), not \(text)") }
    }

    /// Checks every setting (a conversation file's, or the command line's).
    public func validate() throws {
        for (name, value) in [("temperature", temperature), ("top_k", Double(topK)), ("top_p", topP), ("min_p", minP),
                              ("repeat_penalty", repeatPenalty), ("max_tokens", Double(maxTokens))] {
            try Self.check(name, value)
        }
        if let context { try Self.check("context", Double(context)) }
    }

    /// Sets one parameter from text (`/set top_k 20`); the error says what is accepted.
    public mutating func set(_ name: String, to text: String) throws {
        func number() throws -> Double {
            guard let v = Double(text) else {
                try Self.check(name, .nan, shown: "'\(text)'")
                return .nan
            }
            try Self.check(name, v, shown: "'\(text)'")
            return v
        }
        switch name {
        case "temperature": temperature = try number()
        case "top_k": topK = Int(try number())
        case "top_p": topP = try number()
        case "min_p": minP = try number()
        case "repeat_penalty": repeatPenalty = try number()
        case "seed":
            if ["random", "none", "off"].contains(text.lowercased()) { seed = nil; return }
            guard let v = UInt64(text) else { throw ChatError("seed must be a whole number ≥ 0 or 'random', not '\(text)'") }
            seed = v
        case "max_tokens": maxTokens = Int(try number())
        case "context":
            if ["default", "model", "none"].contains(text.lowercased()) { context = nil; return }
            context = Int(try number())
        default:
            throw ChatError("unknown setting '\(name)'" + (closest(to: name, in: Self.parameterNames).map { ", did you mean '\($0)'?" } ?? "")
                + " (settings: \(Self.parameterNames.joined(separator: ", ")))")
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = ChatSettings()
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature) ?? defaults.temperature
        topK = try c.decodeIfPresent(Int.self, forKey: .topK) ?? defaults.topK
        topP = try c.decodeIfPresent(Double.self, forKey: .topP) ?? defaults.topP
        minP = try c.decodeIfPresent(Double.self, forKey: .minP) ?? defaults.minP
        repeatPenalty = try c.decodeIfPresent(Double.self, forKey: .repeatPenalty) ?? defaults.repeatPenalty
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens) ?? defaults.maxTokens
        context = try c.decodeIfPresent(Int.self, forKey: .context)
        do {
            try validate()
        } catch let error as ChatError {
            throw ChatError("settings." + error.message)
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

    /// The model a conversation ran on: a local file (`{"path", "name"}`) or a served
    /// model (`{"server", "name"}`: the server's URL without credentials and the id it
    /// serves the model under).
    public struct ModelReference: Codable, Equatable, Sendable {
        public enum Location: Equatable, Sendable {
            case file(String)
            case server(String)
        }

        public var location: Location
        public var name: String

        public init(path: String, name: String) {
            location = .file(path)
            self.name = name
        }

        /// `url` is recorded without its user, password, query and fragment (where API keys
        /// hide), so a conversation file never holds a credential.
        public init(server url: String, name: String) {
            location = .server(Self.withoutCredentials(url))
            self.name = name
        }

        /// The file or folder (nil for a served model).
        public var path: String? { if case let .file(path) = location { path } else { nil } }
        /// The server's URL (nil for a local file).
        public var server: String? { if case let .server(url) = location { url } else { nil } }

        /// `url` without user, password, query and fragment; unparseable text is kept up to
        /// its first `?` or `#` with anything before an `@` dropped.
        public static func withoutCredentials(_ url: String) -> String {
            if var parts = URLComponents(string: url), parts.scheme != nil, parts.host != nil {
                parts.user = nil
                parts.password = nil
                parts.query = nil
                parts.fragment = nil
                if let clean = parts.string { return clean }
            }
            var text = Substring(url)
            if let cut = text.firstIndex(where: { $0 == "?" || $0 == "#" }) { text = text[..<cut] }
            if let at = text.lastIndex(of: "@") {
                let scheme = text.range(of: "://").map { text[..<$0.upperBound] } ?? ""
                text = scheme + text[text.index(after: at)...]
            }
            return String(text)
        }

        enum CodingKeys: String, CodingKey { case path, server, name }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            switch (try c.decodeIfPresent(String.self, forKey: .path), try c.decodeIfPresent(String.self, forKey: .server)) {
            case let (path?, nil): location = .file(path)
            case let (nil, server?): location = .server(server)
            case (_?, _?):
                throw DecodingError.dataCorruptedError(forKey: .server, in: c, debugDescription: "a model has a \"path\" or a \"server\", not both")
            case (nil, nil):
                throw DecodingError.keyNotFound(CodingKeys.path, .init(codingPath: c.codingPath, debugDescription: "a model needs a \"path\" or a \"server\""))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            switch location {
            case let .file(path): try c.encode(path, forKey: .path)
            case let .server(url): try c.encode(url, forKey: .server)
            }
            try c.encode(name, forKey: .name)
        }
    }

    public var created: Date
    public var model: ModelReference?
    /// The precision the conversation last ran at.
    public var precision: String?
    /// The LoRA adapter the conversation last ran with (nil: none).
    public var adapter: AdapterReference?
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
        adapter = try c.decodeIfPresent(AdapterReference.self, forKey: .adapter)
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
        try c.encode(adapter, forKey: .adapter)
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
        return try decode(data, path: path)
    }

    /// Parses the bytes of a conversation file; errors name `path`.
    public static func decode(_ data: Data, path: String) throws -> Conversation {
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

    /// Writes the file atomically (a private temporary beside it, flushed, renamed over
    /// it). Unless `force`, an existing file is replaced only if it is an earlier save of
    /// this same conversation (same `created` instant).
    public func save(to path: String, force: Bool = false) throws {
        if !force, let problem = replacementProblem(at: path, isOurs: { Self.isSave(of: created, at: $0) }) {
            throw ChatError(problem)
        }
        try AtomicFile.write(encoded(), to: path)
    }

    /// Writes the Markdown transcript atomically; an existing file is replaced only if it
    /// is an earlier transcript of this conversation, unless `force`.
    public func export(to path: String, force: Bool = false) throws {
        if !force, let problem = replacementProblem(at: path, isOurs: { Self.isTranscript(of: created, at: $0) }) {
            throw ChatError(problem)
        }
        try AtomicFile.write(Data(markdown().utf8), to: path)
    }

    /// Why writing to `path` would destroy something else, or nil when it would not.
    func replacementProblem(at path: String, isOurs: (String) -> Bool) -> String? {
        guard let kind = AtomicFile.fileKind(path) else { return nil }
        if kind == S_IFDIR { return "\(path) is a folder" }
        if isOurs(path) { return nil }
        return "\(path) already exists and is not an earlier save of this conversation"
    }

    /// Whether `path` holds a conversation file of the conversation created at `created`.
    static func isSave(of created: Date, at path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        // A conversation file is JSON; anything over 256 MiB is not one of ours.
        guard let data = try? handle.read(upToCount: 256 << 20),
              let other = try? JSONDecoder.conversation.decode(Conversation.self, from: data) else { return false }
        return ISO8601.string(from: other.created) == ISO8601.string(from: created)  // as the file stores it
    }

    /// The first line of every transcript: it says which conversation the file holds.
    static func transcriptMarker(_ created: Date) -> String { "<!-- nibble.conversation created \(ISO8601.string(from: created)) -->" }

    static func isTranscript(of created: Date, at path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 256) else { return false }
        return String(decoding: head, as: UTF8.self).hasPrefix(transcriptMarker(created) + "\n")
    }

    /// A Markdown transcript (`/export`).
    public func markdown() -> String {
        var out = Self.transcriptMarker(created) + "\n# Conversation"
        if let model { out += " with \(model.name)" }
        out += "\n\n*Started \(ISO8601.string(from: Date(timeIntervalSince1970: created.timeIntervalSince1970.rounded(.down))))"
        if let precision { out += " · \(precision)" }
        out += "*\n"
        for message in messages {
            switch message.role {
            case .system: out += "\n## System\n\n"
            case .user: out += "\n## User\n\n"
            case .assistant:
                var details = [message.model, message.precision, message.adapter.map { "adapter \(($0.path as NSString).lastPathComponent)" }]
                    .compactMap { $0 }
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

/// ISO 8601 timestamps: written in UTC with milliseconds when they are not whole
/// seconds, read with `Z` or an offset. By hand: a formatter per date made a
/// 100,000-message file take 25 s to load, and ICU's parser crashed on malformed input.
public enum ISO8601 {
    /// The instants a conversation file can hold: years 1 to 9999.
    static let range = Date(timeIntervalSince1970: -62_135_596_800)...Date(timeIntervalSince1970: 253_402_300_799.999)

    public static func string(from date: Date) -> String {
        let t = min(max(date, range.lowerBound), range.upperBound).timeIntervalSince1970
        var seconds = Int64(t.rounded(.down))
        // The nearest millisecond: a time read back from its own text is a few ULPs off
        // (at year 226, 1.5e-5 s), so truncating would drift by a millisecond per save.
        var millis = Int64(((t - Double(seconds)) * 1000).rounded())
        if millis >= 1000 { seconds += 1; millis -= 1000 }
        let whole = millis == 0
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let rest = seconds - days * 86400
        let (y, m, d) = civil(fromDays: days)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var out = String(String(y + 10000).dropFirst()) + "-\(two(m))-\(two(d))T\(two(rest / 3600)):\(two(rest / 60 % 60)):\(two(rest % 60))"
        if !whole { out += "." + String(String(millis + 1000).dropFirst()) }
        return out + "Z"
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fff…]` then `Z` or `±HH:MM`; nil for anything else, and for
    /// instants outside years 1–9999. (Not ISO8601DateFormatter: ICU's parser crashed
    /// with SIGFPE on a malformed timestamp that fuzzing found.)
    public static func date(from text: String) -> Date? {
        guard let date = parse(text), range.contains(date) else { return nil }
        return date
    }

    static func parse(_ text: String) -> Date? {
        let b = Array(text.utf8)
        guard b.count >= 20, b.count <= 40 else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var v: Int64 = 0
            for i in range {
                guard b[i] >= 48, b[i] <= 57 else { return nil }
                v = v * 10 + Int64(b[i] - 48)
            }
            return v
        }
        guard b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T"), b[13] == UInt8(ascii: ":"),
              b[16] == UInt8(ascii: ":"),
              let y = number(0..<4), let m = number(5..<7), let d = number(8..<10),
              let hh = number(11..<13), let mm = number(14..<16), let ss = number(17..<19),
              (1...12).contains(m), (1...31).contains(d), hh < 24, mm < 60, ss < 61 else { return nil }
        var i = 19
        var fraction = 0.0
        if b[i] == UInt8(ascii: ".") {
            let start = i + 1
            i = start
            while i < b.count, b[i] >= 48, b[i] <= 57 { i += 1 }
            guard i > start, i - start <= 9, let f = number(start..<i) else { return nil }
            fraction = Double(f) / pow(10, Double(i - start))
        }
        var offset: Int64 = 0
        if i == b.count - 1, b[i] == UInt8(ascii: "Z") {
            offset = 0
        } else if i == b.count - 6, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-"), b[i + 3] == UInt8(ascii: ":"),
                  let oh = number((i + 1)..<(i + 3)), let om = number((i + 4)..<(i + 6)), oh < 24, om < 60 {
            offset = (oh * 3600 + om * 60) * (b[i] == UInt8(ascii: "-") ? -1 : 1)
        } else {
            return nil
        }
        let seconds = days(fromCivil: y, m, d) * 86400 + hh * 3600 + mm * 60 + ss - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    // Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian calendar).
    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
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
