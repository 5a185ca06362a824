/// GPT-2's reversible byte ↔ printable-character mapping ("bytes_to_unicode"), used by byte-level
/// BPE vocabularies: every byte of the text is replaced by one visible character before merging,
/// so a token's text spells its bytes. Ported from llama.cpp `unicode_byte_to_utf8_map` /
/// `unicode_utf8_to_byte_map` (src/unicode.cpp), which follow OpenAI's encoder.py.
enum ByteLevel {
    /// The code point standing for each byte.
    static let codepointForByte: [UInt32] = {
        var map = [UInt32](repeating: 0, count: 256)
        var assigned = [Bool](repeating: false, count: 256)
        for b in 0x21...0x7E { map[b] = UInt32(b); assigned[b] = true }   // '!'..'~'
        for b in 0xA1...0xAC { map[b] = UInt32(b); assigned[b] = true }   // '¡'..'¬'
        for b in 0xAE...0xFF { map[b] = UInt32(b); assigned[b] = true }   // '®'..'ÿ'
        var n: UInt32 = 0
        for b in 0..<256 where !assigned[b] {
            map[b] = 256 + n
            n += 1
        }
        return map
    }()

    /// UTF-8 of the character standing for each byte (1 or 2 bytes).
    static let utf8ForByte: [[UInt8]] = codepointForByte.map { cp in
        var out: [UInt8] = []
        UTF8Util.append(cp, to: &out)
        return out
    }

    /// The byte a mapped code point stands for, or nil (only the 256 mapped code points qualify).
    static func byte(for codepoint: UInt32) -> UInt8? {
        if codepoint < 0x144 { return byteForCodepoint[Int(codepoint)] }
        return nil
    }

    /// Inverse table over U+0000..U+0143 (the mapped code points all lie below 256 + 68).
    private static let byteForCodepoint: [UInt8?] = {
        var table = [UInt8?](repeating: nil, count: 0x144)
        for (b, cp) in codepointForByte.enumerated() { table[Int(cp)] = UInt8(b) }
        return table
    }()

    /// Appends the bytes a byte-level token text spells.
    ///
    /// A text containing a character outside the mapping (which happens for added tokens stored
    /// as "normal") decodes to its own UTF-8 bytes, as Hugging Face's ByteLevel decoder does.
    /// (llama.cpp instead inserts an `[UNK_BYTE_0x…]` marker; we prefer not to show that to users.)
    static func appendDecoded(_ text: [UInt8], to out: inout [UInt8]) {
        let start = out.count
        var i = 0
        let n = text.count
        while i < n {
            // Mapped characters are U+0021..U+0143: one byte, or two bytes with lead C2..C5.
            let b0 = text[i]
            var cp: UInt32
            if b0 < 0x80 {
                cp = UInt32(b0)
                i += 1
            } else if b0 >= 0xC2 && b0 <= 0xC5 && i + 1 < n && text[i + 1] & 0xC0 == 0x80 {
                cp = UInt32(b0 & 0x1F) << 6 | UInt32(text[i + 1] & 0x3F)
                i += 2
            } else {
                cp = 0xFFFF_FFFF
            }
            guard let byte = byte(for: cp) else {
                out.removeSubrange(start...)
                out.append(contentsOf: text)
                return
            }
            out.append(byte)
        }
    }

    /// The bytes a byte-level token text spells (see `appendDecoded`).
    static func decode(_ text: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        appendDecoded(text, to: &out)
        return out
    }
}
