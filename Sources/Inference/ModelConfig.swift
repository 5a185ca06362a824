import ModelFiles

/// Hyper-parameters of a decoder-only transformer, read from GGUF metadata
/// (`<arch>.block_count` etc., as llama.cpp's llama-model.cpp reads them).
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
    public var rmsNormEpsilon: Float
    public var ropeFreqBase: Float
    /// Rotated dimensions per head (usually `headDim`).
    public var ropeDimensionCount: Int
    /// Linear RoPE scaling: positions are divided by this factor (1 = none).
    public var ropeLinearScale: Float

    public var qDim: Int { headCount * headDim }
    public var kvDim: Int { kvHeadCount * headDim }

    /// Reads the config of architecture `general.architecture`.
    /// - Throws: `ModelFileError` naming the missing or invalid key;
    ///   `EngineError.unsupportedArchitecture` when a key is missing and Nibble does not
    ///   run that architecture anyway.
    public init(gguf: GGUFFile) throws {
        guard let arch = gguf.architecture else {
            throw ModelFileError.missingKey(path: gguf.path, key: "general.architecture")
        }
        architecture = arch
        // A file of an architecture Nibble cannot run is still described (`info`) when
        // its keys are there; when one is missing, the architecture is what to report,
        // not a missing `qwen2.block_count`. (`Engine` refuses it before reading this.)
        let supported = Engine.architectures[arch] != nil
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
        ropeFreqBase = Float(gguf.float("\(arch).rope.freq_base") ?? 10000)
        ropeDimensionCount = gguf.int("\(arch).rope.dimension_count") ?? headDim
        ropeLinearScale = 1
        if gguf.string("\(arch).rope.scaling.type") == "linear", let factor = gguf.float("\(arch).rope.scaling.factor"), factor > 0 {
            ropeLinearScale = Float(factor)
        }

        func check(_ ok: Bool, _ key: String, _ reason: String) throws {
            if !ok { throw ModelFileError.invalidValue(path: gguf.path, key: "\(arch).\(key)", reason: reason) }
        }
        try check(kvHeadCount > 0 && headCount % kvHeadCount == 0, "attention.head_count_kv",
                  "is \(kvHeadCount), which does not divide head_count \(headCount)")
        try check(headDim > 0 && headDim % 2 == 0 && headDim <= 512, "attention.key_length", "gives head dimension \(headDim)")
        try check(ropeDimensionCount > 0 && ropeDimensionCount <= headDim && ropeDimensionCount % 2 == 0,
                  "rope.dimension_count", "is \(ropeDimensionCount) for head dimension \(headDim)")
        try check(vocabSize > 0, "vocab_size", "is missing and there is no token list")
        if supported { try checkTensorTable(gguf) }
    }

    /// Whether `Engine` runs this architecture.
    public var isSupported: Bool { Engine.architectures[architecture] != nil }

    /// What the tensor table of a supported architecture must agree with: as many blocks as `block_count` says (a
    /// surplus would be ignored silently; a shortfall is a missing tensor when the
    /// weights load), and one embedding row per token of the vocabulary (ids without a
    /// token would vanish from the text; tokens without a row cannot be run).
    private func checkTensorTable(_ gguf: GGUFFile) throws {
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
