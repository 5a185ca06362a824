import Foundation
import Testing
import ModelFiles
import TestFixtures
@testable import Inference

/// The tiny random models of Tools/reference_families.py, one per family, built with
/// transformers and converted by llama.cpp's own convert_hf_to_gguf.py: loaded from
/// their GGUF, every position's f32 logits are within 1e-4 of transformers' and the 16
/// greedy tokens are transformers'. Each exercises what its family adds: GQA, Q/K/V
/// biases, per-head Q/K norms, Gemma's scaled embeddings, post-norms, local/global RoPE
/// bases, a sliding window shorter than the sequence and soft-capped logits, Phi-3's
/// fused QKV and gate/up with LongRoPE factors, GPT-2's learned positions, LayerNorms
/// and biases.
@Suite struct FamilyReferenceTests {
    static let families = ["llama", "mistral", "qwen2", "qwen3", "gemma3", "phi3", "gpt2"]

    /// The family's folder with its model files written out (`TinyModels`).
    static func folder(_ family: String) throws -> URL {
        let resources = try #require(Bundle.module.url(forResource: "Resources", withExtension: nil))
        return try TinyModels.folder(family, resources: resources)
    }

    static func reference(_ family: String) throws -> [String: Any] {
        let data = try Data(contentsOf: try folder(family).appendingPathComponent("reference.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func floats(_ base64: Any?) throws -> [Float] {
        let text = try #require(base64 as? String)
        let data = try #require(Data(base64Encoded: text))
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// The family's GGUF; for Mistral, whose window only config.json records (the
    /// converter drops it), a copy with `llama.attention.sliding_window` set as a file
    /// that records it would.
    static func gguf(_ family: String) throws -> String {
        let path = try folder(family).appendingPathComponent("\(family).gguf").path
        guard family == "mistral" else { return path }
        let window = try #require((try reference(family)["engine"] as? [String: Any])?["sliding_window"] as? Int)
        return try rewrite(path, as: "mistral-window.gguf") { metadata, _ in
            metadata.append((key: "llama.attention.sliding_window", value: .uint32(UInt32(window))))
        }
    }

    @Test(arguments: families)
    func logitsAndGreedyTokensMatchTransformers(family: String) throws {
        let reference = try Self.reference(family)
        let tokens = try #require(reference["tokens"] as? [Int])
        let expected = try Self.floats(reference["logits_f32_le_base64"])
        let path = try Self.gguf(family)
        for threads in [1, 2] {
            let engine = try Engine(path: path, precision: .f32, threads: threads, context: 128)
            #expect(engine.config.architecture == reference["gguf_arch"] as? String)
            let logits = try engine.logitsAtEveryPosition(for: tokens)
            try #require(logits.count == expected.count)
            let worst = zip(logits, expected).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-4, "\(family): max |Δlogit| = \(worst) with \(threads) threads")

            var greedy = SamplingParameters()
            greedy.temperature = 0
            let result = try engine.generate(prompt: tokens, maxTokens: 16, sampling: greedy, ignoreEndOfGeneration: true) { _ in }
            #expect(result.tokens == reference["greedy_ids"] as? [Int], "\(family)")
        }
    }

    /// What the files themselves say is what the engine does: Mistral's converted GGUF
    /// has no window, so it runs full attention, as llama.cpp does (the fixture's
    /// full-attention argmaxes); and the sliding window changes the logits from
    /// position `window` on, not before.
    @Test func mistralWithoutTheWindowKeyRunsFullAttention() throws {
        let reference = try Self.reference("mistral")
        let tokens = try #require(reference["tokens"] as? [Int])
        let checks = try #require(reference["checks"] as? [String: Any])
        let window = try #require((reference["engine"] as? [String: Any])?["sliding_window"] as? Int)
        let path = try Self.folder("mistral").appendingPathComponent("mistral.gguf").path
        let full = try Engine(path: path, precision: .f32, threads: 2, context: 128)
        #expect(full.config.slidingWindow == nil)
        let vocab = full.config.vocabSize
        let fullLogits = try full.logitsAtEveryPosition(for: tokens)
        let argmax = (0..<tokens.count).map { p in (0..<vocab).max { fullLogits[p * vocab + $0] < fullLogits[p * vocab + $1] }! }
        #expect(argmax == checks["no_window_argmax"] as? [Int])
        let sliding = try Engine(path: try Self.gguf("mistral"), precision: .f32, threads: 2, context: 128)
        #expect(sliding.config.slidingWindow == window && sliding.config.slidingLayers.allSatisfy { $0 })
        let slidingLogits = try sliding.logitsAtEveryPosition(for: tokens)
        #expect(slidingLogits[..<(window * vocab)] == fullLogits[..<(window * vocab)])
        #expect(slidingLogits[(window * vocab)...] != fullLogits[(window * vocab)...])
    }

    /// A sliding layer keeps only its window plus one prefill chunk, as a ring. Past the
    /// ring's end (positions wrap), decoding token by token, prefilling in chunks, and
    /// going back to an earlier prefix give what a cache holding every position gives;
    /// a prefix whose keys the ring has overwritten is read again from the start.
    @Test func slidingWindowRingMatchesAFullCache() throws {
        let engine = try Engine(path: try Self.gguf("gemma3"), precision: .f32, threads: 2, context: 128)
        let c = engine.config, vocab = c.vocabSize
        let window = try #require(c.slidingWindow)
        #expect(c.slidingLayers == [true, false])
        let ring = window + Engine.prefillChunk - 1
        #expect(engine.cache.capacities == [ring, 128])
        var rng = SystemRandomNumberGenerator()
        let tokens = (0..<120).map { _ in Int.random(in: 3..<vocab, using: &rng) }

        /// Logits of every position of `sequence` with a cache that never wraps.
        func unwrapped(_ sequence: [Int]) throws -> [Float] {
            let cache = try KVCache(capacities: [128, 128], kvDim: c.kvDim, headDim: c.headDim, type: .f32)
            var out: [Float] = []
            var start = 0
            while start < sequence.count {
                let n = min(Engine.prefillChunk, sequence.count - start)
                let ids = sequence[start..<(start + n)].map { Int32($0) }
                ids.withUnsafeBufferPointer {
                    engine.model.forward(tokens: $0.baseAddress!, count: n, start: start, cache: cache, state: engine.state,
                                         pool: engine.pool, logitsFrom: 0)
                }
                out += UnsafeBufferPointer(start: engine.state.logits, count: n * vocab)
                start += n
            }
            return out
        }
        func close(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Bool {
            a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 1e-5 }
        }
        let reference = try unwrapped(tokens)

        // One long prefill (chunks of 64: the ring wraps in the second).
        let chunked = try engine.logitsAtEveryPosition(for: tokens)
        #expect(close(chunked[...], reference[...]))

        // Token by token: each prompt extends the cached one by one token.
        var greedy = SamplingParameters()
        greedy.temperature = 0
        engine.resetCache()
        for n in 1...tokens.count {
            _ = try engine.generate(prompt: Array(tokens[..<n]), maxTokens: 1, sampling: greedy) { _ in }
            #expect(engine.lastPrefill.computed == 1)
            let last = UnsafeBufferPointer(start: engine.state.logits, count: vocab)
            #expect(close(Array(last)[...], reference[((n - 1) * vocab)..<(n * vocab)]), "position \(n - 1)")
        }

        // Back to a prefix whose window is still in the ring: only the new tokens run.
        let edited = Array(tokens[..<100]) + [5, 6, 7]
        _ = try engine.generate(prompt: edited, maxTokens: 1, sampling: greedy) { _ in }
        #expect(engine.lastPrefill == (100, 3))
        let last = Array(UnsafeBufferPointer(start: engine.state.logits, count: vocab))
        #expect(close(last[...], try unwrapped(edited).suffix(vocab)))

        // Back to a prefix whose window the ring has overwritten: read again from 0.
        let early = Array(tokens[..<30]) + [5, 6, 7]
        _ = try engine.generate(prompt: early, maxTokens: 1, sampling: greedy) { _ in }
        #expect(engine.lastPrefill == (0, early.count))
        let again = Array(UnsafeBufferPointer(start: engine.state.logits, count: vocab))
        #expect(close(again[...], try unwrapped(early).suffix(vocab)))
    }

    /// The cache's slots come in blocks (`KVCache.blockSlots`, so that huge pages are
    /// committed as positions fill it). A cache of 16-slot blocks gives the logits of a cache
    /// of one block per layer bit for bit, in every cache format the head dimension allows:
    /// a prefill, then decode token by token on three threads (with two KV heads, positions
    /// split in three parts from 96 on), past the end of a sliding layer's ring (Mistral's,
    /// every layer), which falls inside a block.
    @Test(arguments: ["llama", "mistral"])
    func blocksOfSlotsAttendAsOneBlock(family: String) throws {
        let engine = try Engine(path: try Self.gguf(family), precision: .f32, threads: 3, context: 128)
        let c = engine.config, vocab = c.vocabSize, capacities = engine.cache.capacities
        #expect(capacities.allSatisfy { $0 <= KVCache.defaultBlockSlots })  // one block each by default
        // Slots and block widths: whole tiles in one block; whole blocks, narrower where 256 waste more than 1/16.
        #expect(KVCache.geometry(capacity: 100, blockSlots: 256) == (112, 112))
        #expect(KVCache.geometry(capacity: 4096, blockSlots: 256) == (4096, 256))
        #expect(KVCache.geometry(capacity: 3000, blockSlots: 256) == (3072, 256))
        #expect(KVCache.geometry(capacity: 575, blockSlots: 256) == (576, 64))  // Gemma 3's rings
        #expect(KVCache.geometry(capacity: 79, blockSlots: 16) == (80, 16))
        #expect(c.kvHeadCount == 2 && c.layerCount >= 2)  // several heads and layers a block
        if family == "mistral" { #expect(capacities.allSatisfy { $0 < 120 && $0 % 16 != 0 }) }
        var rng = SystemRandomNumberGenerator()
        let tokens = (0..<120).map { _ in Int32(Int.random(in: 3..<vocab, using: &rng)) }
        for type in [KVCacheType.f32, .f16, .q8] where type.supports(headDim: c.headDim) {
            let blocks = try KVCache(capacities: capacities, kvDim: c.kvDim, headDim: c.headDim, type: type, blockSlots: 16)
            let whole = try KVCache(capacities: capacities, kvDim: c.kvDim, headDim: c.headDim, type: type)
            var logits: [[Float]] = [[], []]
            for (i, cache) in [blocks, whole].enumerated() {
                var start = 0
                while start < tokens.count {
                    let n = start == 0 ? 40 : 1
                    tokens[start..<(start + n)].withUnsafeBufferPointer {
                        engine.model.forward(tokens: $0.baseAddress!, count: n, start: start, cache: cache, state: engine.state,
                                             pool: engine.pool, logitsFrom: n - 1)
                    }
                    logits[i] += UnsafeBufferPointer(start: engine.state.logits, count: vocab)
                    start += n
                }
            }
            #expect(logits[0] == logits[1], "\(family), \(type) cache")
        }
    }
}

/// Gemma 3 270M (base) Q4_K_M, the file `make gemma` fetches, against transformers
/// loading the same file dequantised to f32 (Tools/reference_families.py).
@Suite struct Gemma3RealModelTests {
    static func reference() throws -> [String: Any] { try resource("gemma3-270m-greedy.json") }

    /// The tokens of "The capital of France is" (with BOS), the last position's logits
    /// and the 32 greedy tokens at f32 are transformers'.
    @Test func f32MatchesTransformers() throws {
        let reference = try Self.reference()
        let engine = try Engine(path: gemmaPath, precision: .f32, threads: 2, context: 256)
        let prompt = engine.promptTokens(try #require(reference["prompt"] as? String))
        #expect(prompt == reference["prompt_ids"] as? [Int])
        let logits = try engine.logits(for: prompt)
        let top = try #require(reference["last_prompt_logits_top50"] as? [[Double]])
        for pair in top {
            let id = Int(pair[0]), value = Float(pair[1])
            #expect(abs(logits[id] - value) < 2e-3 * max(1, abs(value)), "token \(id): \(logits[id]) vs \(value)")
        }
        var greedy = SamplingParameters()
        greedy.temperature = 0
        let result = try engine.generate(prompt: prompt, maxTokens: 32, sampling: greedy) { _ in }
        #expect(result.tokens == reference["greedy_ids"] as? [Int])
    }

    /// At native every matrix runs on the file's own blocks; the first greedy tokens
    /// agree with f32 until a step where f32's top two are close.
    @Test func nativeRunsTheFilesBlocks() throws {
        let reference = try Self.reference()
        let engine = try Engine(path: gemmaPath, precision: .native, threads: 2, context: 256)
        #expect(engine.plan.isNative && engine.plan.summary == "q5_0 with q4_K, q6_K, q8")
        let prompt = try #require(reference["prompt_ids"] as? [Int])
        let expected = try #require(reference["greedy_ids"] as? [Int])
        var greedy = SamplingParameters()
        greedy.temperature = 0
        let result = try engine.generate(prompt: prompt, maxTokens: 8, sampling: greedy) { _ in }
        #expect(Array(result.tokens.prefix(3)) == Array(expected.prefix(3)))
    }

    /// Decode with one KV head on two threads splits each layer's positions in two and
    /// merges the parts (Layers.attention); on one thread it does not. Prompts of 64k + 1
    /// tokens past the 512-token window (the last prefill chunk is one token, run as decode
    /// runs it, so every layer splits) give the same logits both ways to rounding: the split
    /// changes only the order of the softmax's sums. (Greedy tokens compared instead flipped
    /// at a near-tie when the scores' rounding changed.)
    @Test func splitDecodeAttentionDecodesAsWhole() throws {
        var logits: [[Float]] = []
        for threads in [1, 2] {
            let engine = try Engine(path: gemmaPath, precision: .f32, threads: threads, context: 1024)
            let sentence = engine.tokenizer.encode("The river runs past the old mill, and the miller counts the sacks of grain. ")
            for count in [641, 705] {
                let prompt = engine.promptTokens("") + (0..<(count - 1)).map { sentence[$0 % sentence.count] }
                #expect(prompt.count % Engine.prefillChunk == 1)
                logits.append(try engine.logits(for: prompt))
            }
        }
        for i in 0..<2 {
            let whole = logits[i], split = logits[i + 2]
            let scale = whole.map { abs($0) }.max()!, worst = zip(whole, split).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-5 * scale, "prompt \(i): \(worst) of \(scale)")
        }
    }
}

/// What `bench`'s roofline counts as read per decoded token.
@Suite struct RooflineTests {
    /// Keys and values: every position so far, a sliding layer's window at most (tiny
    /// Mistral slides on every layer).
    @Test func keysAndValuesReadStopAtTheWindow() throws {
        let engine = try Engine(path: try FamilyReferenceTests.gguf("mistral"), precision: .f32, threads: 1, context: 128)
        let c = engine.config
        let window = try #require(c.slidingWindow)
        let perPosition = c.layerCount * 2 * c.kvDim * 4
        #expect(engine.kvBytesRead(atPosition: 0) == perPosition)
        #expect(engine.kvBytesRead(atPosition: window - 2) == (window - 1) * perPosition)
        #expect(engine.kvBytesRead(atPosition: window + 20) == window * perPosition)
        let full = try Engine(path: try FamilyReferenceTests.gguf("llama"), precision: .f32, threads: 1, context: 128)
        #expect(full.kvBytesRead(atPosition: 99) == 100 * full.config.layerCount * 2 * full.config.kvDim * 4)
    }

    /// Weights: all of them when the head is the embedding; without the token embedding
    /// when the head has its own matrix (Phi-3), and without GPT-2's position table.
    @Test func lookupTablesAreNotRead() throws {
        for (family, lookups) in [("llama", [String]()), ("phi3", ["token_embd.weight"]), ("gpt2", ["position_embd.weight"])] {
            let engine = try Engine(path: try FamilyReferenceTests.gguf(family), precision: .f32, threads: 1, context: 64)
            let skipped = try lookups.reduce(0) { sum, name in
                let t = try #require(engine.source.tensor(named: name), "\(family): \(name)")
                return sum + 4 * t.elementCount
            }
            #expect((engine.source.tensor(named: "output.weight") != nil) == (family == "phi3"), "\(family)")
            #expect(engine.weightBytesPerToken == engine.weightBytes - skipped, "\(family)")
        }
    }
}
