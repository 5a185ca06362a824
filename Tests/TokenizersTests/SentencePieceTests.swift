import Testing
import ModelFiles
@testable import Tokenizers

@Suite("SentencePiece BPE")
struct SentencePieceTests {
    struct Vocab {
        let tokenizer: Tokenizer
        let ids: [String: Int]
    }

    func vocabulary(extra: [String: GGUFValue] = [:]) throws -> Vocab {
        var v = VocabularyBuilder()
        v.model = "llama"
        v.pre = nil
        var ids: [String: Int] = [:]
        ids["<unk>"] = v.add("<unk>", type: 2)
        ids["<s>"] = v.add("<s>", type: 3)
        ids["</s>"] = v.add("</s>", type: 3)
        for b in 0..<256 {
            let name = "<0x" + String(b, radix: 16, uppercase: true).leftPadded(to: 2) + ">"
            ids[name] = v.add(name, type: 6)
        }
        for (text, score) in [("▁", -1.0), ("h", -2.0), ("i", -2.0), ("▁h", -3.0), ("hi", -1.5), ("▁hi", -0.5),
                              ("▁▁", -4.0), ("<", -5.0), ("x", -5.0)] as [(String, Float)] {
            ids[text] = v.add(text, score: score)
        }
        v.extra = extra
        return Vocab(tokenizer: try v.build(), ids: ids)
    }

    @Test func highestScoreMergesFirstAndSpacePrefixIsAdded() throws {
        let v = try vocabulary()
        // "hi" → "▁hi": "h i" (score -1.5) merges before "▁ h" (-3), then "▁ hi" (-0.5).
        #expect(v.tokenizer.encode("hi") == [v.ids["▁hi"]!])
        #expect(v.tokenizer.decode(v.tokenizer.encode("hi")) == "hi")
        #expect(v.tokenizer.addBOS)
        #expect(v.tokenizer.bosTokenID == 1 && v.tokenizer.eosTokenID == 2 && v.tokenizer.unknownTokenID == 0)
        #expect(v.tokenizer.encode("hi", addBOS: true) == [1, v.ids["▁hi"]!])
    }

    @Test func unknownCharactersFallBackToByteTokens() throws {
        let v = try vocabulary()
        let ids = v.tokenizer.encode("hé")
        #expect(ids == [v.ids["▁h"]!, v.ids["<0xC3>"]!, v.ids["<0xA9>"]!])
        #expect(v.tokenizer.decode(ids) == "hé")
        #expect(v.tokenizer.tokenBytes(v.ids["<0xC3>"]!) == [0xC3])
    }

    @Test func spacePrefixCanBeDisabled() throws {
        let v = try vocabulary(extra: ["tokenizer.ggml.add_space_prefix": .bool(false)])
        #expect(v.tokenizer.encode("hi") == [v.ids["hi"]!])
        #expect(v.tokenizer.decode([v.ids["▁hi"]!]) == " hi") // no leading space removed either
    }

    @Test func spacePrefixFollowsSpecialTokens() throws {
        let v = try vocabulary()
        // llama.cpp adds the prefix to text after a special token (is_prev_special).
        #expect(v.tokenizer.encode("hi</s>hi", parseSpecial: true) == [v.ids["▁hi"]!, 2, v.ids["▁hi"]!])
        // Without parseSpecial the control token's text is ordinary text.
        let plain = v.tokenizer.encode("hi</s>", parseSpecial: false)
        #expect(!plain.contains(2))
        #expect(v.tokenizer.decode(plain) == "hi</s>")
    }

    @Test func controlTokensRenderOnlyOnRequest() throws {
        let v = try vocabulary()
        #expect(v.tokenizer.decode([1, v.ids["▁hi"]!]) == " hi") // BOS renders empty; it took the space removal
        #expect(v.tokenizer.decode([1, v.ids["▁hi"]!], renderSpecial: true) == "<s> hi")
        #expect(v.tokenizer.tokenBytes(1).isEmpty)
        #expect(v.tokenizer.tokenBytes(1, renderSpecial: true) == Array("<s>".utf8))
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
