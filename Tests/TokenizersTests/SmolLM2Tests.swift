import Foundation
import Testing
import ModelFiles
@testable import Tokenizers

/// The reference tokenizations in Resources/smollm2-tokenize.json, made with Hugging Face
/// `tokenizers` (Tools/reference_tokenize.py) using SmolLM2's original pre-tokenizer
/// (digits split individually, then GPT-2 ByteLevel), which is llama.cpp's "smollm".
struct SmolLM2Reference: Decodable {
    struct Case: Decodable {
        let name: String
        let text: String
        let ids: [Int]
        let ids_special: [Int]?
        let decoded: String
        let lossy: Bool?
    }
    let cases: [Case]
    let missing_byte_values: [Int]

    static func load() throws -> SmolLM2Reference {
        guard let url = Bundle.module.url(forResource: "smollm2-tokenize", withExtension: "json", subdirectory: "Resources") else {
            throw TestFailure("Resources/smollm2-tokenize.json is missing from the test bundle (made by Tools/reference_tokenize.py)")
        }
        return try JSONDecoder().decode(SmolLM2Reference.self, from: Data(contentsOf: url))
    }
}

@Suite("SmolLM2 tokenizer against Hugging Face tokenizers")
struct SmolLM2Tests {
    let reference: SmolLM2Reference
    let tokenizer: Tokenizer

    init() throws {
        reference = try SmolLM2Reference.load()
        let path = Fixtures.modelPath
        guard Fixtures.exists(path) else {
            throw TestFailure("Missing model \(path): run `make model` (which `make test` runs) or set NIBBLE_MODEL")
        }
        tokenizer = try Fixtures.tokenizer(at: path)
    }

    @Test func metadata() {
        #expect(tokenizer.kind == .bytePairEncoding)
        #expect(tokenizer.preTokenizerName == "smollm")
        #expect(tokenizer.vocabularySize == 49152)
        #expect(tokenizer.bosTokenID == 1)
        #expect(tokenizer.eosTokenID == 2)
        #expect(tokenizer.addBOS == false)
        #expect(tokenizer.tokenText(1) == "<|im_start|>")
        // <|im_end|> (the EOS here) and <|endoftext|> both end a turn; <|im_start|> does not.
        #expect(tokenizer.endOfGenerationTokenIDs.contains(2))
        #expect(tokenizer.endOfGenerationTokenIDs.contains(0))
        #expect(!tokenizer.endOfGenerationTokenIDs.contains(1))
        // llama.cpp also counts <reponame> (4) as a FIM "repo" token, which ends generation.
        #expect(tokenizer.endOfGenerationTokenIDs == [0, 2, 4])
    }

    @Test("ids: special-token text as plain text")
    func plainIDs() {
        for c in reference.cases {
            let got = tokenizer.encode(c.text)
            #expect(got == c.ids, "\(c.name): text \(visible(c.text))\n  expected \(c.ids)\n  got      \(got)")
        }
    }

    @Test("ids_special: special-token text recognised with parseSpecial")
    func specialIDs() {
        var checked = 0
        for c in reference.cases {
            guard let expected = c.ids_special else { continue }
            checked += 1
            let got = tokenizer.encode(c.text, parseSpecial: true)
            #expect(got == expected, "\(c.name): text \(visible(c.text))\n  expected \(expected)\n  got      \(got)")
        }
        #expect(checked > 0)
    }

    @Test("decode(ids) equals the reference decode")
    func decodeMatchesReference() {
        for c in reference.cases {
            let got = tokenizer.decode(c.ids)
            #expect(got == c.decoded, "\(c.name): ids \(c.ids)\n  expected \(visible(c.decoded))\n  got      \(visible(got))")
        }
    }

    /// The vocabulary has no token for 21 byte values (byte-level BPE has no fallback), so text
    /// containing those bytes cannot round-trip: llama.cpp and HF silently drop them, and so do
    /// we. Every other case must survive encode → decode unchanged.
    @Test("decode(encode(s)) == s unless s holds a byte the vocabulary lacks")
    func roundTrip() {
        let missing = Set(reference.missing_byte_values.map(UInt8.init))
        // The list in the fixture is exactly the set of bytes without a token in our vocabulary.
        let lacking = Set((0..<256).map(UInt8.init).filter { b in
            var s = ""
            s.unicodeScalars.append(Unicode.Scalar(ByteLevel.codepointForByte[Int(b)])!)
            return tokenizer.tokenID(forText: s) == nil
        })
        #expect(lacking == missing)
        for c in reference.cases {
            let coverable = c.text.utf8.allSatisfy { !missing.contains($0) }
            let back = tokenizer.decode(tokenizer.encode(c.text))
            if coverable {
                #expect(back == c.text, "\(c.name): \(visible(c.text)) decoded to \(visible(back))")
            } else {
                #expect(c.lossy == true, "\(c.name) holds a missing byte but is not marked lossy")
                #expect(back != c.text)
            }
            // With special tokens rendered, a parsed special token comes back verbatim too.
            if coverable {
                let special = tokenizer.decode(tokenizer.encode(c.text, parseSpecial: true), renderSpecial: true)
                #expect(special == c.text, "\(c.name) (special): \(visible(special))")
            }
        }
    }

    @Test("StreamingDecoder output equals decode(ids) and never shows half a character")
    func streaming() {
        var heldBack = 0
        for c in reference.cases {
            for (ids, renderSpecial) in [(c.ids, false), (c.ids_special ?? c.ids, true), (c.ids_special ?? c.ids, false)] {
                let whole = tokenizer.decode(ids, renderSpecial: renderSpecial)
                var decoder = StreamingDecoder(tokenizer: tokenizer, renderSpecial: renderSpecial)
                var pieces: [String] = []
                for id in ids {
                    let piece = decoder.append(id)
                    if piece.isEmpty && !tokenizer.tokenBytes(id, renderSpecial: renderSpecial).isEmpty { heldBack += 1 }
                    pieces.append(piece)
                }
                pieces.append(decoder.finish())
                #expect(pieces.joined() == whole, "\(c.name): streamed \(visible(pieces.joined())) vs \(visible(whole))")
                if !whole.contains("\u{FFFD}") {
                    for piece in pieces {
                        #expect(!piece.contains("\u{FFFD}"), "\(c.name): partial output \(visible(piece)) has U+FFFD")
                    }
                }
            }
        }
        // Emoji, Korean, CJK … are split inside characters, so the decoder must have held bytes back.
        #expect(heldBack > 0)
    }

    @Test("performance: a few thousand characters encode in milliseconds")
    func performance() throws {
        let text = String(repeating: reference.cases.map(\.text).joined(separator: "\n"), count: 2)
        let clock = ContinuousClock()
        var ids: [Int] = []
        let elapsed = clock.measure { ids = tokenizer.encode(text) }
        print("SmolLM2: encoded \(text.utf8.count) bytes into \(ids.count) tokens in \(elapsed)")
        #expect(tokenizer.decode(ids).count > 0)
        #if !DEBUG
        #expect(elapsed < .milliseconds(50))
        #endif
    }

    @Test("performance: building the tokenizer from metadata is fast")
    func buildTime() throws {
        let gguf = try GGUFFile(path: Fixtures.modelPath)
        let clock = ContinuousClock()
        let elapsed = try clock.measure { _ = try Tokenizer(gguf: gguf) }
        print("SmolLM2: tokenizer built in \(elapsed)")
        #if !DEBUG
        #expect(elapsed < .milliseconds(500))
        #endif
    }
}
