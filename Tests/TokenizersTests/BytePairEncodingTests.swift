import Testing
import ModelFiles
@testable import Tokenizers

@Suite("Byte-level BPE")
struct BytePairEncodingTests {
    /// a b c, and merges that build "abc" in an order that differs from left-to-right.
    func abcVocabulary(merges: [String]) throws -> (Tokenizer, [String: Int]) {
        var v = VocabularyBuilder()
        var ids: [String: Int] = [:]
        for t in ["a", "b", "c", "ab", "bc", "abc", "aa", "Ġ", "Ġa", "aĠ"] { ids[t] = v.add(t) }
        v.merges = merges
        return (try v.build(), ids)
    }

    @Test func lowestRankMergesFirst() throws {
        // "b c" outranks "a b": abc → a + bc, then "a bc" is not a merge.
        let (t, ids) = try abcVocabulary(merges: ["b c", "a b", "ab c"])
        #expect(t.encode("abc") == [ids["a"]!, ids["bc"]!])
        // With "a b" first the word becomes ab + c, then "ab c" → abc.
        let (t2, ids2) = try abcVocabulary(merges: ["a b", "b c", "ab c"])
        #expect(t2.encode("abc") == [ids2["abc"]!])
    }

    @Test func equalPairsMergeLeftmostFirst() throws {
        let (t, ids) = try abcVocabulary(merges: ["a a"])
        #expect(t.encode("aaa") == [ids["aa"]!, ids["a"]!])
        #expect(t.encode("aaaa") == [ids["aa"]!, ids["aa"]!])
    }

    @Test func wordsDoNotMergeAcrossPreTokenizerBoundaries() throws {
        let (t, ids) = try abcVocabulary(merges: ["a Ġ", "Ġ a", "a b"])
        // "a ab": the GPT-2 regex gives "a", " ab" (the space is byte-level "Ġ"), so the
        // best-ranked "a Ġ" cannot apply across the boundary; "Ġ a" outranks "a b".
        #expect(t.encode("a ab") == [ids["a"]!, ids["Ġa"]!, ids["b"]!])
        #expect(t.decode(t.encode("a ab")) == "a ab")
    }

    @Test func bytesWithoutATokenAreDropped() throws {
        let (t, ids) = try abcVocabulary(merges: [])
        // "z" has no token; byte-level BPE has no fallback, llama.cpp drops it.
        #expect(t.encode("azb") == [ids["a"]!, ids["b"]!])
    }

    @Test func mergePartsThatAreNotTokensStillChain() throws {
        // "x y" produces "xy", which is not in the vocabulary, but "xy z" produces the token "xyz".
        var v = VocabularyBuilder()
        let x = v.add("x"), y = v.add("y"), z = v.add("z")
        let xyz = v.add("xyz")
        v.merges = ["x y", "xy z"]
        let t = try v.build()
        #expect(t.encode("xyz") == [xyz])
        // A finished non-token symbol falls back to one token per byte.
        #expect(t.encode("xy") == [x, y])
        _ = z
    }

    @Test func tokenTextsAreComparedAsBytesNotAsStrings() throws {
        // "é" precomposed and decomposed are equal Swift Strings but different tokens.
        var v = VocabularyBuilder()
        v.pre = "gpt-2"
        let e = v.add("e"), combining = v.add("Ìģ") // U+0301 byte-level encoded (CC 81)
        let precomposed = v.add("Ã©")                  // U+00E9 byte-level encoded (C3 A9)
        v.add("Ã"); v.add("©"); v.add("Ì"); v.add("ģ")
        v.merges = ["Ã ©", "Ì ģ"]
        let t = try v.build()
        #expect(t.encode("\u{E9}") == [precomposed])
        #expect(t.encode("e\u{301}") == [e, combining])
        #expect(t.decode([precomposed]).unicodeScalars.map(\.value) == [0xE9])
    }

    @Test func llama3IgnoreMergesTakesWholeWords() throws {
        var v = VocabularyBuilder()
        v.pre = "llama-bpe"
        let a = v.add("a"), b = v.add("b"), ab = v.add("ab")
        v.merges = [] // no merge could build "ab", but the word is a token
        let t = try v.build()
        #expect(t.encode("ab") == [ab])
        #expect(t.encode("ba") == [b, a])
        #expect(t.addBOS) // llama.cpp defaults add_bos to true for Llama 3
    }
}
