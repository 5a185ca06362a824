// Gemma 3 text models (architecture "gemma3"). Port of transformers'
// modeling_gemma3.py (Gemma3ForCausalLM), read as llama.cpp's models/gemma3.cpp reads
// the GGUF:
//
//   x = embedding · √width
//   per layer:  h = x + post_attn_norm(attention(pre_norm(x)))
//               x = h + post_ffw_norm(down(gelu_tanh(gate · n) ⊙ up · n)),  n = pre_ffw_norm(h)
//   attention:  Q, K per-head RMSNorm, GPT-NeoX RoPE (base 10000 on the sliding layers,
//               `rope.freq_base` on the global ones), scores scaled by
//               query_pre_attn_scalar^-½, a sliding window on 5 of every 6 layers
//   logits = head · final_norm(x), soft-capped when `final_logit_softcapping` is set.
//
// The converter stores every RMSNorm weight as 1 + w (transformers' Gemma3RMSNorm
// multiplies by 1 + weight), so the norms here are plain RMSNorms.

import ModelFiles
import Quantization

final class Gemma3Layer {
    let attentionNorm, postAttentionNorm, ffnNorm, postFFNNorm: [Float]
    let queryNorm, keyNorm: [Float]
    let attention: QKVProjection
    let output: OutputProjection
    let mlp: FeedForward

    init(_ l: WeightLoader, _ i: Int, _ c: ModelConfig) throws {
        let p = "blk.\(i).", dim = c.embeddingLength
        attentionNorm = try l.vector(p + "attn_norm.weight", count: dim)
        attention = try QKVProjection(l, layer: i, config: c)
        queryNorm = try l.vector(p + "attn_q_norm.weight", count: c.headDim)
        keyNorm = try l.vector(p + "attn_k_norm.weight", count: c.headDim)
        output = try OutputProjection(l, p + "attn_output", rows: dim, columns: c.qDim)
        postAttentionNorm = try l.vector(p + "post_attention_norm.weight", count: dim)
        ffnNorm = try l.vector(p + "ffn_norm.weight", count: dim)
        mlp = try FeedForward(l, layer: i, config: c, activation: .geluTanh, gated: true)
        postFFNNorm = try l.vector(p + "post_ffw_norm.weight", count: dim)
    }
}

final class Gemma3Model: DecoderModel, @unchecked Sendable {
    let config: ModelConfig
    let weights: EmbeddingAndHead
    let layers: [Gemma3Layer]
    let outputNorm: [Float]
    /// RoPE of the global layers and of the sliding ones (different bases).
    let globalRope, localRope: RotaryEmbedding

    /// What Gemma 3 GGUFs do not store, as llama.cpp's models/gemma3.cpp and
    /// llama-hparams.h fill it in:
    /// - which layers slide: `attention.sliding_window_pattern` (an array of booleans, or
    ///   a period n: layer l slides unless l mod n = n − 1), else the period 6
    ///   (5 local layers, then 1 global);
    /// - the sliding layers' RoPE base: `rope.freq_base_swa`, else 10000
    ///   (`rope_freq_base_train_swa`; transformers' `rope_local_base_freq`), unscaled;
    /// - the score scale: 1/√head_dim (`query_pre_attn_scalar` = head_dim for every size
    ///   but 27B, where it is width / heads; gemma_pytorch's config.py).
    static func configure(_ config: inout ModelConfig, source: any ModelSource) throws {
        let arch = config.architecture, layers = config.layerCount
        if config.slidingWindow != nil {
            let key = "\(arch).attention.sliding_window_pattern"
            if let flags = source.metadata[key]?.arrayValue {
                config.slidingLayers = flags.map { $0.boolValue ?? false }
            } else {
                let period = source.int(key) ?? 6
                config.slidingLayers = (0..<layers).map { period == 0 || $0 % period < period - 1 }
            }
        }
        if source.float("\(arch).rope.freq_base_swa") == nil { config.ropeFreqBaseLocal = 10000 }
        let queryPreAttentionScalar = layers == 62 ? Float(config.embeddingLength / config.headCount) : Float(config.headDim)
        config.attentionScale = 1 / queryPreAttentionScalar.squareRoot()
    }

    init(loader l: WeightLoader, config c: ModelConfig) throws {
        config = c
        weights = try EmbeddingAndHead(l, config: c)
        layers = try (0..<c.layerCount).map { try Gemma3Layer(l, $0, c) }
        outputNorm = try l.vector("output_norm.weight", count: c.embeddingLength)
        globalRope = RotaryEmbedding(layout: .halves, dimensions: c.ropeDimensionCount, base: c.ropeFreqBase,
                                     linearScale: c.ropeLinearScale, maxBatch: Engine.prefillChunk)
        localRope = RotaryEmbedding(layout: .halves, dimensions: c.ropeDimensionCount, base: c.ropeFreqBaseLocal,
                                    maxBatch: Engine.prefillChunk)
    }

    func forward(tokens: UnsafePointer<Int32>, count: Int, start: Int, cache: KVCache,
                 state s: ForwardState, pool: WorkerPool, logitsFrom: Int?) {
        let c = config, dim = c.embeddingLength, eps = c.rmsNormEpsilon, hd = c.headDim
        weights.embed(tokens, count: count, into: s.x)
        Layers.scale(s.x, by: Float(dim).squareRoot(), count: count * dim)
        globalRope.prepare(start: start, count: count)
        localRope.prepare(start: start, count: count)
        let scale = c.attentionScale ?? 1 / Float(hd).squareRoot()

        for (l, layer) in layers.enumerated() {
            Layers.rmsNorm(s.x, weight: layer.attentionNorm, width: dim, rows: count, epsilon: eps, into: s.xb)
            layer.attention.project(s.xb, count: count, state: s, pool: pool)
            Layers.rmsNorm(s.q, weight: layer.queryNorm, width: hd, rows: count * c.headCount, epsilon: eps, into: s.q)
            Layers.rmsNorm(s.k, weight: layer.keyNorm, width: hd, rows: count * c.kvHeadCount, epsilon: eps, into: s.k)
            let rope = c.isSliding(l) ? localRope : globalRope
            rope.apply(s.q, heads: c.headCount, headDim: hd, stride: c.qDim, count: count)
            rope.apply(s.k, heads: c.kvHeadCount, headDim: hd, stride: c.kvDim, count: count)
            Layers.attention(layer: l, config: c, count: count, start: start, cache: cache, state: s, pool: pool, scale: scale)
            layer.output(s.attention, count: count, into: s.xb, state: s, pool: pool)
            Layers.rmsNorm(s.xb, weight: layer.postAttentionNorm, width: dim, rows: count, epsilon: eps, into: s.xb)
            Layers.add(s.xb, into: s.x, count: count * dim)

            Layers.rmsNorm(s.x, weight: layer.ffnNorm, width: dim, rows: count, epsilon: eps, into: s.xb)
            layer.mlp(s.xb, count: count, into: s.xb, state: s, pool: pool)
            Layers.rmsNorm(s.xb, weight: layer.postFFNNorm, width: dim, rows: count, epsilon: eps, into: s.xb)
            Layers.add(s.xb, into: s.x, count: count * dim)
        }

        let first = min(logitsFrom ?? (count - 1), count), rows = count - first
        guard rows > 0 else { return }  // an earlier prefill chunk: no logits wanted
        Layers.rmsNorm(s.x + first * dim, weight: outputNorm, width: dim, rows: rows, epsilon: eps, into: s.xb)
        weights.logits(s.xb, count: rows, state: s, pool: pool)
        if let cap = c.finalLogitSoftcap { Layers.softcap(s.logits, cap: cap, count: rows * c.vocabSize) }
    }
}
