import ModelFiles
@testable import Tokenizers

/// Builds GGUF-style tokenizer metadata for small hand-made vocabularies.
struct VocabularyBuilder {
    var model = "gpt2"
    var pre: String? = "gpt-2"
    var tokens: [String] = []
    var types: [Int] = []
    var scores: [Float] = []
    var merges: [String] = []
    var extra: [String: GGUFValue] = [:]

    /// Adds a token and returns its id.
    @discardableResult
    mutating func add(_ text: String, type: Int = 1, score: Float = 0) -> Int {
        tokens.append(text)
        types.append(type)
        scores.append(score)
        return tokens.count - 1
    }

    var metadata: [String: GGUFValue] {
        var m: [String: GGUFValue] = [
            "tokenizer.ggml.model": .string(model),
            "tokenizer.ggml.tokens": .array(type: .string, tokens.map { .string($0) }),
            "tokenizer.ggml.token_type": .array(type: .int32, types.map { .int32(Int32($0)) }),
        ]
        if let pre { m["tokenizer.ggml.pre"] = .string(pre) }
        if model == "llama" {
            m["tokenizer.ggml.scores"] = .array(type: .float32, scores.map { .float32($0) })
        } else {
            m["tokenizer.ggml.merges"] = .array(type: .string, merges.map { .string($0) })
        }
        for (k, v) in extra { m[k] = v }
        return m
    }

    func build() throws -> Tokenizer {
        try Tokenizer(metadata: metadata, source: "test-vocab")
    }
}
