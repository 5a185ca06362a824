// The seam every model family plugs into: a protocol for the model and one registry
// row per `general.architecture` (as mlx-swift-lm's LLMModelFactory maps `model_type`
// to a config and a model type). `Engine`, `Footprint` and the forward-state sizing
// ask the registry and the model, never a concrete family.
//
// Adding a family: one file in this folder with a `DecoderModel` type (its weights,
// read through `WeightLoader` under llama.cpp's tensor names, and its `forward`, built
// from the shared operations in Layers.swift), and one row in `ModelRegistry.families`.

import ModelFiles
import Quantization

/// A decoder-only transformer whose weights are loaded: it runs tokens through its
/// layers, filling the KV cache, and writes logits.
public protocol DecoderModel: AnyObject, Sendable {
    /// Loads the weights through `loader` (which knows the plan's formats and counts
    /// the bytes) for `config`.
    init(loader: WeightLoader, config: ModelConfig) throws

    /// Completes a config read from the common GGUF keys with what this family's files
    /// do not store (documented defaults) or store under their own keys. Default: nothing.
    static func configure(_ config: inout ModelConfig, source: any ModelSource) throws

    /// Widths of the activation buffers `forward` uses (default: `ScratchSizes(config)`).
    static func scratchSizes(_ config: ModelConfig) -> ScratchSizes

    /// The longest context the family can run (GPT-2: its learned positions); nil = any.
    static func maximumContext(_ config: ModelConfig) -> Int?

    var config: ModelConfig { get }

    /// Runs `count` tokens at positions `start..<start+count` (their keys and values go
    /// into `cache`) and writes into `state.logits` the logits of the tokens from index
    /// `logitsFrom` on (`(count − logitsFrom) × vocab` values; none when it is `count`,
    /// as for a prefill chunk before the last), or of the last one only when it is nil.
    /// - Precondition: `count <= state.maxBatch`; the cache was made with
    ///   `ModelConfig.kvCapacity` for this batch size.
    func forward(tokens: UnsafePointer<Int32>, count: Int, start: Int, cache: KVCache, state: ForwardState,
                 pool: WorkerPool, logitsFrom: Int?)
}

extension DecoderModel {
    public static func configure(_ config: inout ModelConfig, source: any ModelSource) throws {}
    public static func scratchSizes(_ config: ModelConfig) -> ScratchSizes { ScratchSizes(config) }
    public static func maximumContext(_ config: ModelConfig) -> Int? { nil }
}

/// `general.architecture` → the family that runs it.
public enum ModelRegistry {
    static let families: [String: any DecoderModel.Type] = [
        // Llama 1/2/3, SmolLM, TinyLlama, and Mistral, whose GGUFs say "llama".
        "llama": LlamaModel.self,
        "qwen2": Qwen2Model.self,
        "qwen3": Qwen3Model.self,
        "gemma3": Gemma3Model.self,
        "phi3": Phi3Model.self,
        "gpt2": GPT2Model.self,
    ]

    /// The family that runs `architecture`, or nil.
    public static func family(of architecture: String) -> (any DecoderModel.Type)? { families[architecture] }

    /// The architectures Nibble runs, sorted.
    public static var supportedArchitectures: [String] { families.keys.sorted() }
}

/// Widths of the per-token activation buffers (floats per token).
public struct ScratchSizes: Sendable, Equatable {
    /// Residual stream and normed copies.
    public var embedding: Int
    /// All query heads.
    public var query: Int
    /// All key (and value) heads.
    public var keyValue: Int
    /// MLP inner width.
    public var feedForward: Int
    public var vocabulary: Int

    public init(_ c: ModelConfig) {
        embedding = c.embeddingLength
        query = c.qDim
        keyValue = c.kvDim
        feedForward = c.feedForwardLength
        vocabulary = c.vocabSize
    }

    /// The widest input of a matrix product (sizes the quantised-activation scratch).
    var widestInput: Int { max(embedding, query, feedForward) }

    /// Bytes of `ForwardState` for `batch` tokens.
    func byteCount(batch: Int) -> Int {
        let floats = 2 * embedding + 2 * query + 2 * keyValue + 2 * feedForward + vocabulary
        return batch * 4 * floats + ActivationScratch.byteCount(tokens: batch, columns: widestInput)
    }
}

/// Activation buffers for up to `maxBatch` tokens, allocated once: the decode loop
/// allocates nothing.
public final class ForwardState {
    let maxBatch: Int
    let x: UnsafeMutablePointer<Float>          // (batch, dim) residual stream
    let xb: UnsafeMutablePointer<Float>         // (batch, dim) normed input / block output
    let q: UnsafeMutablePointer<Float>          // (batch, heads × headDim)
    let k: UnsafeMutablePointer<Float>          // (batch, kvHeads × headDim), before the cache
    let v: UnsafeMutablePointer<Float>          // (batch, kvHeads × headDim)
    let attention: UnsafeMutablePointer<Float>  // (batch, heads × headDim)
    let hidden: UnsafeMutablePointer<Float>     // (batch, ffn)
    let hidden2: UnsafeMutablePointer<Float>    // (batch, ffn)
    /// Floats in `hidden` (attention's split decode borrows it before the feed-forward runs).
    let hiddenCount: Int
    let logits: UnsafeMutablePointer<Float>     // (batch, vocab)
    /// The input of the current product quantised to int8 blocks (integer formats).
    let quantized: ActivationScratch
    private let buffers: [AlignedBuffer]
    /// The LoRA adapter the projections add, if one is on.
    var adapter: LoRAAdapter?

    var byteCount: Int { buffers.reduce(0) { $0 + $1.byteCount } + quantized.byteCount }

    init(sizes s: ScratchSizes, maxBatch: Int) throws {
        self.maxBatch = maxBatch
        let widths = [s.embedding, s.embedding, s.query, s.keyValue, s.keyValue, s.query, s.feedForward, s.feedForward, s.vocabulary]
        var buffers: [AlignedBuffer] = []
        for width in widths {
            guard let b = AlignedBuffer.zeroed(Float.self, count: width * maxBatch) else {
                throw QuantizationError.outOfMemory(bytes: width * maxBatch * 4, what: "activations")
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
        hiddenCount = s.feedForward * maxBatch
        hidden2 = buffers[7].typed(Float.self)
        logits = buffers[8].typed(Float.self)
        quantized = try ActivationScratch(tokens: maxBatch, columns: s.widestInput)
    }
}
