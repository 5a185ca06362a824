import Foundation

// config.json of a Hugging Face model folder, and its translation into the GGUF keys
// the model families read, as llama.cpp's convert_hf_to_gguf.py writes them
// (`TextModel.set_gguf_parameters` and each family's override).

/// A JSON number or list of numbers (`eos_token_id: 2` or `[1, 106]`).
public struct HFIntOrList: Decodable, Sendable, Equatable {
    public var values: [Int]
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { values = [] } else if let v = try? c.decode(Int.self) { values = [v] } else { values = try c.decode([Int].self) }
    }
}

/// RoPE settings: `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5,
/// which also holds `rope_theta`, and for Gemma 3 one entry per layer type).
public struct HFRopeParameters: Decodable, Sendable, Equatable {
    public var ropeType: String?
    public var type: String?
    public var ropeTheta: Double?
    public var factor: Double?
    public var lowFreqFactor: Double?
    public var highFreqFactor: Double?
    public var originalMaxPositionEmbeddings: Int?
    public var longFactor: [Double]?
    public var shortFactor: [Double]?
    public var partialRotaryFactor: Double?

    enum CodingKeys: String, CodingKey {
        case ropeType = "rope_type", type, ropeTheta = "rope_theta", factor
        case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
        case longFactor = "long_factor", shortFactor = "short_factor", partialRotaryFactor = "partial_rotary_factor"
    }

    /// `rope_type`, else `type`, lower-cased ("default" when neither).
    public var kind: String { (ropeType ?? type ?? "default").lowercased() }
}

/// `rope_parameters` as transformers 5 writes it: one set, or one per layer type.
public struct HFRopeSection: Decodable, Sendable, Equatable {
    public var global: HFRopeParameters?
    public var sliding: HFRopeParameters?

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        let keyed = try decoder.container(keyedBy: Key.self)
        if keyed.contains(Key(stringValue: "full_attention")) || keyed.contains(Key(stringValue: "sliding_attention")) {
            global = try keyed.decodeIfPresent(HFRopeParameters.self, forKey: Key(stringValue: "full_attention"))
            sliding = try keyed.decodeIfPresent(HFRopeParameters.self, forKey: Key(stringValue: "sliding_attention"))
        } else {
            global = try HFRopeParameters(from: decoder)
        }
    }
}

/// The fields of config.json the supported families use, under their HF names.
public struct HFConfig: Decodable, Sendable {
    public var modelType: String?
    public var hiddenSize: Int?
    public var intermediateSize: Int?
    public var numHiddenLayers: Int?
    public var numAttentionHeads: Int?
    public var numKeyValueHeads: Int?
    public var headDim: Int?
    public var maxPositionEmbeddings: Int?
    public var originalMaxPositionEmbeddings: Int?
    public var rmsNormEps: Double?
    public var ropeTheta: Double?
    public var ropeLocalBaseFreq: Double?
    public var ropeScaling: HFRopeParameters?
    public var ropeParameters: HFRopeSection?
    public var partialRotaryFactor: Double?
    public var slidingWindow: Int?
    public var slidingWindowPattern: Int?
    public var layerTypes: [String]?
    public var finalLogitSoftcapping: Double?
    public var attnLogitSoftcapping: Double?
    public var vocabSize: Int?
    public var tieWordEmbeddings: Bool?
    public var bosTokenId: HFIntOrList?
    public var eosTokenId: HFIntOrList?
    public var padTokenId: HFIntOrList?
    public var textConfig: TextConfigBox?
    // GPT-2
    public var nEmbd: Int?
    public var nLayer: Int?
    public var nHead: Int?
    public var nInner: Int?
    public var nPositions: Int?
    public var nCtx: Int?
    public var layerNormEpsilon: Double?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads", headDim = "head_dim"
        case maxPositionEmbeddings = "max_position_embeddings", originalMaxPositionEmbeddings = "original_max_position_embeddings"
        case rmsNormEps = "rms_norm_eps", ropeTheta = "rope_theta", ropeLocalBaseFreq = "rope_local_base_freq"
        case ropeScaling = "rope_scaling", ropeParameters = "rope_parameters", partialRotaryFactor = "partial_rotary_factor"
        case slidingWindow = "sliding_window", slidingWindowPattern = "sliding_window_pattern", layerTypes = "layer_types"
        case finalLogitSoftcapping = "final_logit_softcapping", attnLogitSoftcapping = "attn_logit_softcapping"
        case vocabSize = "vocab_size", tieWordEmbeddings = "tie_word_embeddings"
        case bosTokenId = "bos_token_id", eosTokenId = "eos_token_id", padTokenId = "pad_token_id"
        case textConfig = "text_config"
        case nEmbd = "n_embd", nLayer = "n_layer", nHead = "n_head", nInner = "n_inner", nPositions = "n_positions", nCtx = "n_ctx"
        case layerNormEpsilon = "layer_norm_epsilon"
    }

    /// A class box so the struct can hold a config of its own type (Gemma 3's `text_config`).
    public final class TextConfigBox: Decodable, @unchecked Sendable {
        public let config: HFConfig
        public required init(from decoder: Decoder) throws { config = try HFConfig(from: decoder) }
    }

    /// Decodes `data`; a wrong type is one sentence naming the key.
    public static func decode(_ data: Data, path: String) throws -> HFConfig {
        do {
            return try JSONDecoder().decode(HFConfig.self, from: data)
        } catch let error as DecodingError {
            throw ModelFileError.malformed(path: path, reason: describe(error))
        }
    }

    /// One sentence for a JSONDecoder error: which key, what was wrong.
    static func describe(_ error: DecodingError) -> String {
        func keyPath(_ path: [CodingKey]) -> String { path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") }
        switch error {
        case let .typeMismatch(type, context), let .valueNotFound(type, context):
            return "'\(keyPath(context.codingPath).printable())' is not \(type == Int.self ? "an integer" : type == Double.self ? "a number" : type == String.self ? "a string" : type == Bool.self ? "true or false" : "a valid value")"
        case let .keyNotFound(key, context):
            return "'\((keyPath(context.codingPath + [key])).printable())' is missing"
        case let .dataCorrupted(context):
            return context.codingPath.isEmpty ? "is not well-formed JSON" : "'\(keyPath(context.codingPath).printable())' is not a valid value"
        @unknown default:
            return "cannot be read"
        }
    }
}

/// What config.json translates into: GGUF metadata plus how the tensors are mapped.
struct HFModelPlan {
    /// `general.architecture`.
    var architecture: String
    /// The HF `model_type` it came from.
    var modelType: String
    var metadata: [String: GGUFValue]
    /// Llama's Q/K rows are permuted into adjacent rope pairs (LlamaModel.permute).
    var permuteQK: Bool
    var headCount: Int
    var kvHeadCount: Int
    /// Whether `lm_head.weight` is dropped (tied to the embeddings).
    var tied: Bool
    /// Extra tensors the converter computes (`rope_freqs.weight`, `rope_factors_*`), f32.
    var extraTensors: [(name: String, values: [Float])]
}

extension HFModelPlan {
    /// The supported `model_type`s and the GGUF architecture each becomes.
    static let architectures: [(modelType: String, architecture: String)] = [
        ("llama", "llama"), ("mistral", "llama"), ("qwen2", "qwen2"), ("qwen3", "qwen3"),
        ("gemma3", "gemma3"), ("gemma3_text", "gemma3"), ("phi3", "phi3"), ("gpt2", "gpt2"),
    ]

    /// Translates `config` (read from `path`) as the converter does.
    init(config top: HFConfig, path: String) throws {
        func bad(_ reason: String) -> ModelFileError { .malformed(path: path, reason: reason) }
        guard let modelType = top.modelType else { throw bad("'model_type' is missing") }
        guard let arch = Self.architectures.first(where: { $0.modelType == modelType })?.architecture else {
            throw bad("model_type '\(modelType.printable())' is not one Nibble runs (supported: \(Self.architectures.map(\.modelType).joined(separator: ", ")))")
        }
        // Gemma 3's multimodal config keeps the language model's settings in text_config.
        let c = (modelType == "gemma3" ? top.textConfig?.config : nil) ?? top
        self.architecture = arch
        self.modelType = modelType

        func required(_ value: Int?, _ key: String) throws -> Int {
            guard let value else { throw bad("'\(key)' is missing") }
            guard value > 0, value < 1 << 31 else { throw bad("'\(key)' is \(value); it must be a positive count") }
            return value
        }
        func positive(_ value: Double, _ key: String) throws -> Double {
            guard value > 0, value.isFinite else { throw bad("'\(key)' is \(value); it must be positive") }
            return value
        }

        var m: [String: GGUFValue] = ["general.architecture": .string(arch)]
        func put(_ key: String, _ value: Int) { m["\(arch).\(key)"] = .uint32(UInt32(clamping: value)) }
        func put(_ key: String, _ value: Double) { m["\(arch).\(key)"] = .float32(Float(value)) }
        var extra: [(name: String, values: [Float])] = []

        if arch == "gpt2" {
            let width = try required(c.nEmbd ?? c.hiddenSize, "n_embd")
            let heads = try required(c.nHead ?? c.numAttentionHeads, "n_head")
            put("block_count", try required(c.nLayer ?? c.numHiddenLayers, "n_layer"))
            put("context_length", try required(c.nPositions ?? c.nCtx ?? 1024, "n_positions"))
            put("embedding_length", width)
            put("feed_forward_length", try required(c.nInner ?? 4 * width, "n_inner"))
            put("attention.head_count", heads)
            put("attention.layer_norm_epsilon", try positive(c.layerNormEpsilon ?? 1e-5, "layer_norm_epsilon"))
            if let v = c.vocabSize { put("vocab_size", try required(v, "vocab_size")) }
            metadata = m
            permuteQK = false
            headCount = heads
            kvHeadCount = heads
            tied = c.tieWordEmbeddings ?? true
            extraTensors = []
            return
        }

        let width = try required(c.hiddenSize, "hidden_size")
        let heads = try required(c.numAttentionHeads, "num_attention_heads")
        let kvHeads = try required(c.numKeyValueHeads ?? heads, "num_key_value_heads")
        let layers = try required(c.numHiddenLayers, "num_hidden_layers")
        let headDim = try required(c.headDim ?? (width / heads), "head_dim")
        // transformers' defaults per family where config.json may omit a value.
        let defaultContext = ["llama": 2048, "mistral": 131_072, "qwen2": 32768, "qwen3": 40960, "gemma3": 131_072, "gemma3_text": 131_072, "phi3": 4096][modelType] ?? 2048
        let defaultEps = modelType == "phi3" ? 1e-5 : 1e-6
        let defaultTheta = (arch == "gemma3") ? 1_000_000.0 : 10000.0
        let rope = c.ropeParameters?.global ?? c.ropeScaling
        let theta = try positive(c.ropeParameters?.global?.ropeTheta ?? c.ropeTheta ?? defaultTheta, "rope_theta")

        put("block_count", layers)
        put("context_length", try required(c.maxPositionEmbeddings ?? defaultContext, "max_position_embeddings"))
        put("embedding_length", width)
        put("feed_forward_length", try required(c.intermediateSize, "intermediate_size"))
        put("attention.head_count", heads)
        put("attention.head_count_kv", kvHeads)
        put("attention.key_length", headDim)
        put("attention.value_length", headDim)
        put("attention.layer_norm_rms_epsilon", try positive(c.rmsNormEps ?? defaultEps, "rms_norm_eps"))
        put("rope.freq_base", theta)
        if let v = c.vocabSize { put("vocab_size", try required(v, "vocab_size")) }

        var ropeDims = headDim
        switch arch {
        case "llama":
            if modelType == "mistral", let window = c.slidingWindow {
                put("attention.sliding_window", try required(window, "sliding_window"))
            }
        case "gemma3":
            if let local = c.ropeParameters?.sliding?.ropeTheta ?? c.ropeLocalBaseFreq {
                put("rope.freq_base_swa", try positive(local, "rope_local_base_freq"))
            }
            if c.attnLogitSoftcapping != nil { throw bad("'attn_logit_softcapping' is set; Gemma 3 has none (the converter refuses it too)") }
            if let cap = c.finalLogitSoftcapping, cap > 0 { put("final_logit_softcapping", cap) }
            if c.slidingWindowPattern != 1, let window = c.slidingWindow {
                put("attention.sliding_window", try required(window, "sliding_window"))
                var pattern: [Bool]
                if let types = c.layerTypes {
                    guard types.count == layers else { throw bad("'layer_types' has \(types.count) entries for \(layers) layers") }
                    pattern = []
                    for t in types {
                        guard t == "sliding_attention" || t == "full_attention" else {
                            throw bad("'layer_types' has '\(t.printable())' (sliding_attention or full_attention expected)")
                        }
                        pattern.append(t == "sliding_attention")
                    }
                } else {
                    let n = c.slidingWindowPattern ?? 6
                    pattern = (0..<layers).map { ($0 + 1) % n != 0 }
                }
                m["\(arch).attention.sliding_window_pattern"] = .array(type: .bool, pattern.map { .bool($0) })
            }
        case "phi3":
            let partial = rope?.partialRotaryFactor ?? c.partialRotaryFactor ?? 1
            ropeDims = Int(Double(width / heads) * partial)
            let context = c.maxPositionEmbeddings ?? defaultContext
            let original = c.originalMaxPositionEmbeddings ?? rope?.originalMaxPositionEmbeddings ?? context
            put("rope.scaling.original_context_length", original)
            put("attention.sliding_window", c.slidingWindow ?? 0)
            if let rope, rope.kind != "default" {
                let scale = Double(context) / Double(original)
                switch rope.kind {
                case "su", "longrope":
                    m["\(arch).rope.scaling.attn_factor"] = .float32(Float(scale > 1 ? (1 + log(scale) / log(Double(original))).squareRoot() : 1))
                default:
                    throw bad("'rope_scaling' type '\(rope.kind.printable())' is not one Nibble runs for phi3 (longrope)")
                }
                guard let long = rope.longFactor, let short = rope.shortFactor, long.count == short.count, long.count * 2 == ropeDims else {
                    throw bad("'rope_scaling' needs long_factor and short_factor of \(ropeDims / 2) values each")
                }
                extra.append(("rope_factors_long.weight", long.map { Float($0) }))
                extra.append(("rope_factors_short.weight", short.map { Float($0) }))
            }
        default:
            break
        }
        put("rope.dimension_count", ropeDims)

        if arch != "phi3", let rope, rope.kind != "default" {
            switch rope.kind {
            case "linear":
                guard let factor = rope.factor else { throw bad("'rope_scaling' of type linear has no 'factor'") }
                m["\(arch).rope.scaling.type"] = .string("linear")
                put("rope.scaling.factor", try positive(factor, "rope_scaling.factor"))
            case "llama3" where arch == "llama":
                extra.append(("rope_freqs.weight", Self.llama3Factors(rope, theta: theta, dim: headDim)))
            default:
                throw bad("'rope_scaling' type '\(rope.kind.printable())' is not one Nibble runs (linear\(arch == "llama" ? ", llama3" : ""))")
            }
        }

        metadata = m
        permuteQK = arch == "llama"
        headCount = heads
        kvHeadCount = kvHeads
        tied = c.tieWordEmbeddings ?? (arch == "gemma3")
        extraTensors = extra
    }

    /// Llama 3's per-pair RoPE divisors, computed in float32 as the converter's
    /// `LlamaModel.generate_extra_tensors` does with torch.
    static func llama3Factors(_ rope: HFRopeParameters, theta: Double, dim: Int) -> [Float] {
        let factor = Float(rope.factor ?? 8), low = Float(rope.lowFreqFactor ?? 1), high = Float(rope.highFreqFactor ?? 4)
        let old = Float(rope.originalMaxPositionEmbeddings ?? 8192)
        let lowWavelen = old / low, highWavelen = old / high
        return stride(from: 0, to: dim, by: 2).map { i in
            let freq = 1 / pow(Float(theta), Float(i) / Float(dim))
            let wavelen = 2 * Float.pi / freq
            if wavelen < highWavelen { return 1 }
            if wavelen > lowWavelen { return factor }
            let smooth = (old / wavelen - low) / (high - low)
            return 1 / ((1 - smooth) / factor + smooth)
        }
    }
}
