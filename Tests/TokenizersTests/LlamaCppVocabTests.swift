import Foundation
import Testing
import ModelFiles
@testable import Tokenizers

/// llama.cpp's own tokenizer test vectors (tests/test-tokenizer-0.cpp): every vector of every
/// vocabulary below must tokenize to exactly the expected ids. Like the C++ test we tokenize with
/// `add_special = false` (no BOS) and `parse_special = false`.
@Suite("llama.cpp tokenizer test vectors")
struct LlamaCppVocabTests {
    static let vocabularies = [
        // Required.
        "llama-bpe", "llama-spm", "qwen2", "gpt-2", "phi-3",
        // Also passing.
        "deepseek-llm", "deepseek-coder", "starcoder", "falcon", "mpt", "refact", "command-r", "qwen35", "gemma-4",
    ]

    @Test("ggml-vocab-*.gguf", arguments: vocabularies)
    func vectors(name: String) throws {
        let path = Fixtures.vocabDirectory + "/ggml-vocab-\(name).gguf"
        guard Fixtures.exists(path) else {
            Issue.record("""
                Missing \(path). The llama.cpp test vocabularies are downloaded by `make vocab` \
                (which `make test` runs); or point NIBBLE_VOCAB_DIR at llama.cpp's models/ directory.
                """)
            return
        }
        let tokenizer = try Fixtures.tokenizer(at: path)
        let cases = try VocabTestFile.read(vocabPath: path)
        #expect(!cases.isEmpty)
        var failures = 0
        for testCase in cases {
            let got = tokenizer.encode(bytes: testCase.input, parseSpecial: false, addBOS: false)
            if got != testCase.expected {
                failures += 1
                Issue.record("""
                    \(name): text \(visible(testCase.input))
                      expected \(testCase.expected)
                      got      \(got)
                    """)
            }
        }
        print("ggml-vocab-\(name): \(cases.count - failures)/\(cases.count) vectors pass")
    }

    /// The same texts decode back to themselves, and streaming decoding agrees with `decode`.
    @Test("decode(encode(s)) == s and streaming == decode", arguments: vocabularies)
    func roundTrip(name: String) throws {
        let path = Fixtures.vocabDirectory + "/ggml-vocab-\(name).gguf"
        guard Fixtures.exists(path) else {
            Issue.record("Missing \(path): run `make vocab` or set NIBBLE_VOCAB_DIR")
            return
        }
        let tokenizer = try Fixtures.tokenizer(at: path)
        for testCase in try VocabTestFile.read(vocabPath: path) {
            let text = String(decoding: testCase.input, as: UTF8.self)
            let ids = tokenizer.encode(text)
            let back = tokenizer.decode(ids)
            #expect(back == text, "\(name): \(visible(text)) decoded to \(visible(back))")
            var decoder = StreamingDecoder(tokenizer: tokenizer)
            var streamed = ""
            for id in ids {
                let piece = decoder.append(id)
                #expect(!piece.contains("\u{FFFD}") || back.contains("\u{FFFD}"))
                streamed += piece
            }
            streamed += decoder.finish()
            #expect(streamed == back, "\(name): streamed \(visible(streamed)) vs \(visible(back))")
        }
    }

    /// Vocabularies in the same directory without test vectors: the supported ones load and
    /// round-trip text; the others are refused with a clear error.
    @Test func otherVocabularies() throws {
        let dir = Fixtures.vocabDirectory
        guard Fixtures.exists(dir + "/ggml-vocab-aquila.gguf") else {
            Issue.record("Missing \(dir): run `make vocab` or set NIBBLE_VOCAB_DIR")
            return
        }
        let sample = "Hello world! Ünïcödé 12345 😀 中文\n\tend"
        for name in ["aquila", "baichuan", "gpt-neox"] {
            let tokenizer = try Fixtures.tokenizer(at: dir + "/ggml-vocab-\(name).gguf")
            #expect(tokenizer.decode(tokenizer.encode(sample)) == sample, "\(name)")
        }
        for (name, model) in [("bert-bge", "bert"), ("nomic-bert-moe", "t5")] {
            let path = dir + "/ggml-vocab-\(name).gguf"
            #expect(throws: TokenizerError.unsupportedModel(file: path, model: model)) {
                try Tokenizer(gguf: GGUFFile(path: path))
            }
        }
    }
}
