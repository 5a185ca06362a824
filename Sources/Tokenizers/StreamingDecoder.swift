/// Turns token ids into text as they are generated, emitting text as soon as it is complete UTF-8.
///
/// A token may end in the middle of a multi-byte character (byte-level BPE splits emoji and many
/// CJK characters over several tokens; SentencePiece emits `<0xXX>` byte tokens). The decoder
/// holds back only a trailing sequence that is still a valid *prefix* of a UTF-8 character, so
/// it never prints half a character and never replaces valid input by U+FFFD. Bytes that can no
/// longer become valid UTF-8 are emitted at once as U+FFFD, exactly where `Tokenizer.decode`
/// would put them: the concatenation of everything `append` and `finish` return equals
/// `tokenizer.decode(ids, renderSpecial:)`.
public struct StreamingDecoder {
    public let tokenizer: Tokenizer
    public let renderSpecial: Bool
    private var pending: [UInt8] = []
    /// Mirrors `decode`: with a space prefix (SentencePiece) the first token loses one leading space.
    private var removeSpace: Bool

    /// - Parameter renderSpecial: also render control tokens (as their text), like `decode`.
    public init(tokenizer: Tokenizer, renderSpecial: Bool = false) {
        self.tokenizer = tokenizer
        self.renderSpecial = renderSpecial
        removeSpace = tokenizer.addSpacePrefix
    }

    /// Whether bytes of an unfinished character are being held back.
    public var hasPendingBytes: Bool { !pending.isEmpty }

    /// Adds one token and returns the text it completes (possibly "").
    public mutating func append(_ id: Int) -> String {
        let before = pending.count
        tokenizer.appendBytes(of: id, renderSpecial: renderSpecial, to: &pending)
        let added = pending.count > before
        if removeSpace && added && pending[before] == 0x20 {
            pending.remove(at: before)
        }
        if added || !tokenizer.stripsSpaceUntilText { removeSpace = false }
        let cut = Self.stablePrefixLength(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Returns whatever is held back (an unfinished character becomes U+FFFD, so no byte is lost
    /// silently) and resets the decoder's buffer.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix of `bytes` whose decoding cannot change whatever follows:
    /// everything except a trailing, still-valid prefix of a multi-byte character.
    ///
    /// Cutting right before a lead byte is safe because the UTF-8 decoder ("maximal subpart"
    /// replacement, as used by `String(decoding:as:)`) ends any unfinished sequence at a byte
    /// that is not a continuation byte, whatever comes after it.
    static func stablePrefixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        var i = n - 1
        while i >= 0 && i >= n - 4 {
            let lead = bytes[i]
            if lead & 0xC0 != 0x80 {
                let need: Int
                switch lead {
                case 0xC2...0xDF: need = 2
                case 0xE0...0xEF: need = 3
                case 0xF0...0xF4: need = 4
                default: need = 0 // ASCII, or a byte that can never start a character
                }
                guard need > n - i else { return n }
                // Bytes after the lead are continuation bytes (we walked back over them); only the
                // second byte has tighter bounds for some leads (no overlongs, surrogates, > U+10FFFF).
                if i + 1 < n {
                    let second = bytes[i + 1]
                    let ok: Bool
                    switch lead {
                    case 0xE0: ok = second >= 0xA0
                    case 0xED: ok = second <= 0x9F
                    case 0xF0: ok = second >= 0x90
                    case 0xF4: ok = second <= 0x8F
                    default: ok = true
                    }
                    if !ok { return n }
                }
                return i
            }
            i -= 1
        }
        return n
    }
}
