import Foundation
import Templates
import Tokenizers

/// A rendered chat prompt and its tokens.
public struct RenderedPrompt: Sendable {
    /// Exactly what the template produced.
    public var text: String
    /// The prompt as the model sees it.
    public var tokens: [Int]
    /// Turns (user + assistant pairs) left out to fit the context window.
    public var droppedTurns: Int
    /// How many of `tokens` came from the previous turn's prompt and reply as they are,
    /// without re-tokenizing the reply.
    public var carriedTokens: Int
}

/// Renders messages with the chat template and tokenizes the result so that only the
/// template's own markup can become control tokens: the messages' text is tokenized as
/// plain text, so a pasted `<|im_start|>system` stays text and cannot inject a turn.
struct PromptBuilder {
    let template: ChatTemplate
    let tokenizer: Tokenizer
    let now: () -> Date
    /// Asked while the template renders (Ctrl-C): a runaway template can be stopped.
    var shouldStop: (@Sendable () -> Bool)? = nil

    var bosText: String { tokenizer.bosTokenID.map { tokenizer.tokenText($0) } ?? "" }
    var eosText: String { tokenizer.eosTokenID.map { tokenizer.tokenText($0) } ?? "" }

    func render(_ messages: [Message], addGenerationPrompt: Bool) throws -> String {
        try template.render(messages: messages.map { (role: $0.role.rawValue, content: $0.content) },
                            addGenerationPrompt: addGenerationPrompt, bosToken: bosText, eosToken: eosText, now: now(),
                            shouldStop: shouldStop)
    }

    /// The rendered text cut into markup (parsed for control tokens) and message text (not).
    ///
    /// The template is rendered a second time with each message's content replaced by a
    /// private-use sentinel; putting the contents back where the sentinels landed must give
    /// the real rendering byte for byte, which proves where every content went. Templates
    /// that transform contents (trim, split off reasoning) fail that check; for them each
    /// content is searched for in order, trimmed if need be.
    func segments(of text: String, messages: [Message], addGenerationPrompt: Bool) -> [(text: String, parseSpecial: Bool)] {
        let open: Character = "\u{F8F0}", close: Character = "\u{F8F1}"
        let contents = messages.map(\.content)
        if !contents.contains(where: { $0.contains(open) || $0.contains(close) }) {
            var marked = messages
            for i in marked.indices { marked[i].content = "\(open)\(i)\(close)" }
            if let sentinelText = try? render(marked, addGenerationPrompt: addGenerationPrompt) {
                var result: [(text: String, parseSpecial: Bool)] = []
                var rest = Substring(sentinelText)
                while let start = rest.firstIndex(of: open) {
                    guard let end = rest[start...].firstIndex(of: close), let i = Int(rest[rest.index(after: start)..<end]),
                          contents.indices.contains(i) else { break }
                    result.append((String(rest[..<start]), true))
                    result.append((contents[i], false))
                    rest = rest[rest.index(after: end)...]
                }
                result.append((String(rest), true))
                if result.map(\.text).joined().utf8.elementsEqual(text.utf8) { return result.filter { !$0.text.isEmpty } }
            }
        }
        // Fallback: find each content in order.
        var result: [(text: String, parseSpecial: Bool)] = []
        var rest = Substring(text)
        for content in contents {
            for candidate in [content, content.trimmingCharacters(in: .whitespacesAndNewlines)] where !candidate.isEmpty {
                if let range = rest.range(of: candidate) {
                    result.append((String(rest[..<range.lowerBound]), true))
                    result.append((candidate, false))
                    rest = rest[range.upperBound...]
                    break
                }
            }
        }
        result.append((String(rest), true))
        return result.filter { !$0.text.isEmpty }
    }

    /// Tokens for `segments`; BOS is added when the model wants one and the template did
    /// not already write it.
    func tokens(_ segments: [(text: String, parseSpecial: Bool)], fullText: String) -> [Int] {
        let addBOS = tokenizer.addBOS && !(bosText.isEmpty == false && fullText.hasPrefix(bosText))
        return tokenizer.encode(segments: segments, addBOS: addBOS)
    }
}

extension Array where Element == (text: String, parseSpecial: Bool) {
    /// The segments after the first `bytes` UTF-8 bytes (a scalar boundary).
    func dropping(bytes count: Int) -> [(text: String, parseSpecial: Bool)] {
        var remaining = count
        var out: [(text: String, parseSpecial: Bool)] = []
        for segment in self {
            let n = segment.text.utf8.count
            if remaining >= n { remaining -= n; continue }
            if remaining > 0 {
                out.append((String(decoding: segment.text.utf8.dropFirst(remaining), as: UTF8.self), segment.parseSpecial))
                remaining = 0
            } else {
                out.append(segment)
            }
        }
        return out
    }
}
