import CKernels
import Foundation
import Testing
import ModelFiles
import Quantization
@testable import Inference

let gemmaPath: String = {
    let env = ProcessInfo.processInfo.environment
    if let path = env["NIBBLE_GEMMA"], !path.isEmpty { return path }
    let cache = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.cache")
    return cache + "/nibble/models/gemma-3-270m-q4_k_m.gguf"
}()

@Suite struct PrecisionTests {
    @Test func namesAndAliases() {
        let cases: [(String, Precision?)] = [("32", .f32), ("16", .bf16), ("8", .q8), ("4", .q4), ("2", .q2), ("f16", .f16),
                                             ("BF16", .bf16), ("nf4", .nf4), ("native", .native), ("auto", .auto), ("q5", nil), ("", nil)]
        for (name, expected) in cases { #expect(Precision(argument: name) == expected, "\(name)") }
    }

    @Test func nativeFollowsTheFile() throws {
        #expect(WeightPlan.nativeFormat(of: try GGUFFile(path: modelPath)) == .q4)       // Q4_1 linear weights
        #expect(WeightPlan.nativeFormat(of: try GGUFFile(path: gemmaPath)) == .q5_0)     // most of its linear weights are Q5_0
        #expect(WeightPlan.exactFormat(of: .q4_0) == .q4 && WeightPlan.exactFormat(of: .q8_0) == .q8)
        #expect(WeightPlan.exactFormat(of: .q5_0) == nil && WeightPlan.exactFormat(of: .q4_K) == nil)
        #expect(WeightPlan.nativeFormat(of: .q4_K) == .q4_K && WeightPlan.nativeFormat(of: .q4_0) == .q4_0
                && WeightPlan.nativeFormat(of: .q3_K) == nil)
        // SmolLM2 (Q4_1 linear, Q8_0 embedding) at native is exactly the q4 plan.
        #expect(WeightPlan.native(try GGUFFile(path: modelPath)) == WeightPlan(linear: .q4))
        #expect(WeightPlan(linear: .q4).embedding == .q8 && WeightPlan(linear: .nf4).embedding == .q8)
        #expect(WeightPlan(linear: .bf16).embedding == .bf16 && WeightPlan(linear: .f32).kvCache == .f32)
        #expect(WeightPlan(linear: .q8).kvCache == .f16 && WeightPlan(linear: .q4).withKVCache(.q8).kvCache == .q8)
        // Bytes of one head's row: q8 is the codes and an f32 scale per 32 (as the kernels say).
        for type in KVCacheType.allCases {
            #expect(type.rowBytes(headDim: 64) == Int(nb_kv_row_bytes(type.kernelFormat, 64)))
        }
        #expect(KVCacheType.q8.rowBytes(headDim: 64) == 72 && KVCacheType.f16.rowBytes(headDim: 64) == 128)
        #expect(!KVCacheType.q8.supports(headDim: 80) && KVCacheType.q8.supports(headDim: 256) && KVCacheType.f16.supports(headDim: 80))
    }

    /// Linear-weight bytes relative to f32, from the tensor table (issue 3's bounds).
    @Test func linearBytesPerPrecision() throws {
        let file = try GGUFFile(path: modelPath)
        let config = try ModelConfig(gguf: file)
        let all = Footprint.all(file: file, config: config, context: 4096, memoryLimit: Int.max)
        let f32 = try #require(all.first { $0.name == "f32" }).linearWeightBytes
        let bounds: [String: Double] = ["f16": 0.51, "bf16": 0.51, "q8": 0.27, "q4": 0.16, "nf4": 0.135, "q2": 0.085]
        for f in all where f.name != "f32" {
            let ratio = Double(f.linearWeightBytes) / Double(f32)
            #expect(ratio <= bounds[f.name]!, "\(f.name): \(ratio)")
        }
        #expect(all.map(\.name) == ["f32", "f16", "bf16", "q8", "q4", "nf4", "q2"])
        // A Q4_1 file: q4 is its own blocks, the wider ones gain nothing, the narrower lose.
        #expect(all.map { $0.versusFile?.rawValue ?? "" }
                == ["no_gain", "no_gain", "no_gain", "no_gain", "file_own", "loses_information", "loses_information"])
        // Gemma 3 270M Q4_K_M: native (its mixed blocks) first, then q8 and above gain
        // nothing, q4 and below lose.
        let gemma = try GGUFFile(path: gemmaPath)
        let mixed = Footprint.all(file: gemma, config: try ModelConfig(gguf: gemma), context: 4096, memoryLimit: .max)
        #expect(mixed.map(\.name) == ["native", "f32", "f16", "bf16", "q8", "q4", "nf4", "q2"])
        #expect(mixed.map { $0.versusFile?.rawValue ?? "" }
                == ["file_own", "no_gain", "no_gain", "no_gain", "no_gain", "loses_information", "loses_information", "loses_information"])
        #expect(WeightPlan.native(gemma).summary == "q5_0 with q4_K, q6_K, q8")
    }

    /// Gemma 3 270M Q4_K_M mixes Q5_0, Q4_K, Q6_K and Q8_0 matrices: at native each keeps
    /// its own blocks, byte for byte, so the weights take the file's bytes (norms in f32).
    @Test func nativeKeepsEveryTensorsBlocks() throws {
        let file = try GGUFFile(path: gemmaPath)
        let plan = WeightPlan.native(file)
        #expect(plan.isNative && plan.name == "native" && plan.linear == .q5_0 && plan.embedding == .q8)
        let pool = WorkerPool(threads: 2)
        var kinds = Set<WeightFormat>(), fileBytes = 0
        for t in file.tensors {
            let isMatrix = t.shape.count >= 2 && t.shape[1] > 1
            fileBytes += isMatrix ? file.data(of: t).count : 4 * t.elementCount
            guard isMatrix else { continue }
            let format = plan.format(ofTensor: t.name)
            #expect(format.ggmlTypeNumber == t.type.rawValue, "\(t.name): \(t.type.name) as \(format)")
            kinds.insert(format)
            if t.name.hasPrefix("blk.0.") || t.name.hasPrefix("blk.5.") {  // a few layers: the loaded bytes are the file's
                let m = try WeightLoader.matrix(file: file, tensor: t, format: format, pool: pool)
                #expect(m.format == format && m.packedBytes.elementsEqual(file.data(of: t)), "\(t.name)")
            }
        }
        #expect(kinds == [.q5_0, .q4_K, .q6_K, .q8])
        let config = try ModelConfig(gguf: file)
        let footprint = Footprint.estimate(file: file, config: config, plan: plan, context: 256, memoryLimit: .max)
        #expect(footprint.weightBytes == fileBytes && footprint.name == "native")
        #expect(try Footprint.plan(.native, file: file, config: config, context: 256, memoryLimit: .max) == plan)
        #expect(try Footprint.plan(.auto, file: file, config: config, context: 256, memoryLimit: .max) == plan)
        #expect(try Footprint.resolve(.native, file: file, config: config, context: 256, memoryLimit: .max) == .q5_0)
        // Below native, auto takes the best concrete precision that is not above the file's.
        #expect(try Footprint.plan(.auto, file: file, config: config, context: 256, memoryLimit: footprint.totalBytes - 1) == WeightPlan(linear: .q4))
    }

    @Test func autoAndNativeAgainstTheMemoryLimit() throws {
        let file = try GGUFFile(path: modelPath)
        let config = try ModelConfig(gguf: file)
        func resolve(_ p: Precision, _ limit: Int) throws -> WeightFormat {
            try Footprint.resolve(p, file: file, config: config, context: 4096, memoryLimit: limit)
        }
        #expect(try resolve(.auto, Int.max) == .q4)                  // never above the source's own
        #expect(try resolve(.native, Int.max) == .q4)
        let q2 = Footprint.estimate(file: file, config: config, plan: WeightPlan(linear: .q2), context: 4096, memoryLimit: 0).totalBytes
        let q4 = Footprint.estimate(file: file, config: config, plan: WeightPlan(linear: .q4), context: 4096, memoryLimit: 0).totalBytes
        #expect(q2 < q4)
        #expect(try resolve(.auto, q2) == .q2)
        do {
            _ = try resolve(.native, q2)
            Issue.record("native must not fit under the q2 footprint")
        } catch let error as PrecisionError {
            #expect(error.description.contains("auto") && error.description.contains("q2"), "\(error)")
        }
        #expect(throws: PrecisionError.self) { try resolve(.auto, 1 << 20) }
    }
}

@Suite(.serialized) struct PrecisionSwitchTests {
    /// Every precision loads and its weights take exactly the bytes `info` predicts;
    /// q4 copies the file's Q4_1 blocks and q8 the Q8_0 embedding byte for byte.
    @Test func footprintIsExactAndBlocksAreCopied() throws {
        let engine = try Engine(path: modelPath, precision: .q4, threads: 2, context: 256)
        let file = engine.source
        for format in WeightFormat.selectable {
            try engine.setPrecision(Precision(format))
            #expect(engine.format == format)
            let estimate = Footprint.estimate(file: file, config: engine.config, plan: WeightPlan(linear: format), context: 256, memoryLimit: .max)
            #expect(engine.weightBytes == estimate.weightBytes, "\(format)")
            #expect(engine.kvCacheBytes == 30 * 2 * 192 * 256 * (format == .f32 ? 4 : 2))
            if format == .q4 {
                let llama = try #require(engine.model as? LlamaModel)
                let q = llama.layers[7].attention.q
                let source = file.data(of: try #require(file.tensor(named: "blk.7.attn_q.weight")))
                #expect(q.format == .q4 && q.packedBytes.elementsEqual(source))
                let embedding = file.data(of: try #require(file.tensor(named: "token_embd.weight")))
                #expect(llama.weights.embedding.format == .q8 && llama.weights.embedding.packedBytes.elementsEqual(embedding))
            }
        }
    }

    /// A q8 KV cache (`--kv-cache q8`) takes the bytes the footprint says (72 of f16's 128
    /// per head and position on SmolLM2), stays the cache's type across precision switches,
    /// and its logits stay close to an f16 cache's over 300 positions (the keys and values
    /// of every position rounded to 8 bits): the same top token at nearly every position,
    /// small KL divergence. A head dimension that is not a multiple of 32 is refused with
    /// an error naming the file.
    @Test func q8KVCacheIsSmallAndClose() throws {
        let half = try Engine(path: modelPath, precision: .q4, threads: 2, context: 512)
        let q8 = try Engine(path: modelPath, precision: .q4, threads: 2, context: 512, kvCache: .q8)
        #expect(q8.plan.kvCache == .q8 && half.plan.kvCache == .f16)
        #expect(q8.kvCacheBytes == 30 * 2 * 3 * 72 * 512 && half.kvCacheBytes == 30 * 2 * 3 * 128 * 512)
        let estimate = Footprint.estimate(file: q8.source, config: q8.config, plan: q8.plan, context: 512, memoryLimit: .max)
        #expect(estimate.kvBytes == q8.kvCacheBytes && estimate.kvBytesPerToken == 30 * 2 * 3 * 72)
        #expect(q8.kvBytesRead(atPosition: 99) == 100 * 30 * 2 * 3 * 72)
        let text = String(repeating: "The river rose in the spring and the village moved its mills up the hill, stone by stone. ", count: 20)
        let tokens = Array(q8.promptTokens(text).prefix(300))
        #expect(tokens.count == 300)
        let vocab = q8.config.vocabSize
        let a = try half.logitsAtEveryPosition(for: tokens), b = try q8.logitsAtEveryPosition(for: tokens)
        var agree = 0, kld = 0.0
        for p in 0..<tokens.count {
            let x = a[(p * vocab)..<((p + 1) * vocab)], y = b[(p * vocab)..<((p + 1) * vocab)]
            if x.indices.max(by: { x[$0] < x[$1] }) == y.indices.max(by: { y[$0] < y[$1] }) { agree += 1 }
            let mx = Double(x.max()!), my = Double(y.max()!)
            let zx = x.reduce(0.0) { $0 + Foundation.exp(Double($1) - mx) }, zy = y.reduce(0.0) { $0 + Foundation.exp(Double($1) - my) }
            kld += zip(x, y).reduce(0.0) { sum, xy in
                let px = Foundation.exp(Double(xy.0) - mx) / zx
                return sum + px * ((Double(xy.0) - mx - Foundation.log(zx)) - (Double(xy.1) - my - Foundation.log(zy)))
            }
        }
        kld /= Double(tokens.count)
        #expect(agree >= 290 && kld < 0.01 && kld > 0, "top-1 agreement \(agree)/300, mean KL \(kld)")
        try q8.setPrecision(.q8)
        #expect(q8.plan.kvCache == .q8 && q8.kvCacheBytes == 30 * 2 * 3 * 72 * 512)

        let tiny = try FamilyReferenceTests.gguf("llama")  // head dimension 8
        #expect {
            try Engine(path: tiny, precision: .f32, threads: 1, context: 64, kvCache: .q8)
        } throws: { error in
            "\(error)".contains(tiny) && "\(error)".contains("head dimensions that are multiples of 32")
        }
    }

    /// Switching back to the precision used just before reuses its KV cache: the history
    /// is not read again (what `/compare` and a trial switch do), and the reply is the
    /// one that precision gave. Its f32 cache survives a switch to a precision with f16
    /// keys and values too.
    @Test func switchingBackReusesThePreviousCache() throws {
        let engine = try Engine(path: modelPath, precision: .q4, threads: 2, context: 256)
        let prompt = engine.promptTokens("The capital of France is a city that")
        var greedy = SamplingParameters()
        greedy.temperature = 0
        for (there, back) in [(Precision.q8, Precision.q4), (.f32, .q8), (.q4, .f32)] {
            try engine.setPrecision(back)
            let first = try engine.generate(prompt: prompt, maxTokens: 4, sampling: greedy) { _ in }
            let cached = engine.cachedTokens
            try engine.setPrecision(there)
            #expect(engine.cachedTokens.isEmpty)
            _ = try engine.generate(prompt: prompt, maxTokens: 4, sampling: greedy) { _ in }
            #expect(engine.lastPrefill.reused == 0)
            try engine.setPrecision(back)
            #expect(engine.cachedTokens == cached, "\(there) → \(back)")
            let again = try engine.generate(prompt: prompt, maxTokens: 4, sampling: greedy) { _ in }
            #expect(engine.lastPrefill == (prompt.count - 1, 1), "\(there) → \(back)")
            #expect(again.tokens == first.tokens, "\(there) → \(back)")
        }
    }

    /// A switch that cannot be done leaves the old weights working.
    @Test func failedSwitchKeepsTheOldWeights() throws {
        let file = try GGUFFile(path: modelPath)
        let config = try ModelConfig(gguf: file)
        let q4 = Footprint.estimate(file: file, config: config, plan: WeightPlan(linear: .q4), context: 256, memoryLimit: 0).totalBytes
        let engine = try Engine(path: modelPath, precision: .q4, threads: 2, context: 256, memoryLimit: q4)
        var greedy = SamplingParameters()
        greedy.temperature = 0
        let prompt = engine.promptTokens("The capital of France is")
        let before = try engine.generate(prompt: prompt, maxTokens: 8, sampling: greedy) { _ in }
        #expect(throws: PrecisionError.self) { try engine.setPrecision(.f32) }
        #expect(engine.format == .q4)
        let after = try engine.generate(prompt: prompt, maxTokens: 8, sampling: greedy) { _ in }
        #expect(after.tokens == before.tokens)
    }
}
