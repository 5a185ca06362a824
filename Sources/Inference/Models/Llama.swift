// Llama family (architecture "llama"): Llama 1/2/3/3.1/3.2, SmolLM, TinyLlama, and
// Mistral, whose GGUFs say "llama" too (with `llama.attention.sliding_window` when the
// file sets one). Port of transformers' modeling_llama.py, read as llama.cpp's
// models/llama.cpp reads the GGUF.
//
// GGUF stores Q and K rows permuted so that RoPE rotates adjacent pairs (x[2i], x[2i+1])
// (llama.cpp's convert_hf_to_gguf.py `permute`); rotating adjacent pairs here is
// therefore exactly HF's rotate_half on the original weights. Llama 3.1's rope scaling
// is the per-pair divisor tensor `rope_freqs.weight`.

import ModelFiles
import Quantization

final class LlamaLayer {
    let attentionNorm: [Float]
    let attention: QKVProjection
    /// Per-head RMSNorm weights of Q and K (Qwen 3), applied before RoPE.
    let queryNorm, keyNorm: [Float]?
    let output: OutputProjection
    let ffnNorm: [Float]
    let mlp: FeedForward

    init(_ l: WeightLoader, _ i: Int, _ c: ModelConfig, queryKeyNorms: Bool) throws {
        let p = "blk.\(i)."
        attentionNorm = try l.vector(p + "attn_norm.weight", count: c.embeddingLength)
        attention = try QKVProjection(l, layer: i, config: c)
        queryNorm = queryKeyNorms ? try l.vector(p + "attn_q_norm.weight", count: c.headDim) : nil
        keyNorm = queryKeyNorms ? try l.vector(p + "attn_k_norm.weight", count: c.headDim) : nil
        output = try OutputProjection(l, p + "attn_output", rows: c.embeddingLength, columns: c.qDim)
        ffnNorm = try l.vector(p + "ffn_norm.weight", count: c.embeddingLength)
        mlp = try FeedForward(l, layer: i, config: c, activation: .silu, gated: true)
    }
}

/// The pre-norm decoder of Llama and of the families that differ from it only in their
/// rotary embedding or Q/K norms (Qwen 2/3, Phi-3 subclass it and override the class
/// properties below).
public class LlamaModel: DecoderModel, @unchecked Sendable {
    public let config: ModelConfig
    let weights: EmbeddingAndHead
    let layers: [LlamaLayer]
    let outputNorm: [Float]
    let rope: RotaryEmbedding

    /// Overridable by the subclasses (a protocol's default would be dispatched statically).
    public class func configure(_ config: inout ModelConfig, source: any ModelSource) throws {}
    public class func scratchSizes(_ config: ModelConfig) -> ScratchSizes { ScratchSizes(config) }
    public class func maximumContext(_ config: ModelConfig) -> Int? { nil }

    /// Whether each layer has per-head RMSNorms of Q and K (`attn_q_norm`, `attn_k_norm`).
    class var queryKeyNorms: Bool { false }

    /// The rotary embedding: adjacent pairs (the converter permuted Q/K), divided by
    /// `rope_freqs` when the file has it (Llama 3.1 scaling).
    class func rotaryEmbedding(_ l: WeightLoader, config c: ModelConfig) throws -> RotaryEmbedding {
        let factors = try l.optionalVector("rope_freqs.weight", count: c.ropeDimensionCount / 2)
        return RotaryEmbedding(layout: .adjacentPairs, dimensions: c.ropeDimensionCount, base: c.ropeFreqBase, factors: factors,
                               linearScale: c.ropeLinearScale, maxBatch: Engine.prefillChunk)
    }

    public required init(loader l: WeightLoader, config c: ModelConfig) throws {
        config = c
        weights = try EmbeddingAndHead(l, config: c)
        let norms = Self.queryKeyNorms
        layers = try (0..<c.layerCount).map { try LlamaLayer(l, $0, c, queryKeyNorms: norms) }
        outputNorm = try l.vector("output_norm.weight", count: c.embeddingLength)
        rope = try Self.rotaryEmbedding(l, config: c)
    }

    public func forward(tokens: UnsafePointer<Int32>, count: Int, start: Int, cache: KVCache,
                        state s: ForwardState, pool: WorkerPool, logitsFrom: Int?) {
        let c = config, dim = c.embeddingLength, eps = c.rmsNormEpsilon
        weights.embed(tokens, count: count, into: s.x)
        rope.prepare(start: start, count: count)
        let scale = 1 / Float(c.headDim).squareRoot()

        for (l, layer) in layers.enumerated() {
            // x += Wo · attention(rope(W_qkv · rmsnorm(x)))
            Layers.rmsNorm(s.x, weight: layer.attentionNorm, width: dim, rows: count, epsilon: eps, into: s.xb)
            layer.attention.project(s.xb, count: count, state: s, pool: pool)
            if let qn = layer.queryNorm, let kn = layer.keyNorm {
                Layers.rmsNorm(s.q, weight: qn, width: c.headDim, rows: count * c.headCount, epsilon: eps, into: s.q)
                Layers.rmsNorm(s.k, weight: kn, width: c.headDim, rows: count * c.kvHeadCount, epsilon: eps, into: s.k)
            }
            rope.apply(s.q, heads: c.headCount, headDim: c.headDim, stride: c.qDim, count: count)
            rope.apply(s.k, heads: c.kvHeadCount, headDim: c.headDim, stride: c.kvDim, count: count)
            Layers.attention(layer: l, config: c, count: count, start: start, cache: cache, state: s, pool: pool, scale: scale)
            layer.output(s.attention, count: count, into: s.xb, state: s, pool: pool)
            Layers.add(s.xb, into: s.x, count: count * dim)
            // x += down(silu(gate · rmsnorm(x)) ⊙ up · rmsnorm(x))
            Layers.rmsNorm(s.x, weight: layer.ffnNorm, width: dim, rows: count, epsilon: eps, into: s.xb)
            layer.mlp(s.xb, count: count, into: s.xb, state: s, pool: pool)
            Layers.add(s.xb, into: s.x, count: count * dim)
        }

        let first = min(logitsFrom ?? (count - 1), count)
        guard first < count else { return }  // an earlier prefill chunk: no logits wanted
        Layers.rmsNorm(s.x + first * dim, weight: outputNorm, width: dim, rows: count - first, epsilon: eps, into: s.xb)
        weights.logits(s.xb, count: count - first, state: s, pool: pool)
    }
}
