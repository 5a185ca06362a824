import Testing
import ModelFiles
@testable import Tokenizers

@Suite("Loading errors")
struct TokenizerErrorTests {
    @Test func missingTokens() {
        let metadata: [String: GGUFValue] = ["tokenizer.ggml.model": .string("gpt2")]
        #expect(throws: TokenizerError.missingKey(file: "m.gguf", key: "tokenizer.ggml.tokens")) {
            try Tokenizer(metadata: metadata, source: "m.gguf")
        }
    }

    @Test func missingModel() {
        #expect(throws: TokenizerError.missingKey(file: "m.gguf", key: "tokenizer.ggml.model")) {
            try Tokenizer(metadata: [:], source: "m.gguf")
        }
    }

    @Test func unsupportedModel() {
        var v = VocabularyBuilder()
        v.model = "bert"
        v.add("a")
        #expect(throws: TokenizerError.unsupportedModel(file: "test-vocab", model: "bert")) { try v.build() }
        let message = TokenizerError.unsupportedModel(file: "x.gguf", model: "bert").description
        #expect(message.contains("x.gguf") && message.contains("tokenizer.ggml.model") && message.contains("bert"))
    }

    @Test func unsupportedPreTokenizer() {
        var v = VocabularyBuilder()
        v.pre = "tekken"
        v.add("a")
        #expect(throws: TokenizerError.unsupportedPreTokenizer(file: "test-vocab", name: "tekken")) { try v.build() }
    }

    @Test func missingMerges() {
        var v = VocabularyBuilder()
        v.add("a")
        var metadata = v.metadata
        metadata["tokenizer.ggml.merges"] = nil
        #expect(throws: TokenizerError.missingKey(file: "f", key: "tokenizer.ggml.merges")) {
            try Tokenizer(metadata: metadata, source: "f")
        }
    }

    @Test func wrongTypes() {
        var v = VocabularyBuilder()
        v.add("a")
        var metadata = v.metadata
        metadata["tokenizer.ggml.token_type"] = .array(type: .float32, [.float32(1)])
        #expect(throws: TokenizerError.self) { try Tokenizer(metadata: metadata, source: "f") }
        metadata = v.metadata
        metadata["tokenizer.ggml.tokens"] = .string("a")
        #expect(throws: TokenizerError.self) { try Tokenizer(metadata: metadata, source: "f") }
        metadata = v.metadata
        metadata["tokenizer.ggml.token_type"] = .array(type: .int32, [])
        #expect(throws: TokenizerError.invalidValue(file: "f", key: "tokenizer.ggml.token_type", reason: "0 token types for 1 tokens")) {
            try Tokenizer(metadata: metadata, source: "f")
        }
    }

    @Test func missingPreTokenizerFallsBackToDefault() throws {
        var v = VocabularyBuilder()
        v.pre = nil
        v.add("a")
        #expect(try v.build().preTokenizerName == "default")
    }
}
