import Foundation
import Testing

@Suite struct PrecisionCLITests {
    @Test func infoListsEveryPrecision() throws {
        let info = try jsonObject(nibble(["info", "--model", try requireModel(), "--json"]).stdout)
        let precisions = try #require(info["precisions"] as? [[String: Any]])
        #expect(precisions.compactMap { $0["name"] as? String } == ["f32", "f16", "bf16", "q8", "q4", "nf4", "q2"])
        let f32 = try #require(precisions[0]["linear_weight_bytes"] as? Int)
        let q4 = try #require(precisions[4]["linear_weight_bytes"] as? Int)
        #expect(q4 * 32 == f32 * 5)   // 5 bits per weight, exactly
    }

    @Test func memoryLimitRefusesWhatDoesNotFitAndAutoFindsWhatDoes() throws {
        let model = try requireModel()
        let tooSmall = try nibble(["generate", "--model", model, "--prompt", "hi", "--max-tokens", "1", "--memory-limit", "180M"])
        #expect(tooSmall.status == 1)
        #expect(tooSmall.stderr.contains("auto") && tooSmall.stderr.contains("q2"), "\(tooSmall.stderr)")
        #expect(tooSmall.stderr.split(separator: "\n").count <= 3)
        let auto = try nibble(["generate", "--model", model, "--prompt", "hi", "--max-tokens", "1", "--memory-limit", "150M",
                               "--precision", "auto", "--context", "512", "--json"])
        #expect(auto.status == 0, "\(auto.stderr)")
        let bad = try nibble(["info", "--model", model, "--memory-limit", "lots"])
        #expect(bad.status != 0 && bad.stderr.contains("--memory-limit"))
    }

    /// `quantize` writes GGUFs that Nibble reads back with the expected ggml types, and
    /// whose greedy text at that precision equals the original file's.
    @Test func quantizeRoundTrip() throws {
        let model = try requireModel()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (precision, types) in [("q8", ["Q8_0": 211, "F32": 61]), ("bf16", ["BF16": 211, "F32": 61]), ("q4", ["Q4_1": 210, "Q8_0": 1, "F32": 61])] {
            let out = dir.appendingPathComponent("\(precision).gguf").path
            let run = try nibble(["quantize", "--model", model, "--precision", precision, "--output", out])
            #expect(run.status == 0, "\(run.stderr)")
            let info = try jsonObject(nibble(["info", "--model", out, "--json"]).stdout)
            #expect(info["tensor_types"] as? [String: Int] == types, "\(precision)")
            let args = ["generate", "--temperature", "0", "--max-tokens", "16", "--prompt", "The capital of France is", "--json"]
            let original = try jsonObject(nibble(args + ["--model", model, "--precision", precision]).stdout)
            let written = try jsonObject(nibble(args + ["--model", out]).stdout)
            #expect(original["tokens"] as? [Int] == written["tokens"] as? [Int], "\(precision)")
        }
        let refused = try nibble(["quantize", "--model", model, "--precision", "nf4", "--output", dir.appendingPathComponent("x.gguf").path])
        #expect(refused.status == 1 && refused.stderr.contains("nf4"))
    }

    /// `eval --context` is the window length (the second half of each window is scored:
    /// 63 tokens of a 128-token window); `--ctx`, its old name, still works.
    @Test func evalRuns() throws {
        let model = try requireModel()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = dir.appendingPathComponent("text.txt").path
        try String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 40).write(toFile: text, atomically: true, encoding: .utf8)
        let eval = try jsonObject(nibble(["eval", "--model", model, "--precision", "q8", "--file", text, "--context", "128", "--json"]).stdout)
        #expect(eval["precision"] as? String == "q8")
        let tokens = eval["tokens"] as? Int ?? 0
        #expect(tokens >= 63 && tokens % 63 == 0, "\(tokens) tokens scored")
        #expect((eval["perplexity"] as? Double ?? 0) > 1)
        for key in ["kld_mean", "kld_p99", "top1_agreement"] { #expect(eval[key] is Double, "\(key)") }
        let old = try jsonObject(nibble(["eval", "--model", model, "--precision", "q8", "--file", text, "--ctx", "128", "--json"]).stdout)
        #expect(old["tokens"] as? Int == tokens)
    }
}
