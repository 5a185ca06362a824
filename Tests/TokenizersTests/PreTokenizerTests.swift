import Testing
@testable import Tokenizers

@Suite("Pre-tokenizers")
struct PreTokenizerTests {
    func pieces(_ text: String, _ name: String) -> [String] {
        let pre = PreTokenizer.named(name)!
        let bytes = Array(text.utf8)
        let cpts = bytes.withUnsafeBufferPointer { UTF8Util.codepoints($0) }
        let flags = cpts.map { CodepointFlags.of($0) }
        var out: [String] = []
        var start = 0
        for n in pre.split(cpts, flags: flags) {
            var s = ""
            for cp in cpts[start..<(start + n)] { s.unicodeScalars.append(Unicode.Scalar(cp)!) }
            out.append(s)
            start += n
        }
        return out
    }

    @Test func gpt2() {
        #expect(pieces("Hello  world's 123!!", "gpt-2") == ["Hello", " ", " world", "'s", " 123", "!!"])
        #expect(pieces("a\n\n b   ", "gpt-2") == ["a", "\n\n", " b", "   "])
    }

    @Test func smollmSplitsDigits() {
        #expect(pieces("x 2024", "smollm") == ["x", " ", "2", "0", "2", "4"])
    }

    @Test func llama3() {
        #expect(pieces("I'M here 12345\r\n\nok", "llama-bpe") == ["I", "'M", " here", " ", "123", "45", "\r\n\n", "ok"])
        #expect(pieces("(hi)", "llama-bpe") == ["(hi", ")"]) // [^\r\n\p{L}\p{N}]?\p{L}+
    }

    @Test func qwen2SplitsDigitsOneByOne() {
        #expect(pieces("ab 123", "qwen2") == ["ab", " ", "1", "2", "3"])
    }

    @Test func defaultRegexes() {
        // Punctuation runs first, then GPT-2, then number runs and digit triples.
        #expect(pieces("a+=b 12345", "default") == ["a", "+=", "b", " ", "123", "45"])
        #expect(PreTokenizer.named(nil)?.name == "default")
        #expect(PreTokenizer.named("") != nil)
    }

    @Test func unknownNamesAreRejected() {
        #expect(PreTokenizer.named("no-such-pre") == nil)
        #expect(PreTokenizer.named("tekken") == nil) // lookahead regex not ported
    }

    @Test func codepointFlags() {
        #expect(CodepointFlags.of(0x41).isLetter)
        #expect(CodepointFlags.of(0x0663).isNumber)    // Arabic-Indic three
        #expect(CodepointFlags.of(0x00A0).isWhitespace)
        #expect(CodepointFlags.of(0x3000).isWhitespace)
        #expect(CodepointFlags.of(0x0301).isAccentMark)
        #expect(CodepointFlags.of(0x1F600).isSymbol)
        #expect(!CodepointFlags.of(0x1C).isWhitespace) // llama.cpp: not \s
        #expect(CodepointFlags.of(0x10FFFF).isPresent)
    }
}
