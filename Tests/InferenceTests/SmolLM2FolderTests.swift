import Foundation
import Testing
import ModelFiles
@testable import Inference
import TestFixtures

/// SmolLM2-135M-Instruct as Hugging Face folders written from its GGUF by
/// Tools/make_hf_folder.py (`make smollm2-hf smollm2-hf-f32`; `make test` makes both and
/// sets the variables): the f32 folder holds the GGUF's dequantised values, so folder
/// and GGUF must give the same greedy tokens at f32 and at q8, and those are
/// transformers' on the folder (smollm2-hf-greedy.json); the bf16 folder gives
/// transformers' greedy tokens for the bf16 folder.
let smollm2Folders: (bf16: String, f32: String)? = {
    let env = ProcessInfo.processInfo.environment
    guard let bf16 = env["NIBBLE_SMOLLM2_HF"], let f32 = env["NIBBLE_SMOLLM2_HF_F32"], !bf16.isEmpty, !f32.isEmpty else { return nil }
    return (bf16, f32)
}()

@Suite(.serialized, .enabled(if: smollm2Folders != nil, "NIBBLE_SMOLLM2_HF / NIBBLE_SMOLLM2_HF_F32 not set (make test sets them)"))
struct SmolLM2FolderTests {
    static var folders: (bf16: String, f32: String)? { smollm2Folders }

    static func prompts() throws -> [(name: String, ids: [Int])] {
        let reference = try resource("smollm2-hf-greedy.json")
        let prompts = try #require(reference["prompts"] as? [[String: Any]])
        return try prompts.map { (try #require($0["name"] as? String), try #require($0["ids"] as? [Int])) }
    }

    static func expected(_ folder: String, _ prompt: String) throws -> (ids: [Int], margins: [Double]) {
        let results = try #require(try resource("smollm2-hf-greedy.json")["results"] as? [String: Any])
        let run = try #require((results[folder] as? [String: Any])?[prompt] as? [String: Any])
        return (try #require(run["greedy_ids"] as? [Int]), try #require(run["greedy_margins"] as? [Double]))
    }

    static func greedy(_ engine: Engine, _ prompt: [Int], count: Int) throws -> [Int] {
        var greedy = SamplingParameters()
        greedy.temperature = 0
        return try engine.generate(prompt: prompt, maxTokens: count, sampling: greedy, ignoreEndOfGeneration: true) { _ in }.tokens
    }

    @Test func f32FolderAndGGUFAgreeAtF32AndQ8() throws {
        let folders = try #require(Self.folders)
        for precision in [Precision.f32, .q8] {
            let folder = try Engine(path: folders.f32, precision: precision, threads: 2, context: 256)
            let gguf = try Engine(path: modelPath, precision: precision, threads: 2, context: 256)
            #expect(folder.source is HuggingFaceFolder)
            #expect(folder.weightBytes == gguf.weightBytes)
            for (name, ids) in try Self.prompts() {
                let fromFolder = try Self.greedy(folder, ids, count: 32)
                #expect(fromFolder == (try Self.greedy(gguf, ids, count: 32)), "\(precision) \(name)")
                if precision == .f32 {
                    #expect(fromFolder == (try Self.expected("f32_folder", name).ids), "\(name): transformers")
                }
            }
        }
    }

    /// The bf16 folder at native (bf16 weights as stored) and at f32 (the same values
    /// in f32, as transformers computes): transformers' tokens up to a step whose top
    /// two logits are within 1e-2 (a valid rounding may branch there).
    @Test func bf16FolderGivesTransformersTokens() throws {
        let folders = try #require(Self.folders)
        let engine = try Engine(path: folders.bf16, precision: .f32, threads: 2, context: 256)
        for (name, ids) in try Self.prompts() {
            let (expected, margins) = try Self.expected("bf16_folder", name)
            let mine = try Self.greedy(engine, ids, count: expected.count)
            let agreed = zip(mine, expected).prefix { $0 == $1 }.count
            if agreed < expected.count {
                #expect(margins[agreed] < 1e-2, "\(name): diverged at \(agreed) where transformers' margin is \(margins[agreed])")
            }
        }
        let native = try Engine(path: folders.bf16, threads: 2, context: 256)
        #expect(native.format == .bf16)
    }
}

/// The pirate LoRA trained by Tools/train_smollm2_lora.py on the bf16 SmolLM2 folder (r 8
/// on q_proj and v_proj, BF16; packed in smollm2-pirate-lora.json): with it, Nibble's
/// greedy replies at f32 are transformers + peft's (each starting "Ahoy!"); without it,
/// the base's; on the GGUF the folder was written from (Q/K rows permuted, not rounded
/// to bf16) its replies still start "Ahoy".
@Suite(.enabled(if: smollm2Folders != nil, "NIBBLE_SMOLLM2_HF not set (make test sets it)"))
struct PirateAdapterTests {
    @Test func repliesAreTransformersWithAndWithoutTheAdapter() throws {
        let folders = try #require(smollm2Folders)
        let reference = try resource("smollm2-pirate-lora.json")
        let packed = try #require(reference["peft_safetensors"] as? [String: String])
        let config = try #require((reference["adapter"] as? [String: Any])?["adapter_config"])
        let adapter = Scratch.root.appendingPathComponent("nibble-pirate-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: adapter) }
        try FileManager.default.createDirectory(at: adapter, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: config).write(to: adapter.appendingPathComponent("adapter_config.json"))
        var file = Data()
        let header = Data(try #require(packed["header"]).utf8)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(header)
        let data = try #require(packed["data"])
        file.append(try #require(Data(base64Encoded: data)))
        try file.write(to: adapter.appendingPathComponent("adapter_model.safetensors"))

        let prompts = try #require(reference["prompts"] as? [[String: Any]])
        var greedy = SamplingParameters()
        greedy.temperature = 0
        for base in [folders.bf16, modelPath] {
            let engine = try Engine(path: base, precision: .f32, threads: 2, context: 512)
            for prompt in prompts {
                let ids = try #require(prompt["ids"] as? [Int])
                for (key, path) in [("without_adapter", nil), ("with_adapter", adapter.path)] as [(String, String?)] {
                    try engine.setAdapter(path)
                    let run = try #require(prompt[key] as? [String: Any])
                    // transformers' ids end with <|im_end|> (2), where Nibble stops without it.
                    var expected = try #require(run["ids"] as? [Int])
                    let stopped = expected.last == 2
                    if stopped { expected.removeLast() }
                    let margins = try #require(run["margins"] as? [Double])
                    let mine = try engine.generate(prompt: ids, maxTokens: expected.count + (stopped ? 1 : 0), sampling: greedy) { _ in }.tokens
                    let agreed = zip(mine, expected).prefix { $0 == $1 }.count
                    if base == modelPath {
                        // Not the weights it was trained on (not rounded to bf16): the style alone.
                        if key == "with_adapter" { #expect(engine.tokenizer.decode(mine).hasPrefix("Ahoy"), "\(prompt["name"] ?? "")") }
                    } else if agreed < max(expected.count, mine.count) {
                        #expect(agreed < margins.count && margins[agreed] < 1e-2, "\(prompt["name"] ?? "") \(key): diverged at \(agreed) (margins \(margins.count)): \(engine.tokenizer.decode(mine))")
                    }
                }
            }
        }
    }
}
