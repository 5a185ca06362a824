import Foundation
import Testing
@testable import Inference

let modelPath: String = {
    let env = ProcessInfo.processInfo.environment
    if let path = env["NIBBLE_MODEL"], !path.isEmpty { return path }
    let cache = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.cache")
    return cache + "/nibble/models/SmolLM2-135M-Instruct.Q4_1.gguf"
}()

func resource(_ name: String) throws -> [String: Any] {
    let url = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Resources"))
    return try #require(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
}

/// One f32 engine for the suite (loading dequantises 135M weights).
let sharedEngine: Result<Engine, Error> = Result {
    try #require(FileManager.default.fileExists(atPath: modelPath), "model missing at \(modelPath): run `make model`")
    return try Engine(path: modelPath, precision: .f32, threads: 2, context: 512)
}

@Suite(.serialized) struct ReferenceTests {
    /// Last-position logits of transformers' f32 forward pass (Tools/reference_generate.py).
    @Test func logitsMatchTransformers() throws {
        let engine = try sharedEngine.get()
        let reference = try resource("smollm2-logits.json")
        let prompt = try #require(reference["prompt"] as? String)
        let ids = try #require(reference["prompt_ids"] as? [Int])
        #expect(engine.promptTokens(prompt) == ids)
        let base64 = try #require(reference["logits_f32_le_base64"] as? String)
        let data = try #require(Data(base64Encoded: base64))
        let expected = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let logits = try engine.logits(for: ids)
        #expect(logits.count == expected.count)
        var maxError: Float = 0
        for i in 0..<expected.count { maxError = max(maxError, abs(logits[i] - expected[i])) }
        print("SmolLM2 f32 last-position logits vs transformers: max |Δ| = \(maxError)")
        #expect(maxError < 1e-3, "max |Δlogit| = \(maxError)")
        #expect(logits.indices.max { logits[$0] < logits[$1] } == reference["argmax"] as? Int)
    }

    /// Greedy continuation at f32 through the engine API (the binary is checked too, in
    /// EndToEndTests), including prefix reuse of the KV cache between calls.
    @Test func greedyMatchesTransformersWithCacheReuse() throws {
        let engine = try sharedEngine.get()
        let reference = try resource("smollm2-greedy.json")
        var greedy = SamplingParameters()
        greedy.temperature = 0
        for c in try #require(reference["cases"] as? [[String: Any]]) {
            let prompt = try #require(c["prompt_ids"] as? [Int])
            var expected = try #require(c["generated_ids"] as? [Int])
            if c["stop_token"] as? Int != nil { expected.removeLast() }
            var streamed: [Int] = []
            let result = try engine.generate(prompt: prompt, maxTokens: 48, sampling: greedy) { streamed.append($0) }
            #expect(result.tokens == expected)
            #expect(streamed == result.tokens)
            // Same prompt plus the first 10 generated tokens: only those are prefilled,
            // and the rest of the continuation must not change.
            let extended = prompt + expected.prefix(10)
            let again = try engine.generate(prompt: extended, maxTokens: expected.count - 10, sampling: greedy) { _ in }
            #expect(again.tokens == Array(expected.dropFirst(10)))
        }
    }
}
