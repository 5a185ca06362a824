// GPT-2 (architecture "gpt2"): learned absolute positions, LayerNorm with bias, a fused
// QKV with bias (`attn_qkv`: rows Q, K, V), biases on every projection, an ungated MLP
// with GELU (tanh approximation, transformers' gelu_new) and no RoPE. Port of
// transformers' modeling_gpt2.py, read as llama.cpp's models/gpt2.cpp reads the GGUF
// (the converter has already transposed GPT-2's Conv1D weights to [out, in]).

import ModelFiles
import Quantization

final class GPT2Layer {
    let attentionNorm, attentionNormBias, ffnNorm, ffnNormBias: [Float]
    let attention: QKVProjection
    let output: OutputProjection
    let mlp: FeedForward

    init(_ l: WeightLoader, _ i: Int, _ c: ModelConfig) throws {
        let p = "blk.\(i).", dim = c.embeddingLength
        attentionNorm = try l.vector(p + "attn_norm.weight", count: dim)
        attentionNormBias = try l.vector(p + "attn_norm.bias", count: dim)
        attention = try QKVProjection(l, layer: i, config: c)
        output = try OutputProjection(l, p + "attn_output", rows: dim, columns: c.qDim)
        ffnNorm = try l.vector(p + "ffn_norm.weight", count: dim)
        ffnNormBias = try l.vector(p + "ffn_norm.bias", count: dim)
        mlp = try FeedForward(l, layer: i, config: c, activation: .geluTanh, gated: false)
    }
}

final class GPT2Model: DecoderModel, @unchecked Sendable {
    let config: ModelConfig
    let weights: EmbeddingAndHead
    /// One learned embedding per position (the trained context), added to the tokens'.
    let positions: WeightMatrix
    let layers: [GPT2Layer]
    let outputNorm, outputNormBias: [Float]

    static func maximumContext(_ config: ModelConfig) -> Int? { config.contextLength }

    init(loader l: WeightLoader, config c: ModelConfig) throws {
        config = c
        weights = try EmbeddingAndHead(l, config: c)
        positions = try l.matrix("position_embd.weight", rows: c.contextLength, columns: c.embeddingLength)
        layers = try (0..<c.layerCount).map { try GPT2Layer(l, $0, c) }
        outputNorm = try l.vector("output_norm.weight", count: c.embeddingLength)
        outputNormBias = try l.vector("output_norm.bias", count: c.embeddingLength)
    }

    func forward(tokens: UnsafePointer<Int32>, count: Int, start: Int, cache: KVCache,
                 state s: ForwardState, pool: WorkerPool, logitsFrom: Int?) {
        let c = config, dim = c.embeddingLength, eps = c.layerNormEpsilon
        weights.embed(tokens, count: count, into: s.x)
        for t in 0..<count {
            // The engine never runs past the learned positions (`maximumContext`).
            positions.row(start + t, into: s.xb + t * dim)
        }
        Layers.add(s.xb, into: s.x, count: count * dim)
        let scale = 1 / Float(c.headDim).squareRoot()

        for (l, layer) in layers.enumerated() {
            Layers.layerNorm(s.x, weight: layer.attentionNorm, bias: layer.attentionNormBias, width: dim, rows: count, epsilon: eps, into: s.xb)
            layer.attention.project(s.xb, count: count, state: s, pool: pool)
            Layers.attention(layer: l, config: c, count: count, start: start, cache: cache, state: s, pool: pool, scale: scale)
            layer.output(s.attention, count: count, into: s.xb, state: s, pool: pool)
            Layers.add(s.xb, into: s.x, count: count * dim)

            Layers.layerNorm(s.x, weight: layer.ffnNorm, bias: layer.ffnNormBias, width: dim, rows: count, epsilon: eps, into: s.xb)
            layer.mlp(s.xb, count: count, into: s.xb, state: s, pool: pool)
            Layers.add(s.xb, into: s.x, count: count * dim)
        }

        let first = min(logitsFrom ?? (count - 1), count), rows = count - first
        guard rows > 0 else { return }  // an earlier prefill chunk: no logits wanted
        Layers.layerNorm(s.x + first * dim, weight: outputNorm, bias: outputNormBias, width: dim, rows: rows, epsilon: eps, into: s.xb)
        weights.logits(s.xb, count: rows, state: s, pool: pool)
    }
}
