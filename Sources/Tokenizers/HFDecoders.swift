// tokenizer.json decoders (tokenizers/src/decoders), applied per token: every token's decoded
// bytes are computed once at load (as for GGUF vocabularies), and `Tokenizer.decode` joins them.
//
// This is exact for the decoders the supported families use, which act on each token alone
// (ByteLevel, ByteFallback, Replace of a single character, Metaspace) or only at the start of the
// text (Strip after Fuse, Metaspace's prefix): those become `stripsLeadingSpace`. ByteFallback's
// replacement of invalid UTF-8 differs only in the number of U+FFFD characters.

struct HFDecoderPlan {
    let steps: [HFDecoder]
    /// The decoder removes one leading space from the decoded text (Strip after Fuse, Metaspace).
    let stripsLeadingSpace: Bool
    /// Per-token Strip (a Strip before any Fuse): (content, start, stop).
    private let perTokenStrips: [(content: [UInt8], start: Int, stop: Int)]

    init(_ steps: [HFDecoder], file: String) throws {
        self.steps = steps
        var fused = false
        var strips = false
        var perToken: [(content: [UInt8], start: Int, stop: Int)] = []
        for (i, step) in steps.enumerated() {
            switch step {
            case .fuse: fused = true
            case let .strip(content, start, stop):
                if fused {
                    // On the whole text: we support what the Llama/Mistral files use.
                    guard content == [0x20], start <= 1, stop == 0 else {
                        throw TokenizerError.unsupportedComponent(
                            file: file, field: "decoder.decoders[\(i)]",
                            value: "Strip(content: \(String(decoding: content, as: UTF8.self)), start: \(start), stop: \(stop)) after Fuse",
                            supported: "Strip of one leading \" \" after Fuse")
                    }
                    if start == 1 { strips = true }
                } else {
                    perToken.append((content, start, stop))
                }
            case let .metaspace(_, scheme):
                if scheme != .never { strips = true }
            case let .replace(pattern, _):
                // After Fuse a longer pattern could match across tokens, which per-token decoding misses.
                if fused && String(decoding: pattern, as: UTF8.self).unicodeScalars.count > 1 {
                    throw TokenizerError.unsupportedComponent(
                        file: file, field: "decoder.decoders[\(i)].pattern.String",
                        value: String(decoding: pattern, as: UTF8.self), supported: "one character after Fuse")
                }
            default: break
            }
        }
        stripsLeadingSpace = strips
        perTokenStrips = perToken
    }

    /// The bytes one token decodes to.
    func decode(_ token: [UInt8]) -> [UInt8] {
        var text = token
        var strip = 0
        var fused = false
        for step in steps {
            switch step {
            case .byteLevel:
                text = ByteLevel.decode(text)
            case .byteFallback:
                // `<0xXX>` → that byte.
                if text.count == 6, text[0] == 0x3C, text[1] == 0x30, text[2] == 0x78, text[5] == 0x3E,
                   let hi = Self.hexDigit(text[3]), let lo = Self.hexDigit(text[4]) {
                    text = [hi << 4 | lo]
                }
            case .fuse:
                fused = true
            case .strip:
                guard !fused else { break } // on the whole text: `stripsLeadingSpace`
                let s = perTokenStrips[strip]
                strip += 1
                var start = 0, end = text.count
                for _ in 0..<s.start where text[start..<end].starts(with: s.content) { start += s.content.count }
                for _ in 0..<s.stop where end - start >= s.content.count && Array(text[(end - s.content.count)..<end]) == s.content {
                    end -= s.content.count
                }
                text = Array(text[start..<end])
            case let .replace(pattern, content):
                text = Normalizers.replaceAll(text, pattern, content)
            case let .metaspace(replacement, _):
                text = Normalizers.replaceAll(text, replacement, [0x20])
            }
        }
        return text
    }

    private static func hexDigit(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}
