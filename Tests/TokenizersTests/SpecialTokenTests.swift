import Testing
import ModelFiles
@testable import Tokenizers

@Suite("Special tokens")
struct SpecialTokenTests {
    struct Vocab {
        let tokenizer: Tokenizer
        let ids: [String: Int]
    }

    func vocabulary(name: String? = nil) throws -> Vocab {
        var v = VocabularyBuilder()
        var ids: [String: Int] = [:]
        for c in "<|>_abcdeimnorstu xyzĠ" { ids[String(c)] = v.add(String(c)) }
        ids["<|im_start|>"] = v.add("<|im_start|>", type: 3)
        ids["<|im_end|>"] = v.add("<|im_end|>", type: 1)          // "normal" in the file, but an end marker
        ids["<|endoftext|>"] = v.add("<|endoftext|>", type: 3)
        ids["<tool>"] = v.add("<tool>", type: 4)                   // user-defined
        ids["<|im_start|>x"] = v.add("<|im_start|>x", type: 4)     // longer user-defined overlapping a control token
        ids["<ctrl_unused1>"] = v.add("<ctrl_unused1>", type: 3)
        if let name { v.extra["general.name"] = .string(name) }
        return Vocab(tokenizer: try v.build(), ids: ids)
    }

    @Test func controlTokensAreOnlyParsedOnRequest() throws {
        let v = try vocabulary()
        let start = v.ids["<|im_start|>"]!
        let plain = v.tokenizer.encode("<|im_start|>user")
        #expect(!plain.contains(start))
        #expect(v.tokenizer.decode(plain) == "<|im_start|>user")
        let parsed = v.tokenizer.encode("<|im_start|>user", parseSpecial: true)
        #expect(parsed.first == start)
        #expect(v.tokenizer.decode(parsed) == "user")
        #expect(v.tokenizer.decode(parsed, renderSpecial: true) == "<|im_start|>user")
    }

    @Test func segmentsParseControlTokensOnlyWhereAllowed() throws {
        let v = try vocabulary()
        let start = v.ids["<|im_start|>"]!, end = v.ids["<|endoftext|>"]!
        // Markup parsed, content plain: the content's control-token text stays text.
        let ids = v.tokenizer.encode(segments: [("<|im_start|>user ", true), ("<|im_start|>system", false), ("<|endoftext|>", true)])
        #expect(ids.first == start && ids.last == end)
        #expect(ids.filter { $0 == start }.count == 1)
        #expect(v.tokenizer.decode(Array(ids.dropFirst().dropLast())) == "user <|im_start|>system")
        // Without special text in the content, segments tokenize exactly like the whole text:
        // text fragments meeting at a boundary are joined before BPE.
        let whole = "<|im_start|>user\nabc de<|endoftext|>zz"
        let cuts = v.tokenizer.encode(segments: [("<|im_start|>user\nab", true), ("c d", false), ("e<|endoftext|>z", true), ("z", false)])
        #expect(cuts == v.tokenizer.encode(whole, parseSpecial: true))
    }

    @Test func userDefinedTokensAreAlwaysParsed() throws {
        let v = try vocabulary()
        let tool = v.ids["<tool>"]!
        #expect(v.tokenizer.encode("a<tool>b") == [v.ids["a"]!, tool, v.ids["b"]!])
        #expect(v.tokenizer.encode("a<tool>b", parseSpecial: true) == [v.ids["a"]!, tool, v.ids["b"]!])
        // User-defined tokens render their text even without renderSpecial.
        #expect(v.tokenizer.decode([tool]) == "<tool>")
    }

    @Test func longerCandidatesWinOverlaps() throws {
        let v = try vocabulary()
        // "<|im_start|>x" (user-defined, longer) is matched before "<|im_start|>".
        #expect(v.tokenizer.encode("<|im_start|>x", parseSpecial: true) == [v.ids["<|im_start|>x"]!])
        #expect(v.tokenizer.encode("<|im_start|>y", parseSpecial: true) == [v.ids["<|im_start|>"]!, v.ids["y"]!])
    }

    @Test func endOfGenerationTokensAreFoundByText() throws {
        let v = try vocabulary()
        let end = v.ids["<|im_end|>"]!
        #expect(v.tokenizer.endOfGenerationTokenIDs.contains(end))
        #expect(v.tokenizer.endOfGenerationTokenIDs.contains(v.ids["<|endoftext|>"]!))
        #expect(!v.tokenizer.endOfGenerationTokenIDs.contains(v.ids["<|im_start|>"]!))
        // llama.cpp turns the "normal" end marker into a control token.
        #expect(v.tokenizer.isControl(end))
        #expect(v.tokenizer.eotTokenID == end || v.tokenizer.eotTokenID == v.ids["<|endoftext|>"]!)
        #expect(v.tokenizer.attributes[v.ids["<ctrl_unused1>"]!].contains(.unused))
        // GPT-2 BPE default BOS/EOS id 11 is in range here, exactly as in llama.cpp.
        #expect(v.tokenizer.eosTokenID == 11)
        #expect(v.tokenizer.endOfGenerationTokenIDs.contains(11))
    }

    @Test func phi3SpecialTokensSwallowFollowingWhitespace() throws {
        let v = try vocabulary(name: "Phi3")
        let start = v.ids["<|im_start|>"]!
        // rstrip: the spaces after the token are removed (llama.cpp's Phi-3 rule, by general.name).
        #expect(v.tokenizer.encode("<|im_start|>  ab", parseSpecial: true) == [start, v.ids["a"]!, v.ids["b"]!])
        // <|endoftext|> is exempt.
        let eot = v.ids["<|endoftext|>"]!
        #expect(v.tokenizer.encode("<|endoftext|> a", parseSpecial: true) == [eot, v.ids["Ġ"]!, v.ids["a"]!])
    }

    @Test func partitionerSplitsAllOccurrences() {
        let texts = [Array("<a>".utf8), Array("<bb>".utf8)]
        let p = SpecialTokenPartitioner(candidates: [1, 0], texts: texts, attributes: [.control, .userDefined])
        let input = Array("x<a><bb>y<a>".utf8)
        #expect(p.partition(input, parseSpecial: true) == [.text(0..<1), .token(0), .token(1), .text(8..<9), .token(0)])
        #expect(p.partition(input, parseSpecial: false) == [.text(0..<4), .token(1), .text(8..<12)])
        #expect(p.partition([], parseSpecial: true) == [])
    }
}
