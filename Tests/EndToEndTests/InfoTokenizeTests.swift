import Foundation
import Testing
import TestFixtures

@Suite struct InfoTests {
    @Test func infoJSONDescribesSmolLM2() throws {
        let model = try requireModel()
        let run = try nibble(["info", "--model", model, "--json", "--context", "4096"])
        #expect(run.status == 0, "\(run.stderr)")
        let info = try jsonObject(run.stdout)
        let size = try FileManager.default.attributesOfItem(atPath: model)[.size] as? Int
        #expect(info["file"] as? String == model)
        #expect(info["file_bytes"] as? Int == size)
        #expect(info["architecture"] as? String == "llama")
        #expect(info["context_length"] as? Int == 8192)
        #expect(info["vocab_size"] as? Int == 49152)
        #expect(info["chat_template"] as? Bool == true)
        #expect(info["tensor_types"] as? [String: Int] == ["Q4_1": 210, "F32": 61, "Q8_0": 1])
        // SmolLM2-135M: 30 layers of q, o (576²), k, v (576×192), gate, up, down (576×1536);
        // a tied 49152×576 embedding; 61 norm vectors of 576.
        let linear = 30 * (2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536)
        let parameters = linear + 49152 * 576 + 61 * 576
        #expect(info["parameters"] as? Int == parameters)
        let precisions = try #require(info["precisions"] as? [[String: Any]])
        let f32 = try #require(precisions.first { $0["name"] as? String == "f32" })
        #expect(f32["weight_bytes"] as? Int == 4 * parameters)
        #expect(f32["linear_weight_bytes"] as? Int == 4 * linear)
        #expect(f32["kv_bytes_per_token"] as? Int == 30 * 2 * 192 * 4)
        let total = try #require(f32["total_bytes"] as? Int)
        #expect(total > 4 * parameters + 4096 * 30 * 2 * 192 * 4)
        #expect(f32["fits"] as? Bool == true)
    }

    @Test func infoTable() throws {
        let run = try nibble(["info", "--model", try requireModel()])
        #expect(run.status == 0)
        #expect(run.stdout.contains("llama, 30 layers, width 576"))
        #expect(run.stdout.contains("Q4_1 210"))
    }
}

@Suite struct TokenizeCLITests {
    @Test func specialTokensOnlyWhenAsked() throws {
        let model = try requireModel()
        let text = "<|im_start|>user"
        let plain = try nibble(["tokenize", "--model", model, "--text", text])
        let special = try nibble(["tokenize", "--model", model, "--text", text, "--special"])
        let plainIDs = try #require(JSONSerialization.jsonObject(with: Data(plain.stdout.utf8)) as? [Int])
        let specialIDs = try #require(JSONSerialization.jsonObject(with: Data(special.stdout.utf8)) as? [Int])
        #expect(specialIDs == [1, 4093])          // <|im_start|> is id 1, "user" one token
        #expect(!plainIDs.contains(1) && plainIDs.count > 2)
        // SmolLM2 adds no BOS; --bos adds <|endoftext|>-style BOS only when the vocab has one.
        let bos = try nibble(["tokenize", "--model", model, "--text", "hi", "--bos"])
        let noBOS = try nibble(["tokenize", "--model", model, "--text", "hi"])
        #expect(bos.stdout.hasPrefix("[1, ") && !noBOS.stdout.hasPrefix("[1, "))
    }

    @Test func tokenizeMatchesFixtureThroughCLI() throws {
        let model = try requireModel()
        let reference = try fixture("TokenizersTests", "smollm2-tokenize.json")
        let cases = try #require(reference["cases"] as? [[String: Any]])
        // A handful through the binary (the library test covers every case).
        for c in cases.prefix(6) {
            let text = try #require(c["text"] as? String)
            let run = try nibble(["tokenize", "--model", model, "--text", text])
            let ids = try #require(JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [Int])
            #expect(ids == c["ids"] as? [Int], "\(c["name"] ?? text)")
        }
    }
}

/// A Hugging Face folder is a model like a GGUF file: `info`, `tokenize` and
/// `generate` take it, and say what it is.
@Suite struct HuggingFaceFolderCLITests {
    /// The tiny model folder of `family`, with its model files written out (`TinyModels`).
    static func fixture(_ family: String) throws -> String {
        let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("InferenceTests/Resources")
        return try TinyModels.folder(family, resources: resources).path
    }

    @Test func infoTokenizeAndGenerateTakeAFolder() throws {
        let folder = try Self.fixture("qwen2")
        let info = try nibble(["info", "--model", folder, "--json"])
        #expect(info.status == 0, "\(info.stderr)")
        let object = try jsonObject(info.stdout)
        #expect(object["architecture"] as? String == "qwen2")
        #expect(object["vocab_size"] as? Int == 320)
        #expect(object["tensor_types"] as? [String: Int] == ["F32": 26])
        let fromFolder = try nibble(["tokenize", "--model", folder, "--text", "Hello world, 42"])
        let fromGGUF = try nibble(["tokenize", "--model", folder + "/qwen2.gguf", "--text", "Hello world, 42"])
        #expect(fromFolder.status == 0 && fromFolder.stdout == fromGGUF.stdout, "\(fromFolder.stderr)")
        let run = try nibble(["generate", "--model", try Self.fixture("gpt2"), "--prompt", "the", "--max-tokens", "4", "--precision", "f32"])
        #expect(run.status == 0, "\(run.stderr)")
    }

    /// `quantize FOLDER` writes a GGUF whose greedy tokens at its own precision equal the
    /// folder's at that precision, with the converter's config and tokenizer.
    @Test(arguments: ["llama", "mistral", "qwen2", "qwen3", "gemma3", "phi3", "gpt2"])
    func quantizeAFolder(family: String) throws {
        let folder = try Self.fixture(family)
        let out = try temporaryDirectory().appendingPathComponent("\(family)-f16.gguf").path
        let run = try nibble(["quantize", folder, "--precision", "f16", "--output", out])
        #expect(run.status == 0, "\(run.stderr)")
        let written = try jsonObject(nibble(["info", "--model", out, "--json"]).stdout)
        let converted = try jsonObject(nibble(["info", "--model", folder + "/\(family).gguf", "--json"]).stdout)
        for key in ["architecture", "vocab_size", "context_length", "chat_template"] {
            #expect("\(written[key] ?? "nil")" == "\(converted[key] ?? "nil")", "\(family): \(key)")
        }
        let args = ["generate", "--temperature", "0", "--max-tokens", "12", "--prompt", "the quick brown", "--json"]
        let fromFolder = try jsonObject(nibble(args + ["--model", folder, "--precision", "f16"]).stdout)
        let fromFile = try jsonObject(nibble(args + ["--model", out]).stdout)
        #expect(fromFolder["tokens"] as? [Int] != nil)
        #expect(fromFolder["tokens"] as? [Int] == fromFile["tokens"] as? [Int], "\(family)")
    }
}
