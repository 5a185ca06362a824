import ModelFiles

/// Hyper-parameters of a decoder-only transformer, read from GGUF metadata
/// (`<arch>.block_count` etc., as llama.cpp's llama-model.cpp reads them). Every
/// family reads the common keys here; `DecoderFamily.configure` then fills in what its
/// files do not store (e.g. Gemma 3's local RoPE base and layer pattern).
public struct ModelConfig: Sendable, Equatable {
    /// `general.architecture`, e.g. "llama".
    public var architecture: String
    public var layerCount: Int
    /// Width of the residual stream (`embedding_length`, HF `hidden_size`).
    public var embeddingLength: Int
    /// Inner width of the MLP (`feed_forward_length`, HF `intermediate_size`).
    public var feedForwardLength: Int
    public var headCount: Int
    /// Key/value heads; fewer than `headCount` is grouped-query attention.
    public var kvHeadCount: Int
    public var headDim: Int
    /// The context the model was trained for.
    public var contextLength: Int
    public var vocabSize: Int
    /// ε of the RMS norms (`attention.layer_norm_rms_epsilon`).
    public var rmsNormEpsilon: Float
    /// ε of the LayerNorms (`attention.layer_norm_epsilon`; GPT-2).
    public var layerNormEpsilon: Float
    /// RoPE base of the global (full-attention) layers.
    public var ropeFreqBase: Float
    /// RoPE base of the sliding-window layers (`rope.freq_base_swa`; else the global one).
    public var ropeFreqBaseLocal: Float
    /// Rotated dimensions per head (usually `headDim`).
    public var ropeDimensionCount: Int
    /// Linear RoPE scaling: positions are divided by this factor (1 = none).
    public var ropeLinearScale: Float
    /// `rope.scaling.original_context_length` (LongRoPE, YaRN), 0 when absent.
    public var ropeOriginalContext: Int
    /// Multiplies cos and sin (LongRoPE's attention factor, `rope.scaling.attn_factor`); 1 = none.
    public var ropeAttentionFactor: Float
    /// Keys a sliding-window layer sees: a query at position p attends to positions
    /// max(0, p − window + 1)...p. nil = no sliding window.
    public var slidingWindow: Int?
    /// Which layers use `slidingWindow` (all false without one).
    public var slidingLayers: [Bool]
    /// Scale of the attention scores; nil = 1/√headDim.
    public var attentionScale: Float?
    /// Attention scores are soft-capped to ±cap·tanh(s/cap) (Gemma 2); nil = none.
    public var attentionSoftcap: Float?
    /// Final logits are soft-capped likewise; nil = none.
    public var finalLogitSoftcap: Float?

    public var qDim: Int { headCount * headDim }
    public var kvDim: Int { kvHeadCount * headDim }

    /// Whether layer `l` attends through a sliding window.
    public func isSliding(_ l: Int) -> Bool { slidingWindow != nil && slidingLayers[l] }

    /// Positions the KV cache of layer `l` must hold for a context of `context` tokens
    /// fed `batch` at a time: a sliding layer keeps its window plus one batch (so a
    /// batch never overwrites keys that an earlier token of the same batch still needs).
    public func kvCapacity(layer l: Int, context: Int, batch: Int) -> Int {
        guard isSliding(l), let w = slidingWindow else { return context }
        return min(context, w + batch - 1)
    }

    /// Reads the config of architecture `general.architecture`, then lets its family
    /// add what the file does not store.
    /// - Throws: `ModelFileError` naming the missing or invalid key;
    ///   `EngineError.unsupportedArchitecture` when a key is missing and Nibble does not
    ///   run that architecture anyway.
    public init(gguf: some ModelSource) throws {
        guard let arch = gguf.architecture else {
            throw ModelFileError.missingKey(path: gguf.path, key: "general.architecture")
        }
        architecture = arch
        // A file of an architecture Nibble cannot run is still described (`info`) when
        // its keys are there; when one is missing, the architecture is what to report,
        // not a missing `qwen2.block_count`. (`Engine` refuses it before reading this.)
        let family = ModelRegistry.family(of: arch)
        let supported = family != nil
        func required(_ key: String) throws -> Int {
            guard let v = gguf.int("\(arch).\(key)") else {
                if !supported { throw EngineError.unsupportedArchitecture(path: gguf.path, architecture: arch) }
                throw ModelFileError.missingKey(path: gguf.path, key: "\(arch).\(key)")
            }
            guard v > 0, v < 1 << 31 else {
                throw ModelFileError.invalidValue(path: gguf.path, key: "\(arch).\(key)", reason: "is \(v), expected a positive count")
            }
            return v
        }
        layerCount = try required("block_count")
        embeddingLength = try required("embedding_length")
        feedForwardLength = try required("feed_forward_length")
        headCount = try required("attention.head_count")
        kvHeadCount = gguf.int("\(arch).attention.head_count_kv") ?? headCount
        contextLength = try required("context_length")
        headDim = gguf.int("\(arch).attention.key_length") ?? embeddingLength / headCount
        vocabSize = gguf.int("\(arch).vocab_size") ?? gguf.metadata["tokenizer.ggml.tokens"]?.arrayValue?.count ?? 0
        rmsNormEpsilon = Float(gguf.float("\(arch).attention.layer_norm_rms_epsilon") ?? 1e-5)
        layerNormEpsilon = Float(gguf.float("\(arch).attention.layer_norm_epsilon") ?? 1e-5)
        ropeFreqBase = Float(gguf.float("\(arch).rope.freq_base") ?? 10000)
        ropeFreqBaseLocal = Float(gguf.float("\(arch).rope.freq_base_swa") ?? Double(ropeFreqBase))
        ropeDimensionCount = gguf.int("\(arch).rope.dimension_count") ?? headDim
        ropeLinearScale = 1
        if gguf.string("\(arch).rope.scaling.type") == "linear", let factor = gguf.float("\(arch).rope.scaling.factor"), factor > 0 {
            ropeLinearScale = Float(factor)
        }
        ropeOriginalContext = gguf.int("\(arch).rope.scaling.original_context_length") ?? 0
        ropeAttentionFactor = Float(gguf.float("\(arch).rope.scaling.attn_factor") ?? 1)
        slidingWindow = gguf.int("\(arch).attention.sliding_window").flatMap { $0 > 0 ? $0 : nil }
        slidingLayers = [Bool](repeating: slidingWindow != nil, count: layerCount)
        attentionScale = nil
        attentionSoftcap = gguf.float("\(arch).attn_logit_softcapping").flatMap { $0 > 0 ? Float($0) : nil }
        finalLogitSoftcap = gguf.float("\(arch).final_logit_softcapping").flatMap { $0 > 0 ? Float($0) : nil }
        if let family { try family.configure(&self, source: gguf) }

        func check(_ ok: Bool, _ key: String, _ reason: String) throws {
            if !ok { throw ModelFileError.invalidValue(path: gguf.path, key: "\(arch).\(key)", reason: reason) }
        }
        try check(kvHeadCount > 0 && headCount % kvHeadCount == 0, "attention.head_count_kv",
                  "is \(kvHeadCount), which does not divide head_count \(headCount)")
        try check(headDim > 0 && headDim % 2 == 0 && headDim <= 512, "attention.key_length", "gives head dimension \(headDim)")
        try check(ropeDimensionCount > 0 && ropeDimensionCount <= headDim && ropeDimensionCount % 2 == 0,
                  "rope.dimension_count", "is \(ropeDimensionCount) for head dimension \(headDim)")
        try check(vocabSize > 0, "vocab_size", "is missing and there is no token list")
        try check(slidingWindow.map { $0 > 0 && $0 < 1 << 30 } ?? true, "attention.sliding_window", "is \(slidingWindow ?? 0)")
        try check(slidingLayers.count == layerCount, "attention.sliding_window_pattern", "gives \(slidingLayers.count) layers, not \(layerCount)")
        if supported { try checkTensorTable(gguf) }
    }

    /// Whether `Engine` runs this architecture.
    public var isSupported: Bool { ModelRegistry.family(of: architecture) != nil }

    /// What the tensor table of a supported architecture must agree with: as many blocks as `block_count` says (a
    /// surplus would be ignored silently; a shortfall is a missing tensor when the
    /// weights load), and one embedding row per token of the vocabulary (ids without a
    /// token would vanish from the text; tokens without a row cannot be run).
    private func checkTensorTable(_ gguf: some ModelSource) throws {
        var highestBlock = -1
        var highestName = ""
        for t in gguf.tensors where t.name.hasPrefix("blk.") {
            let digits = t.name.dropFirst(4).prefix { $0.isASCII && $0.isNumber }
            if let n = Int(digits), n > highestBlock { highestBlock = n; highestName = t.name }
        }
        if highestBlock >= layerCount {
            throw ModelFileError.invalidValue(path: gguf.path, key: "\(architecture).block_count",
                reason: "is \(layerCount) but the tensor table has blocks up to blk.\(highestBlock) ('\(highestName.printable())'), \(highestBlock + 1) blocks")
        }
        if let embedding = gguf.tensor(named: "token_embd.weight"), embedding.shape.count >= 2,
           let tokens = gguf.metadata["tokenizer.ggml.tokens"]?.arrayValue?.count {
            let rows = embedding.shape[1]
            if tokens < rows {
                throw ModelFileError.invalidValue(path: gguf.path, key: "tokenizer.ggml.tokens",
                    reason: "has \(tokens) tokens but 'token_embd.weight' has \(rows) rows: the ids from \(tokens) on would have no text")
            }
            if tokens > rows {
                throw ModelFileError.invalidValue(path: gguf.path, key: "tokenizer.ggml.tokens",
                    reason: "has \(tokens) tokens but 'token_embd.weight' has only \(rows) rows: the ids from \(rows) on cannot be run")
            }
        }
    }
}
