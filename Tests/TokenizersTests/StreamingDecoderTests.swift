import Testing
@testable import Tokenizers

@Suite("Streaming decoder")
struct StreamingDecoderTests {
    @Test func stablePrefix() {
        let f = StreamingDecoder.stablePrefixLength
        #expect(f(Array("abc".utf8)) == 3)
        #expect(f([]) == 0)
        #expect(f([0x61, 0xF0, 0x9F, 0x98]) == 1)        // 😀 missing its last byte
        #expect(f([0x61, 0xF0, 0x9F, 0x98, 0x80]) == 5)  // complete
        #expect(f([0xE2, 0x82]) == 0)                     // prefix of €
        #expect(f([0xE0, 0x80]) == 2)                     // overlong: can never be valid
        #expect(f([0xED, 0xA0]) == 2)                     // surrogate: can never be valid
        #expect(f([0x61, 0x80]) == 2)                     // stray continuation byte
        #expect(f([0xC3]) == 0)
        #expect(f([0xC0]) == 1)                           // never a lead byte
        #expect(f([0xF4, 0x90]) == 2)                     // beyond U+10FFFF
    }

    /// A SentencePiece vocabulary whose only tokens are bytes: every character is split.
    func byteVocabulary() throws -> Tokenizer {
        var v = VocabularyBuilder()
        v.model = "llama"
        v.pre = nil
        v.add("<unk>", type: 2); v.add("<s>", type: 3); v.add("</s>", type: 3)
        for b in 0..<256 { v.add("<0x" + String(b, radix: 16, uppercase: true).leftPadded(to: 2) + ">", type: 6) }
        v.extra["tokenizer.ggml.add_space_prefix"] = .bool(false)
        return try v.build()
    }

    @Test func bytesAreHeldUntilTheCharacterIsComplete() throws {
        let t = try byteVocabulary()
        let text = "a€😀b"
        let ids = t.encode(text)
        #expect(ids.count == text.utf8.count)
        var decoder = StreamingDecoder(tokenizer: t)
        var out: [String] = []
        for id in ids { out.append(decoder.append(id)) }
        #expect(out == ["a", "", "", "€", "", "", "", "😀", "b"])
        #expect(decoder.finish() == "")
    }

    @Test func invalidBytesAreNotLost() throws {
        let t = try byteVocabulary()
        // 0xE2 0x82 then 'x': the unfinished € becomes U+FFFD as soon as 'x' arrives.
        let ids = [3 + 0xE2, 3 + 0x82, 3 + 0x78, 3 + 0xF0, 3 + 0x9F]
        var decoder = StreamingDecoder(tokenizer: t)
        var out = ""
        for id in ids { out += decoder.append(id) }
        #expect(decoder.hasPendingBytes)
        out += decoder.finish()
        #expect(out == t.decode(ids))
        #expect(out == "\u{FFFD}x\u{FFFD}")
    }
}
