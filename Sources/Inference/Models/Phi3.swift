// Phi-3 / Phi-3.5 / Phi-4-mini (architecture "phi3"): Llama's decoder with a fused QKV
// (`attn_qkv`: rows Q, K, V) and a fused gate/up (`ffn_up`: 2·ffn rows, gate first),
// both split at load by `QKVProjection` and `FeedForward`, GPT-NeoX-style RoPE, and
// LongRoPE: per-pair divisors `rope_factors_short` / `rope_factors_long` and an
// attention factor multiplying cos and sin (`rope.scaling.attn_factor`). As llama.cpp
// (`llama_model::get_rope_factors`), the long factors apply when the context the engine
// runs with exceeds `rope.scaling.original_context_length`, the short ones otherwise.
// Port of transformers' modeling_phi3.py, read as llama.cpp's models/phi3.cpp reads the
// GGUF (which, like llama.cpp, ignores the sliding window some Phi-3 configs declare).

import ModelFiles

final class Phi3Model: LlamaModel, @unchecked Sendable {
    override class func rotaryEmbedding(_ l: WeightLoader, config c: ModelConfig) throws -> RotaryEmbedding {
        let pairs = c.ropeDimensionCount / 2
        let original = c.ropeOriginalContext > 0 ? c.ropeOriginalContext : c.contextLength
        let name = l.contextLength > original ? "rope_factors_long.weight" : "rope_factors_short.weight"
        return RotaryEmbedding(layout: .halves, dimensions: c.ropeDimensionCount, base: c.ropeFreqBase,
                               factors: try l.optionalVector(name, count: pairs), linearScale: c.ropeLinearScale,
                               attentionFactor: c.ropeAttentionFactor, maxBatch: Engine.prefillChunk)
    }

    /// Phi-3's GGUFs may declare a sliding window that llama.cpp ignores (its note: the
    /// converters do not record which layers use it); Nibble follows llama.cpp.
    override class func configure(_ config: inout ModelConfig, source: any ModelSource) throws {
        config.slidingWindow = nil
        config.slidingLayers = [Bool](repeating: false, count: config.layerCount)
    }
}
