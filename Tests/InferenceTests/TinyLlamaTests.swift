import Foundation
import Testing
import ModelFiles
@testable import Inference
import TestFixtures

/// A tiny random Llama made by Tools/reference_tiny_llama.py with transformers: an
/// untied output head, Llama 3.1 rope scaling (llama.cpp's `rope_freqs.weight`), two
/// query heads per KV head, and 80 positions, past the 32 of its original context.
/// The test writes it as a GGUF (with a byte-level vocabulary, since the reference has
/// no tokenizer) and compares every position's logits.
extension Double { var float: Float { Float(self) } }

@Suite struct TinyLlamaTests {
    static func buildModel() throws -> (path: String, reference: [String: Any]) {
        let reference = try resource("tiny-llama.json")
        var writer = GGUFWriter()
        let metadata = try #require(reference["metadata"] as? [String: Any])
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            if let s = value as? String { writer.add(key, .string(s)) }
            else if key.hasSuffix("freq_base") || key.hasSuffix("epsilon") { writer.add(key, .float32(try #require(value as? Double).float)) }
            else { writer.add(key, .uint32(UInt32(try #require(value as? Int)))) }
        }
        // 256 byte tokens in GPT-2's byte-to-unicode spelling, then 16 control tokens.
        var tokens: [GGUFValue] = []
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            let scalar = printable ? b : 256 + [Int](0..<256).filter { !((33...126).contains($0) || (161...172).contains($0) || (174...255).contains($0)) }.firstIndex(of: b)!
            tokens.append(.string(String(Character(Unicode.Scalar(UInt32(scalar))!))))
        }
        for i in 0..<16 { tokens.append(.string("<|extra_\(i)|>")) }
        writer.add("tokenizer.ggml.model", .string("gpt2"))
        writer.add("tokenizer.ggml.pre", .string("default"))
        writer.add("tokenizer.ggml.tokens", .array(type: .string, tokens))
        writer.add("tokenizer.ggml.token_type", .array(type: .int32, (0..<272).map { .int32($0 < 256 ? 1 : 3) }))
        writer.add("tokenizer.ggml.merges", .array(type: .string, []))
        writer.add("tokenizer.ggml.eos_token_id", .uint32(257))
        for tensor in try #require(reference["tensors"] as? [[String: Any]]) {
            let name = try #require(tensor["name"] as? String)
            let shape = try #require(tensor["shape"] as? [Int])
            let base64 = try #require(tensor["f32_le_base64"] as? String)
            let data = try #require(Data(base64Encoded: base64))
            writer.add(tensor: .init(name: name, type: .f32, shape: shape, data: [UInt8](data)))
        }
        let dir = Scratch.root.appendingPathComponent("nibble-tiny-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("tiny-llama.gguf").path
        try writer.write(to: path)
        return (path, reference)
    }

    @Test func logitsAtEveryPositionMatchTransformers() throws {
        let (path, reference) = try Self.buildModel()
        for threads in [1, 2] {
            let engine = try Engine(path: path, precision: .f32, threads: threads, context: 128)
            let llama = try #require(engine.model as? LlamaModel)
            #expect(llama.weights.head !== llama.weights.embedding, "the head is untied")
            let tokens = try #require(reference["tokens"] as? [Int])
            let base64 = try #require(reference["logits_f32_le_base64"] as? String)
            let expected = try #require(Data(base64Encoded: base64)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let logits = try engine.logitsAtEveryPosition(for: tokens)
            #expect(logits.count == expected.count)
            var maxError: Float = 0
            for i in 0..<expected.count { maxError = max(maxError, abs(logits[i] - expected[i])) }
            #expect(maxError < 1e-4, "max |Δlogit| = \(maxError) with \(threads) threads")

            var greedy = SamplingParameters()
            greedy.temperature = 0
            let result = try engine.generate(prompt: tokens, maxTokens: 16, sampling: greedy) { _ in }
            #expect(result.tokens == reference["greedy_ids"] as? [Int])
        }
    }
}
