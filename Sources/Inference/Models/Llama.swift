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

    var matrices: [WeightMatrix] { [wq, wk, wv, wo, gate, up, down] }
}

/// All weights of a Llama model in one `WeightFormat`.
public final class LlamaModel: @unchecked Sendable {
    public let config: ModelConfig
    let tokenEmbedding: WeightMatrix  // (vocab, dim)
    let layers: [LlamaLayer]
    let outputNorm: [Float]           // (dim)
    let output: WeightMatrix          // (vocab, dim); the embedding itself when tied
    /// RoPE inverse frequencies per rotated pair, θ_i = base^(-2i/d) / freq_factor_i.
    let inverseFrequencies: [Float]

    /// Weights in the formats of `plan`.
    public let plan: WeightPlan

    public init(gguf: GGUFFile, config: ModelConfig, plan: WeightPlan, pool: WorkerPool, shouldStop: @escaping () -> Bool = { false }) throws {
        self.config = config
        self.plan = plan
        let loader = WeightLoader(gguf: gguf, plan: plan, pool: pool, shouldStop: shouldStop)
        let c = config
        tokenEmbedding = try loader.matrix("token_embd.weight", rows: c.vocabSize, columns: c.embeddingLength)
        layers = try (0..<c.layerCount).map { try LlamaLayer(loader, $0, c) }
        outputNorm = try loader.vector("output_norm.weight", count: c.embeddingLength)
        output = loader.has("output.weight")
            ? try loader.matrix("output.weight", rows: c.vocabSize, columns: c.embeddingLength)
            : tokenEmbedding
        // HF: inv_freq = 1 / (base ** (arange(0, dim, 2) / dim)), computed in float32.
        let pairs = c.ropeDimensionCount / 2
        var inverse = (0..<pairs).map { i in
            1 / powf(c.ropeFreqBase, Float(2 * i) / Float(c.ropeDimensionCount))
        }
        // Llama 3.1-style scaling is stored by llama.cpp as per-pair divisors.
        if loader.has("rope_freqs.weight") {
            let factors = try loader.vector("rope_freqs.weight", count: pairs)
            for i in 0..<pairs { inverse[i] /= factors[i] }
        }
        inverseFrequencies = inverse
    }

    /// Bytes of all weight matrices (the tied head counted once) plus f32 vectors.
    public var weightBytes: Int {
        var total = tokenEmbedding.byteCount + (output === tokenEmbedding ? 0 : output.byteCount)
        for layer in layers {
            total += layer.matrices.reduce(0) { $0 + $1.byteCount } + 4 * (layer.attentionNorm.count + layer.ffnNorm.count)
        }
        return total + 4 * outputNorm.count
    }

    // ------------------------------------------------------------------------
    // Forward pass

    /// Runs `count` tokens at positions `start..<start+count` (their keys and values go
    /// into `cache`) and writes logits for the last token, or for every token when
    /// the tokens from index `logitsFrom` on (nil: only the last), into `state.logits`
    /// (`(count − logitsFrom) × vocab`, or `vocab`).
    /// - Precondition: `count <= state.maxBatch`, `start + count <= cache.capacity`.
    func forward(tokens: UnsafePointer<Int32>, count: Int, start: Int, cache: KVCache,
                 state s: ForwardState, pool: WorkerPool, logitsFrom: Int? = nil) {
        let c = config
        let dim = c.embeddingLength, hd = c.headDim, kvDim = c.kvDim, qDim = c.qDim
        precondition(count >= 1 && count <= s.maxBatch && start + count <= cache.capacity)

        for t in 0..<count { tokenEmbedding.row(Int(tokens[t]), into: s.x + t * dim) }

        for (l, layer) in layers.enumerated() {
            // Attention: xb = rmsnorm(x); q, k, v = W·xb; rope; cache; attend; x += Wo·att.
            rmsNorm(s.x, layer.attentionNorm, count: count, into: s.xb)
            WeightMatrix.multiply((layer.wq, s.q), (layer.wk, s.k), (layer.wv, s.v), x: s.xb, batch: count, pool: pool, scratch: s.quantized)
            for t in 0..<count {
                applyRoPE(s.q + t * qDim, heads: c.headCount, position: start + t)
                applyRoPE(s.k + t * kvDim, heads: c.kvHeadCount, position: start + t)
            }
            cache.store(layer: l, position: start, count: count, keys: s.k, values: s.v)
            let group = c.headCount / c.kvHeadCount
            let scale = 1 / Float(hd).squareRoot()
            pool.parallelFor(count * c.headCount) { task in
                let t = task / c.headCount, h = task % c.headCount
                cache.attend(layer: l, kvHead: h / group, headDim: hd, length: start + t + 1,
                             q: s.q + t * qDim + h * hd, scale: scale, out: s.attention + t * qDim + h * hd)
            }
            layer.wo.multiply(s.attention, batch: count, into: s.xb, pool: pool, scratch: s.quantized)
            add(s.xb, into: s.x, count: count * dim)

            // MLP: x += down(silu(gate(xb)) * up(xb)), xb = rmsnorm(x).
            rmsNorm(s.x, layer.ffnNorm, count: count, into: s.xb)
            WeightMatrix.multiply((layer.gate, s.hidden), (layer.up, s.hidden2), nil, x: s.xb, batch: count, pool: pool, scratch: s.quantized)
            swiGLU(s.hidden, s.hidden2, count: count * c.feedForwardLength)
            layer.down.multiply(s.hidden, batch: count, into: s.xb, pool: pool, scratch: s.quantized)
            add(s.xb, into: s.x, count: count * dim)
        }

        let first = min(logitsFrom ?? (count - 1), count - 1)
        rmsNorm(s.x + first * dim, outputNorm, count: count - first, into: s.xb)
        output.multiply(s.xb, batch: count - first, into: s.logits, pool: pool, scratch: s.quantized)
    }

    /// HF LlamaRMSNorm: x / sqrt(mean(x²) + ε) * weight, per token, in f32.
    private func rmsNorm(_ x: UnsafeMutablePointer<Float>, _ weight: [Float], count: Int, into out: UnsafeMutablePointer<Float>) {
        let dim = config.embeddingLength
        let eps = config.rmsNormEpsilon
        weight.withUnsafeBufferPointer { w in
            for t in 0..<count {
                let xt = x + t * dim, ot = out + t * dim
                let meanSquare = nb_dot_f32(xt, xt, Int64(dim)) / Float(dim)
                let inv = 1 / (meanSquare + eps).squareRoot()
                for i in 0..<dim { ot[i] = w[i] * (xt[i] * inv) }
            }
        }
    }

    /// Rotates adjacent pairs of the first `ropeDimensionCount` dims of each head.
    private func applyRoPE(_ v: UnsafeMutablePointer<Float>, heads: Int, position: Int) {
        let hd = config.headDim
        let p = Float(position) / config.ropeLinearScale
        inverseFrequencies.withUnsafeBufferPointer { inv in
            for i in 0..<inv.count {
                let angle = p * inv[i]
                let cosA = cosf(angle), sinA = sinf(angle)
                for h in 0..<heads {
                    let pair = v + h * hd + 2 * i
                    let x0 = pair[0], x1 = pair[1]
                    pair[0] = x0 * cosA - x1 * sinA
                    pair[1] = x0 * sinA + x1 * cosA
                }
            }
        }
    }

    private func add(_ a: UnsafePointer<Float>, into x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] += a[i] }
    }

    /// gate ← silu(gate) * up, with silu(g) = g / (1 + e^-g).
    private func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let g = gate[i]
            gate[i] = g / (1 + expf(-g)) * up[i]
        }
    }
}

// ----------------------------------------------------------------------------
// Run state

/// Activation buffers for up to `maxBatch` tokens, allocated once: the decode loop
/// allocates nothing.
final class ForwardState {
    let maxBatch: Int
    let x: UnsafeMutablePointer<Float>          // (batch, dim) residual stream
    let xb: UnsafeMutablePointer<Float>         // (batch, dim) normed input / block output
    let q: UnsafeMutablePointer<Float>          // (batch, heads × headDim)
    let k: UnsafeMutablePointer<Float>          // (batch, kvHeads × headDim), before the cache
    let v: UnsafeMutablePointer<Float>          // (batch, kvHeads × headDim)
    let attention: UnsafeMutablePointer<Float>  // (batch, heads × headDim)
    let hidden: UnsafeMutablePointer<Float>     // (batch, ffn)
    let hidden2: UnsafeMutablePointer<Float>    // (batch, ffn)
    let logits: UnsafeMutablePointer<Float>     // (batch, vocab)
    /// The input of the current product quantised to int8 blocks (integer formats).
    let quantized: ActivationScratch
    private let buffers: [AlignedBuffer]

    var byteCount: Int { buffers.reduce(0) { $0 + $1.byteCount } + quantized.byteCount }

    init(config c: ModelConfig, maxBatch: Int) throws {
        self.maxBatch = maxBatch
        let sizes = [c.embeddingLength, c.embeddingLength, c.qDim, c.kvDim, c.kvDim, c.qDim,
                     c.feedForwardLength, c.feedForwardLength, c.vocabSize]
        var buffers: [AlignedBuffer] = []
        for size in sizes {
            guard let b = AlignedBuffer.zeroed(Float.self, count: size * maxBatch) else {
                throw QuantizationError.outOfMemory(bytes: size * maxBatch * 4, what: "activations")
            }
            buffers.append(b)
        }
        self.buffers = buffers
        x = buffers[0].typed(Float.self)
        xb = buffers[1].typed(Float.self)
        q = buffers[2].typed(Float.self)
        k = buffers[3].typed(Float.self)
        v = buffers[4].typed(Float.self)
        attention = buffers[5].typed(Float.self)
        hidden = buffers[6].typed(Float.self)
        hidden2 = buffers[7].typed(Float.self)
        logits = buffers[8].typed(Float.self)
        quantized = try ActivationScratch(tokens: maxBatch, columns: max(c.embeddingLength, c.qDim, c.feedForwardLength))
    }
}
