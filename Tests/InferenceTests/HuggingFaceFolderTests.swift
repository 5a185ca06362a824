import Foundation
import Testing
import ModelFiles
import Tokenizers
import TestFixtures
@testable import Inference

/// The tiny family fixtures loaded from their Hugging Face folders (config.json,
/// model.safetensors, tokenizer files) instead of their GGUF: the same logits as
/// transformers at every position, the same greedy tokens, and the same config and
/// tokenizer ids as the converted GGUF.
@Suite struct HuggingFaceFolderTests {
    static let families = FamilyReferenceTests.families

    @Test(arguments: families)
    func folderLogitsAndGreedyTokensMatchTransformers(family: String) throws {
        let reference = try FamilyReferenceTests.reference(family)
        let tokens = try #require(reference["tokens"] as? [Int])
        let expected = try FamilyReferenceTests.floats(reference["logits_f32_le_base64"])
        let folder = try FamilyReferenceTests.folder(family).path
        let engine = try Engine(path: folder, precision: .f32, threads: 2, context: 128)
        #expect(engine.source is HuggingFaceFolder)
        #expect(engine.config.architecture == reference["gguf_arch"] as? String)
        let logits = try engine.logitsAtEveryPosition(for: tokens)
        try #require(logits.count == expected.count)
        let worst = zip(logits, expected).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-4, "\(family): max |Δlogit| = \(worst)")
        var greedy = SamplingParameters()
        greedy.temperature = 0
        let result = try engine.generate(prompt: tokens, maxTokens: 16, sampling: greedy, ignoreEndOfGeneration: true) { _ in }
        #expect(result.tokens == reference["greedy_ids"] as? [Int], "\(family)")
    }

    /// The folder translates into what the converter wrote: the config the families
    /// read is the GGUF's (Mistral's with the window its config.json has), every GGUF
    /// tensor is there with its shape and type, and the tokenizer gives the same ids.
    @Test(arguments: families)
    func folderAgreesWithTheConvertedGGUF(family: String) throws {
        let folder = try HuggingFaceFolder(path: try FamilyReferenceTests.folder(family).path)
        let gguf = try GGUFFile(path: try FamilyReferenceTests.gguf(family))
        #expect(try ModelConfig(gguf: folder) == ModelConfig(gguf: gguf))
        for t in gguf.tensors {
            let mine = folder.tensor(named: t.name)
            #expect(mine?.shape == t.shape && mine?.type == t.type, "\(family): \(t.name) \(String(describing: mine)) vs \(t)")
            if let mine { #expect(try folder.dequantize(mine) == gguf.dequantize(t), "\(family): \(t.name)") }
        }
        #expect(folder.tensors.count == gguf.tensors.count)
        for key in ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                    "tokenizer.ggml.add_bos_token", "tokenizer.ggml.tokens", "tokenizer.ggml.merges"] {
            #expect(folder.metadata[key] == gguf.metadata[key], "\(family): \(key)")
        }
        let a = try Tokenizer(metadata: folder.metadata, source: folder.path)
        let b = try Tokenizer(metadata: gguf.metadata, source: gguf.path)
        for text in ["Hello world", " the quick brown fox, 12345!", "  leading spaces\nand\ttabs", "unicode: é ü 你好 🙂", ""] {
            #expect(a.encode(text, addBOS: true) == b.encode(text, addBOS: true), "\(family): \(text)")
        }
    }

    /// A bf16 checkpoint (the tiny llama saved by transformers in bfloat16): at f32 the
    /// logits transformers computes in float32 from it, at native its weights as stored.
    @Test func bf16FolderMatchesTransformers() throws {
        let resources = try #require(Bundle.module.url(forResource: "Resources", withExtension: nil))
        let folder = try TinyModels.bf16Folder("llama", resources: resources)
        let reference = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: TinyModels.sourceFolder("llama", resources: resources)
            .appendingPathComponent("bf16.json"))) as? [String: Any])
        let prompt = try #require(reference["prompt_ids"] as? [Int])
        let expected = try #require(reference["logits"] as? [[Double]]).flatMap { $0.map(Float.init) }
        let engine = try Engine(path: folder.path, precision: .f32, threads: 2, context: 128)
        let logits = try engine.logitsAtEveryPosition(for: prompt)
        try #require(logits.count == expected.count)
        let worst = zip(logits, expected).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-4, "max |Δlogit| = \(worst)")
        var greedy = SamplingParameters()
        greedy.temperature = 0
        let tokens = try engine.generate(prompt: prompt, maxTokens: 16, sampling: greedy, ignoreEndOfGeneration: true) { _ in }.tokens
        #expect(tokens == reference["greedy_ids"] as? [Int])
        let native = try Engine(path: folder.path, threads: 2, context: 128)
        #expect(native.format == .bf16)
        #expect(Double(native.weightBytes) < 0.6 * Double(engine.weightBytes))
    }

    /// Without tokenizer.model, the SentencePiece vocabulary comes from tokenizer.json's
    /// byte-fallback BPE: the same ids as the GGUF converted from tokenizer.model.
    @Test(arguments: ["llama", "phi3"])
    func sentencePieceFromTokenizerJSON(family: String) throws {
        let source = try FamilyReferenceTests.folder(family)
        let copy = Scratch.root.appendingPathComponent("nibble-hf-\(family)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: copy) }
        for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(name), to: copy.appendingPathComponent(name))
        }
        let folder = try HuggingFaceFolder(path: copy.path)
        let gguf = try GGUFFile(path: source.appendingPathComponent("\(family).gguf").path)
        #expect(folder.metadata["tokenizer.ggml.tokens"] == gguf.metadata["tokenizer.ggml.tokens"])
        let a = try Tokenizer(metadata: folder.metadata, source: folder.path)
        let b = try Tokenizer(metadata: gguf.metadata, source: gguf.path)
        for text in ["Hello world", " the quick brown fox, 12345!", "program is free software", "unicode: é 你好"] {
            #expect(a.encode(text) == b.encode(text), "\(family): \(text)")
        }
    }
}
