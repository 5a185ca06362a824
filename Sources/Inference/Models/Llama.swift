// Llama-family decoder (Llama 2/3, SmolLM, Mistral-style GGUFs with architecture "llama").
// Port of transformers' modeling_llama.py
// (https://github.com/huggingface/transformers/blob/main/src/transformers/models/llama/modeling_llama.py)
// laid out like karpathy/llama2.c's run.c: weights, run state, one forward function.
//
// GGUF stores Q and K rows permuted so that RoPE rotates adjacent pairs (x[2i], x[2i+1])
// (llama.cpp's convert_hf_to_gguf.py `permute`); rotating adjacent pairs here is
// therefore exactly HF's rotate_half on the original weights.

import CKernels
import Foundation
import ModelFiles
import Quantization

// ----------------------------------------------------------------------------
// Weights

/// One transformer block. Shapes are (rows × columns) = (out features × in features).
final class LlamaLayer {
    let attentionNorm: [Float]      // (dim)
    let wq: WeightMatrix            // (heads × headDim, dim)
    let wk: WeightMatrix            // (kvHeads × headDim, dim)
    let wv: WeightMatrix            // (kvHeads × headDim, dim)
    let wo: WeightMatrix            // (dim, heads × headDim)
    let ffnNorm: [Float]            // (dim)
    let gate: WeightMatrix          // (ffn, dim)
    let up: WeightMatrix            // (ffn, dim)
    let down: WeightMatrix          // (dim, ffn)

    init(_ l: WeightLoader, _ i: Int, _ c: ModelConfig) throws {
        let p = "blk.\(i)."
        attentionNorm = try l.vector(p + "attn_norm.weight", count: c.embeddingLength)
        wq = try l.matrix(p + "attn_q.weight", rows: c.qDim, columns: c.embeddingLength)
        wk = try l.matrix(p + "attn_k.weight", rows: c.kvDim, columns: c.embeddingLength)
        wv = try l.matrix(p + "attn_v.weight", rows: c.kvDim, columns: c.embeddingLength)
        wo = try l.matrix(p + "attn_output.weight", rows: c.embeddingLength, columns: c.qDim)
        ffnNorm = try l.vector(p + "ffn_norm.weight", count: c.embeddingLength)
        gate = try l.matrix(p + "ffn_gate.weight", rows: c.feedForwardLength, columns: c.embeddingLength)
        up = try l.matrix(p + "ffn_up.weight", rows: c.feedForwardLength, columns: c.embeddingLength)
        down = try l.matrix(p + "ffn_down.weight", rows: c.embeddingLength, columns: c.feedForwardLength)
    }

}

/// All weights of a Llama model in the plan's formats.
public final class LlamaModel: DecoderModel, @unchecked Sendable {
    public let config: ModelConfig
    let tokenEmbedding: WeightMatrix  // (vocab, dim)
    let layers: [LlamaLayer]
    let outputNorm: [Float]           // (dim)
    let output: WeightMatrix          // (vocab, dim); the embedding itself when tied
    let rope: RotaryEmbedding

    public init(loader: WeightLoader, config c: ModelConfig) throws {
        config = c
        tokenEmbedding = try loader.matrix("token_embd.weight", rows: c.vocabSize, columns: c.embeddingLength)
        layers = try (0..<c.layerCount).map { try LlamaLayer(loader, $0, c) }
        outputNorm = try loader.vector("output_norm.weight", count: c.embeddingLength)
        output = loader.has("output.weight")
            ? try loader.matrix("output.weight", rows: c.vocabSize, columns: c.embeddingLength)
            : tokenEmbedding
        // Llama 3.1-style scaling is stored by llama.cpp as per-pair divisors.
        let factors = try loader.optionalVector("rope_freqs.weight", count: c.ropeDimensionCount / 2)
        rope = RotaryEmbedding(layout: .adjacentPairs, dimensions: c.ropeDimensionCount, base: c.ropeFreqBase, factors: factors,
                               linearScale: c.ropeLinearScale, maxBatch: Engine.prefillChunk)
    }

    // ------------------------------------------------------------------------
    // Forward pass

    public func forward(tokens: UnsafePointer<Int32>, count: Int, start: Int, cache: KVCache,
                        state s: ForwardState, pool: WorkerPool, logitsFrom: Int?) {
        let c = config
        let dim = c.embeddingLength, kvDim = c.kvDim, qDim = c.qDim
        precondition(count >= 1 && count <= s.maxBatch)

        for t in 0..<count { tokenEmbedding.row(Int(tokens[t]), into: s.x + t * dim) }
        rope.prepare(start: start, count: count)
        let scale = 1 / Float(c.headDim).squareRoot()

        for (l, layer) in layers.enumerated() {
            // Attention: xb = rmsnorm(x); q, k, v = W·xb; rope; cache; attend; x += Wo·att.
            Layers.rmsNorm(s.x, weight: layer.attentionNorm, width: dim, rows: count, epsilon: c.rmsNormEpsilon, into: s.xb)
            WeightMatrix.multiply((layer.wq, s.q), (layer.wk, s.k), (layer.wv, s.v), x: s.xb, batch: count, pool: pool, scratch: s.quantized)
            rope.apply(s.q, heads: c.headCount, headDim: c.headDim, stride: qDim, count: count)
            rope.apply(s.k, heads: c.kvHeadCount, headDim: c.headDim, stride: kvDim, count: count)
            Layers.attention(layer: l, config: c, count: count, start: start, cache: cache, state: s, pool: pool, scale: scale)
            layer.wo.multiply(s.attention, batch: count, into: s.xb, pool: pool, scratch: s.quantized)
            Layers.add(s.xb, into: s.x, count: count * dim)

            // MLP: x += down(silu(gate(xb)) * up(xb)), xb = rmsnorm(x).
            Layers.rmsNorm(s.x, weight: layer.ffnNorm, width: dim, rows: count, epsilon: c.rmsNormEpsilon, into: s.xb)
            WeightMatrix.multiply((layer.gate, s.hidden), (layer.up, s.hidden2), nil, x: s.xb, batch: count, pool: pool, scratch: s.quantized)
            Layers.gated(.silu, s.hidden, s.hidden2, count: count * c.feedForwardLength)
            layer.down.multiply(s.hidden, batch: count, into: s.xb, pool: pool, scratch: s.quantized)
            Layers.add(s.xb, into: s.x, count: count * dim)
        }

        let first = min(logitsFrom ?? (count - 1), count - 1)
        Layers.rmsNorm(s.x + first * dim, weight: outputNorm, width: dim, rows: count - first, epsilon: c.rmsNormEpsilon, into: s.xb)
        output.multiply(s.xb, batch: count - first, into: s.logits, pool: pool, scratch: s.quantized)
    }
}
