import CKernels
import Foundation
import ModelFiles
import Quantization
import Tokenizers

public enum EngineError: Error, CustomStringConvertible, LocalizedError, Equatable {
    case unsupportedArchitecture(path: String, architecture: String)
    case promptTooLong(tokens: Int, context: Int)
    case emptyPrompt
    case invalidToken(Int, vocabulary: Int)
    /// The weights could not be built (out of memory, a shape a format cannot hold);
    /// `reason` is the `QuantizationError`'s text.
    case cannotLoad(path: String, reason: String)
    /// The forward pass gave NaN or ±Inf logits after `tokens` tokens of the sequence.
    case nonFiniteLogits(path: String, tokens: Int)
    /// A precision switch was stopped (Ctrl-C); the previous weights are still in use.
    case cancelled
    /// An adapter whose weights do not match the model's (`module` as the adapter names it).
    case adapterDoesNotFit(path: String, module: String, reason: String)

    public var description: String {
        switch self {
        case let .adapterDoesNotFit(path, module, reason):
            "\(path): does not fit this model: module \(module.printable()): \(reason)"
        case let .unsupportedArchitecture(path, arch):
            "\(path): architecture '\(arch.printable())' is not supported (supported: \(ModelRegistry.supportedArchitectures.joined(separator: ", ")))"
        case let .cannotLoad(path, reason):
            "\(path): \(reason)"
        case .cancelled:
            "stopped"
        case let .nonFiniteLogits(path, tokens):
            "\(path): the model produced non-finite logits (NaN or Inf) after \(tokens) tokens; the weights probably contain NaN or Inf"
        case let .promptTooLong(tokens, context):
            "the prompt has \(tokens) tokens but the context holds \(context); use --context to enlarge it"
        case let .invalidToken(id, vocabulary):
            "token id \(id) is outside the vocabulary (0..<\(vocabulary))"
        case .emptyPrompt:
            "the prompt is empty and the model adds no BOS token: give some text"
        }
    }

    public var errorDescription: String? { description }
}

/// Why generation ended.
public enum StopReason: String, Sendable, Codable {
    case eos, length, cancelled
}

/// Timings and counts of one generation (the contract's `stats` object).
public struct GenerationStats: Sendable, Codable, Equatable {
    public var promptTokens = 0
    public var generatedTokens = 0
    /// Seconds from the request to the first generated token.
    public var ttftSeconds = 0.0
    public var prefillTokensPerSecond = 0.0
    public var decodeTokensPerSecond = 0.0

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", generatedTokens = "generated_tokens", ttftSeconds = "ttft_s"
        case prefillTokensPerSecond = "prefill_tok_s", decodeTokensPerSecond = "decode_tok_s"
    }
}

public struct GenerationResult: Sendable {
    /// Generated ids, without the stop token.
    public var tokens: [Int]
    public var stopReason: StopReason
    public var stats: GenerationStats
}

/// Loads a model and runs it: prefill, decode, sampling. One engine serves one
/// conversation at a time; it is not safe to call from several threads at once.
public final class Engine: @unchecked Sendable {
    /// The `general.architecture` values Nibble runs, sorted (`ModelRegistry`).
    public static var supportedArchitectures: [String] { ModelRegistry.supportedArchitectures }

    /// Where the weights come from (a mapped GGUF file).
    public let source: any ModelSource
    /// Names, template, trained context and recommended sampling of the model.
    public let info: ModelInfo
    public let config: ModelConfig
    public let tokenizer: Tokenizer
    public let contextLength: Int
    /// Bytes the engine may use (`--memory-limit`); precisions are checked against it.
    public let memoryLimit: Int
    public let pool: WorkerPool
    private(set) var model: any DecoderModel
    /// The plan the loaded weights follow.
    public private(set) var plan: WeightPlan
    /// Bytes of the loaded weights.
    public private(set) var weightBytes: Int
    private(set) var cache: KVCache
    let state: ForwardState
    /// Tokens whose keys and values are in the cache, position by position; a new
    /// prompt sharing a prefix with them only prefills the rest.
    public private(set) var cachedTokens: [Int] = []
    /// How the last `generate` call's prompt was split: tokens found in the cache and
    /// tokens run through the model.
    public private(set) var lastPrefill: (reused: Int, computed: Int) = (0, 0)
    /// Tokens per forward pass during prefill (also the Ctrl-C granularity).
    public static let prefillChunk = 64
    /// The KV cache type asked for at `init` (nil: each precision's default).
    let kvCacheChoice: KVCacheType?
    private var tokenBuffer: [Int32]

    /// - Parameters:
    ///   - precision: a concrete precision, `native` or `auto` (resolved against `memoryLimit`).
    ///   - context: positions the KV cache holds; nil = min(model context, 4096).
    ///   - memoryLimit: nil = MemAvailable or the cgroup limit, less 10 %.
    ///   - kvCache: the KV cache's element type, for this precision and every later one
    ///     (nil: each precision's default, f32 at f32 and f16 below).
    ///   - adapter: a LoRA adapter to put on (`setAdapter`).
    public init(path: String, precision: Precision = .native, threads: Int? = nil, context: Int? = nil, memoryLimit: Int? = nil,
                kvCache: KVCacheType? = nil, adapter: String? = nil) throws {
        kvCacheChoice = kvCache
        let file = try ModelSources.open(path)
        source = file
        // Before any `<arch>.` key is read, so the architecture is what the error names.
        if let arch = file.architecture, ModelRegistry.family(of: arch) == nil {
            throw EngineError.unsupportedArchitecture(path: path, architecture: arch)
        }
        let config = try ModelConfig(gguf: file)
        self.config = config
        info = ModelInfo(source: file, config: config)
        tokenizer = try Tokenizer(source: file)
        // The config and the tokenizer hold what they need of the header.
        file.discardMetadata(["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"])
        if let gguf = file as? GGUFFile { gguf.releasePages(of: gguf.headerBytes) }
        // The header's parsed arrays (tens of MiB for a 262k vocabulary) are free now.
        nb_release_free_heap()
        let family = ModelRegistry.family(of: config.architecture)!
        contextLength = max(1, min(context ?? min(config.contextLength, 4096), 1 << 20, family.maximumContext(config) ?? .max))
        self.memoryLimit = memoryLimit ?? MemoryLimit.detect()
        let pool = WorkerPool(threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
        self.pool = pool
        let plan = try Footprint.plan(precision, file: file, config: config, context: contextLength, memoryLimit: self.memoryLimit,
                                      kvCache: kvCache)
        self.plan = plan
        let context = contextLength
        (model, weightBytes, cache, state) = try Engine.namingFile(path) {
            let (model, bytes) = try Engine.load(family, source: file, config: config, plan: plan, pool: pool, context: context)
            return (model, bytes,
                    try Engine.makeCache(config: config, context: context, type: plan.kvCache),
                    try ForwardState(sizes: family.scratchSizes(config), maxBatch: Engine.prefillChunk))
        }
        tokenBuffer = [Int32](repeating: 0, count: Engine.prefillChunk)
        // What loading freed (a folder's derived tensors, packers' scratch) goes back too.
        nb_release_free_heap()
        if let adapter { try setAdapter(adapter) }
    }

    /// Loads a family's weights; returns the model and the bytes its weights take.
    static func load(_ family: any DecoderModel.Type, source: any ModelSource, config: ModelConfig, plan: WeightPlan, pool: WorkerPool,
                     context: Int, shouldStop: @escaping () -> Bool = { false }) throws -> (any DecoderModel, Int) {
        let loader = WeightLoader(gguf: source, plan: plan, pool: pool, contextLength: context, shouldStop: shouldStop)
        let model = try family.init(loader: loader, config: config)
        return (model, loader.loadedBytes)
    }

    /// A KV cache for `context` positions: every layer's capacity as the config says
    /// (sliding-window layers hold their window and one prefill chunk).
    static func makeCache(config: ModelConfig, context: Int, type: KVCacheType) throws -> KVCache {
        try KVCache(capacities: kvCapacities(config: config, context: context), kvDim: config.kvDim, headDim: config.headDim, type: type)
    }

    static func kvCapacities(config: ModelConfig, context: Int) -> [Int] {
        (0..<config.layerCount).map { config.kvCapacity(layer: $0, context: context, batch: prefillChunk) }
    }

    /// The format the linear layers run at now.
    public var format: WeightFormat { plan.linear }
    /// The format the file stores its linear weights in (what `native` means).
    public var nativeFormat: WeightFormat { WeightPlan.nativeFormat(of: source) }

    /// Turns allocation and packing failures (`QuantizationError`, which knows only the
    /// tensor) into errors that name the model file.
    static func namingFile<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as QuantizationError {
            throw EngineError.cannotLoad(path: path, reason: error.description)
        }
    }

    /// Re-quantises the weights from the mapped file to `precision` and swaps them in.
    /// On any failure (does not fit, out of memory, the file changed on disk since it
    /// was mapped) the old weights stay and the engine keeps working. The KV cache is
    /// refilled on the next prefill. `shouldStop` is asked before each matrix: stopping
    /// (`EngineError.cancelled`, Ctrl-C) leaves everything as it was too.
    /// - Returns: the format now in use.
    @discardableResult
    public func setPrecision(_ precision: Precision, shouldStop: @escaping () -> Bool = { false }) throws -> WeightFormat {
        let plan = try Footprint.plan(precision, file: source, config: config, context: contextLength, memoryLimit: memoryLimit,
                                      kvCache: kvCacheChoice)
        let format = plan.linear
        guard plan != self.plan else { return format }
        // Re-reading a truncated mapping is a SIGBUS; a rewritten one mixes versions.
        try source.verifyUnchanged()
        let family = ModelRegistry.family(of: config.architecture)!
        // The cache of the precision being left is kept (while small) so that switching
        // back — `/compare`, or trying a precision and returning — reuses its history
        // instead of reading it again; one kept for the new precision is taken back.
        let kept = previous
        let (newModel, newBytes, newCache) = try Engine.namingFile(source.path) {
            let (model, bytes) = try Engine.load(family, source: source, config: config, plan: plan, pool: pool, context: contextLength,
                                              shouldStop: shouldStop)
            let cache: KVCache = if let kept, kept.cache.type == plan.kvCache { kept.cache }
                else { try Engine.makeCache(config: config, context: contextLength, type: plan.kvCache) }
            return (model, bytes, cache)
        }
        let leaving = (plan: self.plan, cache: cache, tokens: cachedTokens)
        model = newModel
        weightBytes = newBytes
        self.plan = plan
        cache = newCache
        cachedTokens = kept?.plan == plan ? kept!.tokens : []
        let bytesPerToken = 2 * config.layerCount * leaving.cache.type.bytesPerPosition(kvDim: config.kvDim, headDim: config.headDim)
        previous = leaving.tokens.count * bytesPerToken <= Engine.keptCacheLimit ? leaving : nil
        // The old weights and the packers' scratch are free now; give their pages back
        // (glibc keeps freed mid-heap chunks resident otherwise).
        nb_release_free_heap()
        return format
    }

    /// The KV cache, cached tokens and format of the precision used before the current
    /// one (see `setPrecision`).
    private var previous: (plan: WeightPlan, cache: KVCache, tokens: [Int])?
    /// The largest history (in KV bytes) kept for switching back.
    static let keptCacheLimit = 256 << 20

    /// Each layer's sliding window (nil for full attention).
    private var slidingWindows: [Int?] { (0..<config.layerCount).map { config.isSliding($0) ? config.slidingWindow : nil } }

    /// Forgets the cached tokens: the next prompt is prefilled from position 0.
    public func resetCache() { cachedTokens.removeAll() }

    // MARK: - LoRA adapters

    /// The LoRA adapter the projections add (unmerged), if one is on.
    public private(set) var adapter: LoRAAdapter?

    /// Puts the adapter at `path` on (replacing any other), or takes it off (nil). The
    /// base weights are untouched, so taking it off is instant; the cached keys and
    /// values were computed with the old adapter and are dropped. On any failure (an
    /// unreadable file, shapes that do not fit) the previous adapter stays.
    public func setAdapter(_ path: String?) throws {
        let new = try path.map { try LoRAAdapter(path: $0, source: source, config: config, maxBatch: Engine.prefillChunk) }
        adapter = new
        state.adapter = new
        cachedTokens.removeAll()
        previous = nil
    }

    /// Bytes of weights one decoded token reads: every matrix but the tables only looked
    /// up a row at a time (the token embedding when the head has its own matrix, GPT-2's
    /// position embedding). `bench`'s roofline.
    public var weightBytesPerToken: Int {
        var bytes = weightBytes
        let lookups = ["position_embd.weight"] + (source.tensor(named: "output.weight") != nil ? ["token_embd.weight"] : [])
        for name in lookups {
            guard let t = source.tensor(named: name), t.shape.count >= 2 else { continue }
            bytes -= plan.format(ofTensor: name).storedByteCount(rows: t.shape[1], columns: t.shape[0])
        }
        return bytes
    }

    /// Bytes of keys and values the token at `position` reads: each layer's positions up
    /// to it, a sliding layer's only within its window.
    public func kvBytesRead(atPosition position: Int) -> Int {
        (0..<config.layerCount).reduce(0) { sum, l in
            let span = min(position + 1, cache.capacities[l], config.isSliding(l) ? config.slidingWindow ?? .max : .max)
            return sum + 2 * span * plan.kvCache.bytesPerPosition(kvDim: config.kvDim, headDim: config.headDim)
        }
    }

    public var kvCacheBytes: Int { cache.byteCount }
    public var scratchBytes: Int { state.byteCount }

    // MARK: - Evaluation

    /// Tokens the model sees for `text`: BOS when the model asks for it, then the text.
    public func promptTokens(_ text: String, parseSpecial: Bool = false) -> [Int] {
        tokenizer.encode(text, parseSpecial: parseSpecial, addBOS: tokenizer.addBOS)
    }

    /// Feeds `tokens` at positions `start...` in chunks; the logits of the last one end
    /// up in `state.logits`. Returns false when `shouldStop` asked to stop.
    private func prefill(_ tokens: ArraySlice<Int>, start: Int, shouldStop: () -> Bool) -> Bool {
        var position = start
        var index = tokens.startIndex
        while index < tokens.endIndex {
            if shouldStop() { return false }
            let n = min(Engine.prefillChunk, tokens.endIndex - index)
            for i in 0..<n { tokenBuffer[i] = Int32(tokens[index + i]) }
            tokenBuffer.withUnsafeBufferPointer { ids in
                // Only the last chunk's last token needs logits (the head of a large
                // vocabulary costs as much as several layers).
                model.forward(tokens: ids.baseAddress!, count: n, start: position, cache: cache, state: state, pool: pool,
                              logitsFrom: index + n < tokens.endIndex ? n : nil)
            }
            cachedTokens.append(contentsOf: tokens[index..<(index + n)])
            position += n
            index += n
        }
        return true
    }

    /// Runs `tokens` from position 0 and returns the logits after the last one.
    public func logits(for tokens: [Int]) throws -> [Float] {
        try checkEvaluable(tokens)
        cachedTokens.removeAll()
        _ = prefill(tokens[...], start: 0, shouldStop: { false })
        try checkFinite(rows: 1, tokensBefore: tokens.count)
        return Array(UnsafeBufferPointer(start: state.logits, count: config.vocabSize))
    }

    /// Runs `tokens` from position 0 and returns the logits after each token from index
    /// `from` on, position-major (`(tokens.count − from) × vocabSize`) — what perplexity
    /// needs. Logits of earlier positions are not computed.
    public func logitsAtEveryPosition(for tokens: [Int], from: Int = 0) throws -> [Float] {
        try checkEvaluable(tokens)
        precondition(from >= 0 && from < tokens.count)
        cachedTokens.removeAll()
        let vocab = config.vocabSize
        var out = [Float](repeating: 0, count: (tokens.count - from) * vocab)
        var start = 0
        while start < tokens.count {
            let n = min(Engine.prefillChunk, tokens.count - start)
            for i in 0..<n { tokenBuffer[i] = Int32(tokens[start + i]) }
            let firstWanted = max(from - start, 0)
            let wanted = firstWanted < n
            tokenBuffer.withUnsafeBufferPointer { ids in
                model.forward(tokens: ids.baseAddress!, count: n, start: start, cache: cache, state: state, pool: pool,
                              logitsFrom: wanted ? firstWanted : nil)
            }
            if wanted {
                try checkFinite(rows: n - firstWanted, tokensBefore: start + firstWanted + 1)
                out.withUnsafeMutableBufferPointer { o in
                    (o.baseAddress! + (start + firstWanted - from) * vocab).update(from: state.logits, count: (n - firstWanted) * vocab)
                }
            }
            cachedTokens.append(contentsOf: tokens[start..<(start + n)])
            start += n
        }
        return out
    }

    /// Throws `nonFiniteLogits` when one of the first `rows` rows of `state.logits`
    /// holds a NaN or an infinity (weights with NaN/Inf make every logit NaN, which
    /// greedy sampling would read as token 0, often EOS: an empty reply). The cached
    /// tokens are forgotten, since their keys and values are suspect too.
    /// - Parameter tokensBefore: how many tokens of the sequence precede row 0's logits.
    private func checkFinite(rows: Int, tokensBefore: Int) throws {
        let vocab = config.vocabSize
        for row in 0..<rows where !Engine.allFinite(state.logits + row * vocab, count: vocab) {
            cachedTokens.removeAll()
            throw EngineError.nonFiniteLogits(path: source.path, tokens: tokensBefore + row)
        }
    }

    /// Whether no value is NaN or ±Inf, in one vectorised pass: x − x is 0 for every
    /// finite x and NaN otherwise, and a NaN survives the sum.
    static func allFinite(_ values: UnsafePointer<Float>, count: Int) -> Bool {
        var acc = SIMD16<Float>()
        var i = 0
        let raw = UnsafeRawPointer(values)
        while i + 16 <= count {
            let v = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            acc += v - v
            i += 16
        }
        var tail: Float = 0
        while i < count {
            tail += values[i] - values[i]
            i += 1
        }
        return acc.sum() + tail == 0
    }

    private func checkEvaluable(_ tokens: [Int]) throws {
        guard !tokens.isEmpty else { throw EngineError.emptyPrompt }
        guard tokens.count <= contextLength else { throw EngineError.promptTooLong(tokens: tokens.count, context: contextLength) }
        if let bad = tokens.first(where: { $0 < 0 || $0 >= config.vocabSize }) { throw EngineError.invalidToken(bad, vocabulary: config.vocabSize) }
    }

    // MARK: - Generation

    /// Generates up to `maxTokens` tokens after `prompt`, calling `onToken` with each
    /// one as soon as it is sampled. Stops at an end-of-generation token, at
    /// `maxTokens` or the end of the context, or when `shouldStop` returns true (checked
    /// before every forward pass, so a long prefill stops within one chunk).
    /// - Parameter ignoreEndOfGeneration: keep going past EOS/EOT (benchmarks).
    public func generate(prompt: [Int], maxTokens: Int, sampling: SamplingParameters, ignoreEndOfGeneration: Bool = false,
                         shouldStop: () -> Bool = { false }, onToken: (Int) -> Void) throws -> GenerationResult {
        try checkEvaluable(prompt)
        guard prompt.count < contextLength else { throw EngineError.promptTooLong(tokens: prompt.count, context: contextLength) }
        let clock = ContinuousClock()
        let started = clock.now
        var stats = GenerationStats()
        stats.promptTokens = prompt.count

        // Reuse the cached prefix; always re-run at least the last prompt token so its
        // logits are fresh.
        var reuse = 0
        while reuse < min(cachedTokens.count, prompt.count - 1), cachedTokens[reuse] == prompt[reuse] { reuse += 1 }
        // A sliding-window layer's ring may have overwritten keys the kept prefix's end
        // still needs (when the prompt diverges far before the cache's end).
        if !cache.canKeep(reuse, of: cachedTokens.count, windows: slidingWindows) { reuse = 0 }
        cachedTokens.removeLast(cachedTokens.count - reuse)
        lastPrefill = (reuse, prompt.count - reuse)

        var sampler = Sampler(sampling)
        for token in prompt { sampler.accept(token) }
        var generated: [Int] = []
        guard prefill(prompt[reuse...], start: reuse, shouldStop: shouldStop) else {
            return GenerationResult(tokens: [], stopReason: .cancelled, stats: stats)
        }
        let prefillEnd = clock.now
        stats.prefillTokensPerSecond = Double(prompt.count - reuse) / max(1e-9, (prefillEnd - started).seconds)

        var stopReason = StopReason.length
        var decodeStart = prefillEnd
        var decodeSteps = 0
        while generated.count < maxTokens {
            try checkFinite(rows: 1, tokensBefore: cachedTokens.count)
            let logits = UnsafeMutableBufferPointer(start: state.logits, count: config.vocabSize)
            let token = sampler.sample(logits)
            if generated.isEmpty {
                stats.ttftSeconds = (clock.now - started).seconds
                decodeStart = clock.now
            }
            if !ignoreEndOfGeneration && tokenizer.endOfGenerationTokenIDs.contains(token) { stopReason = .eos; break }
            generated.append(token)
            sampler.accept(token)
            onToken(token)
            if generated.count == maxTokens { break }
            if cachedTokens.count >= contextLength { stopReason = .length; break }
            if shouldStop() { stopReason = .cancelled; break }
            tokenBuffer[0] = Int32(token)
            tokenBuffer.withUnsafeBufferPointer { ids in
                model.forward(tokens: ids.baseAddress!, count: 1, start: cachedTokens.count, cache: cache, state: state, pool: pool,
                              logitsFrom: nil)
            }
            cachedTokens.append(token)
            decodeSteps += 1
        }
        if decodeSteps > 0 {
            stats.decodeTokensPerSecond = Double(decodeSteps) / max(1e-9, (clock.now - decodeStart).seconds)
        }
        stats.generatedTokens = generated.count
        return GenerationResult(tokens: generated, stopReason: stopReason, stats: stats)
    }
}

extension Engine {
    /// "CPU model, N cores, ISA" for benchmark reports.
    public static var machineDescription: String {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        return "\(model), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(String(cString: nb_cpu_features())), kernels \(KernelLevel.active), prefetch \(PrefetchProfile.active)"
    }
}

extension Duration {
    /// The duration in seconds as a Double.
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
