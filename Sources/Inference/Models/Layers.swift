// The operations every family is built from: norms, rotary embeddings, activations,
// biases, attention over the KV cache and logit soft-capping. Each is written once
// here, in f32, following transformers' definitions (the reference the tests hold the
// families to); the families only choose and order them.

import CKernels
import Foundation
import Quantization

enum Layers {
    // MARK: Norms

    /// RMSNorm (transformers' LlamaRMSNorm): out = weight · x / √(mean(x²) + ε), over
    /// `rows` rows of `width` values each. `width` is the model width for a layer norm,
    /// the head size for Qwen 3's and Gemma 3's per-head Q/K norms. `x` and `out` may
    /// be the same buffer.
    static func rmsNorm(_ x: UnsafePointer<Float>, weight: [Float], width: Int, rows: Int, epsilon: Float,
                        into out: UnsafeMutablePointer<Float>) {
        precondition(weight.count == width)
        weight.withUnsafeBufferPointer { w in nb_rms_norm(x, w.baseAddress!, Int64(width), Int64(rows), epsilon, out) }
    }

    /// LayerNorm with bias (GPT-2): out = (x − mean) / √(var + ε) · weight + bias, the
    /// variance biased (divided by `width`), as torch.nn.LayerNorm.
    static func layerNorm(_ x: UnsafePointer<Float>, weight: [Float], bias: [Float], width: Int, rows: Int, epsilon: Float,
                          into out: UnsafeMutablePointer<Float>) {
        precondition(weight.count == width && bias.count == width)
        weight.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in
                for r in 0..<rows {
                    let xr = x + r * width, or = out + r * width
                    var sum: Float = 0
                    for i in 0..<width { sum += xr[i] }
                    let mean = sum / Float(width)
                    var squares: Float = 0
                    for i in 0..<width {
                        let d = xr[i] - mean
                        squares += d * d
                    }
                    let inv = 1 / (squares / Float(width) + epsilon).squareRoot()
                    for i in 0..<width { or[i] = (xr[i] - mean) * inv * w[i] + b[i] }
                }
            }
        }
    }

    // MARK: Element-wise

    /// x += a over `count` values (the residual connection).
    static func add(_ a: UnsafePointer<Float>, into x: UnsafeMutablePointer<Float>, count: Int) {
        nb_add_f32(a, x, Int64(count))
    }

    /// Adds `bias` to each of `rows` rows of `y` (row stride `bias.count`).
    static func addBias(_ bias: [Float], to y: UnsafeMutablePointer<Float>, rows: Int) {
        bias.withUnsafeBufferPointer { b in
            for r in 0..<rows {
                let yr = y + r * b.count
                for i in 0..<b.count { yr[i] += b[i] }
            }
        }
    }

    /// x *= s over `count` values.
    static func scale(_ x: UnsafeMutablePointer<Float>, by s: Float, count: Int) {
        for i in 0..<count { x[i] *= s }
    }

    /// The MLP's activation.
    enum Activation {
        /// silu(g) = g / (1 + e^−g) (Llama, Qwen, Phi-3, Mistral).
        case silu
        /// gelu with the tanh approximation (Gemma's gelu_pytorch_tanh, GPT-2's gelu_new).
        case geluTanh

        var c: nb_mlp_activation { self == .silu ? NB_MLP_SILU : NB_MLP_GELU_TANH }
    }

    /// gate ← act(gate) · up (the gated MLPs), in C (`nb_activation_gate`).
    static func gated(_ act: Activation, _ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        nb_activation_gate(act.c, gate, up, Int64(count))
    }

    /// x ← act(x) (GPT-2's ungated MLP).
    static func activate(_ act: Activation, _ x: UnsafeMutablePointer<Float>, count: Int) {
        nb_activation_gate(act.c, x, nil, Int64(count))
    }

    /// logits ← cap · tanh(logits / cap) (Gemma 2/3's final soft-capping).
    static func softcap(_ x: UnsafeMutablePointer<Float>, cap: Float, count: Int) {
        for i in 0..<count { x[i] = cap * tanhf(x[i] / cap) }
    }

    // MARK: Attention

    /// Stores the batch's keys and values of layer `l` and runs every query head of
    /// every token over the positions it may see: all earlier ones, or on a sliding
    /// layer the last `window` (the query's own included).
    static func attention(layer l: Int, config c: ModelConfig, count: Int, start: Int, cache: KVCache, state s: ForwardState,
                          pool: WorkerPool, scale: Float) {
        cache.store(layer: l, position: start, count: count, keys: s.k, values: s.v)
        let group = c.headCount / c.kvHeadCount, hd = c.headDim, qDim = c.qDim, kvHeads = c.kvHeadCount, heads = c.headCount
        let window = c.isSliding(l) ? c.slidingWindow : nil
        // The query heads of one KV head go together: its keys and values are read once for
        // all of them. (Splitting a group across threads read them twice and made decode at
        // 1,024 tokens of context 23 % slower on SmolLM2.) Decode with a number of KV heads
        // the threads do not divide splits each head's positions into `parts` ranges instead,
        // run as tasks of their own and merged, so that every thread gets as many: Gemma 3
        // 270M, one KV head, 2 threads: decode at 1,024 tokens 118–144 → 149–152 tok/s.
        let threads = pool.threadCount
        // Every token's positions must still be in the layer's ring: the last token sees the most.
        let lastSeen = start + count - 1, firstSeen = window.map { max(0, lastSeen - $0 + 1) } ?? 0
        precondition(hd == cache.headDim && lastSeen - firstSeen + 1 <= cache.capacities[l])
        // The tasks run from C (nb_attention_run): no closure allocated per call.
        let layout = cache.attentionLayout(layer: l)
        var job = nb_attention_job(keys: layout.keys, values: layout.values,
                                   format: cache.type.kernelFormat, capacity: Int64(cache.capacities[l]), head_dim: Int64(hd),
                                   block_slots: layout.blockSlots, block_bytes: layout.blockBytes,
                                   kv_heads: Int64(kvHeads), group: Int64(group), q: s.q, out: s.attention, q_stride: Int64(qDim),
                                   scale: scale, count: Int64(count), start: Int64(start), window: Int64(window ?? 0),
                                   parts: 1, first: 0, n: 0, ml: nil)
        if count == 1 && kvHeads % threads != 0 {
            let last = start, first = window.map { max(0, last - $0 + 1) } ?? 0, n = last - first + 1
            func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
            // Parts of 32 positions or more: SmolLM2 (3 KV heads, 2 threads) at 128–192 positions,
            // attention 6–16 % faster with 2 parts than with 3 tasks on 2 threads, the merge
            // ~10 µs a token more (alternating `nibble bench` runs; attention_bench at 160
            // positions: 5.6 → 5.0 µs a layer in cache, 6.5 → 5.9 from memory). Parts of 256
            // before, never measured below that.
            let parts = min(threads / gcd(kvHeads, threads), n / 32)
            if parts > 1 {
                // The parts' outputs and (max, sum) pairs, in the feed-forward's scratch (free
                // until the feed-forward runs).
                precondition(parts * (qDim + 2 * heads) <= s.hiddenCount)
                job.out = s.hidden
                job.ml = s.hidden + parts * qDim
                (job.parts, job.first, job.n) = (Int64(parts), Int64(first), Int64(n))
                nb_attention_run(pool.pool, &job)
                nb_attention_merge(s.hidden, s.hidden + parts * qDim, Int64(parts), Int64(heads), Int64(hd), s.attention)
                return
            }
        }
        nb_attention_run(pool.pool, &job)
    }
}

extension KVCacheType {
    /// The kernels' name for it (nb_attention_job.format).
    var kernelFormat: Int32 {
        switch self {
        case .f32: Int32(NB_KV_F32)
        case .f16: Int32(NB_KV_F16)
        case .q8: Int32(NB_KV_Q8)
        }
    }
}

/// Rotary position embedding (RoPE) with a cos/sin table per position, computed once
/// per batch and applied to the queries and keys of every layer that shares it.
final class RotaryEmbedding {
    /// Which dimensions rotate together.
    enum Layout {
        /// (x[2i], x[2i+1]): llama.cpp's normal mode, for Llama-family GGUFs whose Q/K
        /// rows the converter permuted (transformers' rotate_half on the original rows).
        case adjacentPairs
        /// (x[i], x[i + d/2]): GPT-NeoX mode, transformers' rotate_half as it is (Qwen,
        /// Gemma, Phi-3).
        case halves
    }

    let layout: Layout
    /// Rotated dimensions per head (the first `dimensions` of each head).
    let dimensions: Int
    /// θ_i per rotated pair, scaling already applied.
    let inverseFrequencies: [Float]
    /// Positions are divided by this (linear scaling).
    let linearScale: Float
    /// cos and sin are multiplied by this (LongRoPE's attention factor).
    let attentionFactor: Float
    /// `[token][pair]` cos then sin, for the current batch.
    private var table: [Float]
    private var tableStart = -1, tableCount = 0

    /// θ_i = 1 / (base^(2i/d) · factor_i), computed in f32 as transformers computes
    /// inv_freq (`1 / base ** (arange(0, d, 2) / d)`); `factors` are llama.cpp's
    /// per-pair divisors (`rope_freqs`, LongRoPE's short or long factors).
    init(layout: Layout, dimensions: Int, base: Float, factors: [Float]? = nil, linearScale: Float = 1,
         attentionFactor: Float = 1, maxBatch: Int) {
        self.layout = layout
        self.dimensions = dimensions
        let pairs = dimensions / 2
        var inverse = (0..<pairs).map { i in 1 / powf(base, Float(2 * i) / Float(dimensions)) }
        if let factors {
            precondition(factors.count == pairs)
            for i in 0..<pairs { inverse[i] /= factors[i] }
        }
        inverseFrequencies = inverse
        self.linearScale = linearScale
        self.attentionFactor = attentionFactor
        table = [Float](repeating: 0, count: maxBatch * dimensions)
    }

    /// Fills the table for positions `start..<start+count` (once per batch).
    func prepare(start: Int, count: Int) {
        if start == tableStart && count == tableCount { return }
        let pairs = dimensions / 2
        precondition(count * dimensions <= table.count)
        table.withUnsafeMutableBufferPointer { t in
            for token in 0..<count {
                let p = Float(start + token) / linearScale
                let row = t.baseAddress! + token * dimensions
                for i in 0..<pairs {
                    let angle = p * inverseFrequencies[i]
                    row[i] = cosf(angle) * attentionFactor
                    row[pairs + i] = sinf(angle) * attentionFactor
                }
            }
        }
        tableStart = start
        tableCount = count
    }

    /// Rotates `heads` heads of `headDim` values for each of `count` tokens (token t's
    /// heads start at v + t·stride) by the positions `prepare` was given.
    func apply(_ v: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, stride: Int, count: Int) {
        precondition(count == tableCount && dimensions <= headDim)
        table.withUnsafeBufferPointer { t in
            nb_rope(v, Int64(heads), Int64(headDim), Int64(stride), Int64(count), t.baseAddress!, Int64(dimensions / 2),
                    layout == .halves ? 1 : 0)
        }
    }

    /// Forgets the table (a new model or cache); the next `prepare` recomputes it.
    func invalidate() { tableStart = -1 }
}

// MARK: - Weight groups shared by the families
//
// Classes, not structs: the layer loop calls `layer.attention.project(...)` and the like on
// every token, and a struct read out of a layer object was copied, retaining and releasing
// each of its matrices (swift_retain and swift_release were 1.9 % of a q4 decode's samples
// before, 0.8 % after; decode itself moved within its noise).

/// The Q, K and V projections of one layer, read as llama.cpp's `create_tensor_qkv`
/// reads them: one fused `attn_qkv` (rows Q, then K, then V: Phi-3, GPT-2) or separate
/// `attn_q`/`attn_k`/`attn_v`, each with an optional bias (Qwen 2, GPT-2).
final class QKVProjection {
    let q, k, v: WeightMatrix
    let qBias, kBias, vBias: [Float]?
    /// The weights (and rows of a fused one) a LoRA adapter may adapt.
    let targets: (q: LoRATarget, k: LoRATarget, v: LoRATarget)

    init(_ l: WeightLoader, layer i: Int, config c: ModelConfig) throws {
        let p = "blk.\(i).", dim = c.embeddingLength, qDim = c.qDim, kvDim = c.kvDim
        if l.has(p + "attn_qkv.weight") {
            let rows = qDim + 2 * kvDim, name = p + "attn_qkv.weight"
            q = try l.matrix(name, rows: 0..<qDim, of: rows, columns: dim)
            k = try l.matrix(name, rows: qDim..<(qDim + kvDim), of: rows, columns: dim)
            v = try l.matrix(name, rows: (qDim + kvDim)..<rows, of: rows, columns: dim)
            targets = (LoRATarget(name, rows: 0..<qDim), LoRATarget(name, rows: qDim..<(qDim + kvDim)),
                       LoRATarget(name, rows: (qDim + kvDim)..<rows))
            if let b = try l.optionalVector(p + "attn_qkv.bias", count: rows) {
                (qBias, kBias, vBias) = (Array(b[0..<qDim]), Array(b[qDim..<(qDim + kvDim)]), Array(b[(qDim + kvDim)...]))
                return
            }
        } else {
            q = try l.matrix(p + "attn_q.weight", rows: qDim, columns: dim)
            k = try l.matrix(p + "attn_k.weight", rows: kvDim, columns: dim)
            v = try l.matrix(p + "attn_v.weight", rows: kvDim, columns: dim)
            targets = (LoRATarget(p + "attn_q.weight"), LoRATarget(p + "attn_k.weight"), LoRATarget(p + "attn_v.weight"))
        }
        qBias = try l.optionalVector(p + "attn_q.bias", count: qDim)
        kBias = try l.optionalVector(p + "attn_k.bias", count: kvDim)
        vBias = try l.optionalVector(p + "attn_v.bias", count: kvDim)
    }

    /// state.q, .k, .v ← the projections of `x` (`count` tokens), biases (and the adapter) added.
    func project(_ x: UnsafePointer<Float>, count: Int, state s: ForwardState, pool: WorkerPool) {
        WeightMatrix.multiply((q, s.q), (k, s.k), (v, s.v), x: x, batch: count, pool: pool, scratch: s.quantized)
        if let qBias { Layers.addBias(qBias, to: s.q, rows: count) }
        if let kBias { Layers.addBias(kBias, to: s.k, rows: count) }
        if let vBias { Layers.addBias(vBias, to: s.v, rows: count) }
        if let adapter = s.adapter {
            adapter.apply(targets.q, x: x, count: count, y: s.q)
            adapter.apply(targets.k, x: x, count: count, y: s.k)
            adapter.apply(targets.v, x: x, count: count, y: s.v)
        }
    }
}

/// A layer's output projection with its optional bias.
final class OutputProjection {
    let weight: WeightMatrix
    let bias: [Float]?
    let target: LoRATarget

    init(_ l: WeightLoader, _ name: String, rows: Int, columns: Int) throws {
        weight = try l.matrix(name + ".weight", rows: rows, columns: columns)
        bias = try l.optionalVector(name + ".bias", count: rows)
        target = LoRATarget(name + ".weight")
    }

    init(weight: WeightMatrix, bias: [Float]?, target: LoRATarget) {
        self.weight = weight
        self.bias = bias
        self.target = target
    }

    /// y ← W·x (+ bias, + the adapter's s·B·A·x) for `count` tokens.
    func callAsFunction(_ x: UnsafePointer<Float>, count: Int, into y: UnsafeMutablePointer<Float>, state s: ForwardState,
                        pool: WorkerPool) {
        weight.multiply(x, batch: count, into: y, pool: pool, scratch: s.quantized)
        if let bias { Layers.addBias(bias, to: y, rows: count) }
        s.adapter?.apply(target, x: x, count: count, y: y)
    }
}

/// The MLP of one layer: gated (down(act(gate·x) ⊙ up·x): Llama, Qwen, Gemma, and
/// Phi-3 whose `ffn_up` holds gate then up, fused) or plain (down(act(up·x + b)) + b:
/// GPT-2).
final class FeedForward {
    let gate: WeightMatrix?
    let gateTarget: LoRATarget
    let up: OutputProjection
    let down: OutputProjection
    let activation: Layers.Activation

    init(_ l: WeightLoader, layer i: Int, config c: ModelConfig, activation: Layers.Activation, gated: Bool) throws {
        let p = "blk.\(i).", dim = c.embeddingLength, ffn = c.feedForwardLength
        self.activation = activation
        if gated && !l.has(p + "ffn_gate.weight") {
            // Fused: rows 0..<ffn are the gate, ffn..<2·ffn the up projection (ggml_swiglu's halves).
            let name = p + "ffn_up.weight"
            gate = try l.matrix(name, rows: 0..<ffn, of: 2 * ffn, columns: dim)
            gateTarget = LoRATarget(name, rows: 0..<ffn)
            up = OutputProjection(weight: try l.matrix(name, rows: ffn..<(2 * ffn), of: 2 * ffn, columns: dim), bias: nil,
                                  target: LoRATarget(name, rows: ffn..<(2 * ffn)))
        } else {
            gate = gated ? try l.matrix(p + "ffn_gate.weight", rows: ffn, columns: dim) : nil
            gateTarget = LoRATarget(p + "ffn_gate.weight")
            up = try OutputProjection(l, p + "ffn_up", rows: ffn, columns: dim)
        }
        down = try OutputProjection(l, p + "ffn_down", rows: dim, columns: ffn)
    }

    /// out ← MLP(x) for `count` tokens (x and out may be the same buffer).
    func callAsFunction(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>, state s: ForwardState,
                        pool: WorkerPool) {
        let n = count * up.weight.rows
        if let gate {
            WeightMatrix.multiply((gate, s.hidden), (up.weight, s.hidden2), nil, x: x, batch: count, pool: pool, scratch: s.quantized)
            if let adapter = s.adapter {
                adapter.apply(gateTarget, x: x, count: count, y: s.hidden)
                adapter.apply(up.target, x: x, count: count, y: s.hidden2)
            }
            Layers.gated(activation, s.hidden, s.hidden2, count: n)
        } else {
            up(x, count: count, into: s.hidden, state: s, pool: pool)
            Layers.activate(activation, s.hidden, count: n)
        }
        down(s.hidden, count: count, into: out, state: s, pool: pool)
    }
}

/// The token embedding and the output head, which is the embedding itself when the file
/// has no `output.weight` (tied).
struct EmbeddingAndHead {
    let embedding: WeightMatrix   // (vocab, dim)
    let head: WeightMatrix        // (vocab, dim)
    let headBias: [Float]?

    init(_ l: WeightLoader, config c: ModelConfig) throws {
        embedding = try l.matrix("token_embd.weight", rows: c.vocabSize, columns: c.embeddingLength)
        head = l.has("output.weight") ? try l.matrix("output.weight", rows: c.vocabSize, columns: c.embeddingLength) : embedding
        headBias = try l.optionalVector("output.bias", count: c.vocabSize)
    }

    /// Writes the embeddings of `count` tokens into x (row stride `columns`).
    func embed(_ tokens: UnsafePointer<Int32>, count: Int, into x: UnsafeMutablePointer<Float>) {
        for t in 0..<count { embedding.row(Int(tokens[t]), into: x + t * embedding.columns) }
    }

    /// logits ← head · x (+ bias) for `count` tokens.
    func logits(_ x: UnsafePointer<Float>, count: Int, state s: ForwardState, pool: WorkerPool) {
        head.multiply(x, batch: count, into: s.logits, pool: pool, scratch: s.quantized)
        if let headBias { Layers.addBias(headBias, to: s.logits, rows: count) }
    }
}
